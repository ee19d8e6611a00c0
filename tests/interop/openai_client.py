"""Calls the llmload mock through the official openai Python client.

Usage: openai_client.py BASE_URL BASE_URL_WITHOUT_DONE
The second mock ends its streams after the finish_reason without data: [DONE].
Prints one JSON line with what the client parsed, for tests/interop.rs to check.
"""
import json
import sys

from openai import OpenAI


def client(url):
    return OpenAI(base_url=url, api_key="not-needed", max_retries=0, timeout=10)


def usage(u):
    return u.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})


mock = client(sys.argv[1])
models = mock.models.list()
request = dict(
    model="gpt-4.1",
    messages=[
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "say five words please"},
    ],
    max_tokens=5,
)
resp = mock.chat.completions.create(**request)
# The same request streamed: the same text, and the usage in the final chunk.
stream = mock.chat.completions.create(**request, stream=True, stream_options={"include_usage": True})
streamed, stream_usage, chunks = "", None, 0
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        streamed += chunk.choices[0].delta.content
        chunks += 1
    if chunk.usage:
        stream_usage = usage(chunk.usage)
error = None
try:
    mock.chat.completions.create(model="gpt-4.1", messages=[])
except Exception as e:  # the client maps the mock's 400 to its own error type
    error = {"type": type(e).__name__, "status": getattr(e, "status_code", None)}
# The text completions endpoint, whole and streamed.
text_request = dict(model="gpt-4.1", prompt="Once upon a time", max_tokens=5)
text = mock.completions.create(**text_request)
text_streamed = "".join(c.choices[0].text for c in mock.completions.create(**text_request, stream=True) if c.choices)
# A chat stream that ends without [DONE]: the client reads it to its end all the same.
no_done, no_done_finish = "", None
for chunk in client(sys.argv[2]).chat.completions.create(**request, stream=True):
    if chunk.choices and chunk.choices[0].delta.content:
        no_done += chunk.choices[0].delta.content
    if chunk.choices and chunk.choices[0].finish_reason:
        no_done_finish = chunk.choices[0].finish_reason
print(json.dumps({
    "models": [m.id for m in models.data],
    "object": resp.object,
    "model": resp.model,
    "content": resp.choices[0].message.content,
    "finish_reason": resp.choices[0].finish_reason,
    "usage": usage(resp.usage),
    "error": error,
    "streamed": streamed,
    "stream_chunks": chunks,
    "stream_usage": stream_usage,
    "completions": {
        "object": text.object,
        "text": text.choices[0].text,
        "finish_reason": text.choices[0].finish_reason,
        "usage": usage(text.usage),
        "streamed": text_streamed,
    },
    "no_done": no_done,
    "no_done_finish": no_done_finish,
}))
