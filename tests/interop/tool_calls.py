"""The official openai client accumulates the mock's streamed tool calls.

argv[1]: the mock's API root. Prints one JSON object: the call the SDK's stream helper
assembled (its own accumulation of the fragments), the call of a whole reply, and the
streams' finish reason.
"""
import json
import sys

import openai

base = sys.argv[1]
oa = openai.OpenAI(base_url=base, api_key="sk-test", max_retries=0)
# Strict, as the SDK's stream helper requires of the tools it parses.
tools = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "units": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city", "units"],
            "additionalProperties": False,
        },
    },
}]
messages = [{"role": "user", "content": "What is the weather in Paris?"}]
out = {}
with oa.chat.completions.stream(model="m", messages=messages, tools=tools) as stream:
    fragments = sum(1 for e in stream if e.type == "tool_calls.function.arguments.delta")
    final = stream.get_final_completion()
call = final.choices[0].message.tool_calls[0]
out["stream"] = {"id": call.id, "name": call.function.name, "arguments": call.function.arguments, "fragments": fragments,
                 "parsed": call.function.parsed_arguments, "finish": final.choices[0].finish_reason}
whole = oa.chat.completions.create(model="m", messages=messages, tools=tools)
w = whole.choices[0].message
out["whole"] = {"id": w.tool_calls[0].id, "name": w.tool_calls[0].function.name, "arguments": w.tool_calls[0].function.arguments,
                "content": w.content, "finish": whole.choices[0].finish_reason}
print(json.dumps(out))
