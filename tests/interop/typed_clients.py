"""The official SDKs read the mock's typed APIs through their own parsers.

argv[1]: the mock's API root (http://127.0.0.1:PORT/v1). Prints one JSON object:
what openai's Responses API client and anthropic's Messages client read, whole and
streamed (the streams' final objects are the SDKs' own accumulations), and what
openai's embeddings client reads, in base64 (its default) and floats.
"""
import json
import sys

import anthropic
import openai

base = sys.argv[1]
out = {}

oa = openai.OpenAI(base_url=base, api_key="sk-test", max_retries=0)
r = oa.responses.create(model="m", instructions="be brief", input="say five words please", max_output_tokens=5)
out["responses"] = {
    "status": r.status,
    "text": r.output_text,
    "incomplete": r.incomplete_details.reason if r.incomplete_details else None,
    "usage": {"input": r.usage.input_tokens, "output": r.usage.output_tokens},
}
deltas, final = [], None
# Ended by the model (its own 16 tokens): `response.completed`, which the SDK's
# accumulation needs (at the limit the stream ends `response.incomplete`, as above).
with oa.responses.stream(model="m", input="say five words please", max_output_tokens=50) as stream:
    for event in stream:
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
    final = stream.get_final_response()
out["responses_stream"] = {
    "deltas": len(deltas),
    "text": "".join(deltas),
    "final_text": final.output_text,
    "status": final.status,
    "output": final.usage.output_tokens,
}

# Anthropic's client: its base URL is the server's root (it adds /v1/messages).
an = anthropic.Anthropic(base_url=base.removesuffix("/v1"), api_key="sk-ant-test", max_retries=0)
m = an.messages.create(model="m", max_tokens=5, system="be brief", messages=[{"role": "user", "content": "say five words please"}])
out["messages"] = {
    "text": "".join(b.text for b in m.content if b.type == "text"),
    "stop_reason": m.stop_reason,
    "usage": {"input": m.usage.input_tokens, "output": m.usage.output_tokens},
}
with an.messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "say five words please"}]) as stream:
    texts = list(stream.text_stream)
    final = stream.get_final_message()
out["messages_stream"] = {
    "deltas": len(texts),
    "text": "".join(texts),
    "final_text": "".join(b.text for b in final.content if b.type == "text"),
    "stop_reason": final.stop_reason,
    "output": final.usage.output_tokens,
}
# Embeddings: the SDK asks for base64 unless told (and decodes the float32s itself),
# or floats, of the length asked.
e = oa.embeddings.create(model="m", input=["a cat", "a dog", "a cat"])
out["embeddings"] = {
    "count": len(e.data),
    "dims": [len(d.embedding) for d in e.data],
    "indices": [d.index for d in e.data],
    "same_text_same_vector": e.data[0].embedding == e.data[2].embedding,
    "differ": e.data[0].embedding != e.data[1].embedding,
    "norm": sum(x * x for x in e.data[1].embedding),
    "usage": {"prompt": e.usage.prompt_tokens, "total": e.usage.total_tokens},
}
f = oa.embeddings.create(model="m", input="a cat", encoding_format="float", dimensions=8)
out["embeddings_float"] = {"dims": len(f.data[0].embedding)}
print(json.dumps(out))
