"""Calls the llmload mock through the official openai Python client.

Usage: openai_client.py BASE_URL
Prints one JSON line with what the client parsed, for tests/interop.rs to check.
"""
import json
import sys

from openai import OpenAI

client = OpenAI(base_url=sys.argv[1], api_key="not-needed", max_retries=0, timeout=10)
models = client.models.list()
request = dict(
    model="gpt-4.1",
    messages=[
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "say five words please"},
    ],
    max_tokens=5,
)
resp = client.chat.completions.create(**request)
# The same request streamed: the same text, and the usage in the final chunk.
stream = client.chat.completions.create(**request, stream=True, stream_options={"include_usage": True})
streamed, stream_usage, chunks = "", None, 0
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        streamed += chunk.choices[0].delta.content
        chunks += 1
    if chunk.usage:
        stream_usage = chunk.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})
error = None
try:
    client.chat.completions.create(model="gpt-4.1", messages=[])
except Exception as e:  # the client maps the mock's 400 to its own error type
    error = {"type": type(e).__name__, "status": getattr(e, "status_code", None)}
print(json.dumps({
    "models": [m.id for m in models.data],
    "object": resp.object,
    "model": resp.model,
    "content": resp.choices[0].message.content,
    "finish_reason": resp.choices[0].finish_reason,
    "usage": resp.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"}),
    "error": error,
    "streamed": streamed,
    "stream_chunks": chunks,
    "stream_usage": stream_usage,
}))
