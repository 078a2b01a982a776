"""A tool round trip with the openai package through `tandem openai` (the worker must run
Ollama with a tool-calling model; see docs/tools.md)."""
import json
import os

from openai import OpenAI

client = OpenAI(base_url=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1"),
                api_key=os.environ.get("OPENAI_API_KEY", "unused"))
tools = [{"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]
messages = [{"role": "user", "content": "What is the weather in Paris?"}]
reply = client.chat.completions.create(model="tandem", messages=messages, tools=tools)
while reply.choices[0].finish_reason == "tool_calls":
    message = reply.choices[0].message
    messages.append(message.model_dump(exclude_none=True))
    for call in message.tool_calls:
        city = json.loads(call.function.arguments)["city"]
        print(f"[calling {call.function.name}(city={city!r})]")
        messages.append({"role": "tool", "tool_call_id": call.id, "content": f"Sunny in {city}"})
    reply = client.chat.completions.create(model="tandem", messages=messages, tools=tools)
print(reply.choices[0].message.content)
