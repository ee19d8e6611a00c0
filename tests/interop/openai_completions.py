"""The official openai Python client on the mock's /v1/completions, and on a stream that
ends after its finish_reason without data: [DONE].

Usage: openai_completions.py BASE_URL BASE_URL_WITHOUT_DONE
Prints one JSON line with what the client parsed, for tests/interop.rs to check.
"""
import json
import sys

from openai import OpenAI


def client(url):
    return OpenAI(base_url=url, api_key="not-needed", max_retries=0, timeout=10)


request = dict(model="gpt-4.1", prompt="Once upon a time", max_tokens=5)
resp = client(sys.argv[1]).completions.create(**request)
streamed, chunks = "", 0
for chunk in client(sys.argv[1]).completions.create(**request, stream=True):
    if chunk.choices and chunk.choices[0].text:
        streamed += chunk.choices[0].text
        chunks += 1
# A chat stream that ends without [DONE]: the client reads it to its end all the same.
no_done, finish = "", None
chat = dict(model="gpt-4.1", messages=[{"role": "user", "content": "hi"}], max_tokens=5, stream=True)
for chunk in client(sys.argv[2]).chat.completions.create(**chat):
    if chunk.choices and chunk.choices[0].delta.content:
        no_done += chunk.choices[0].delta.content
    if chunk.choices and chunk.choices[0].finish_reason:
        finish = chunk.choices[0].finish_reason
print(json.dumps({
    "object": resp.object,
    "text": resp.choices[0].text,
    "finish_reason": resp.choices[0].finish_reason,
    "usage": resp.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"}),
    "streamed": streamed,
    "stream_chunks": chunks,
    "no_done": no_done,
    "no_done_finish": finish,
}))
