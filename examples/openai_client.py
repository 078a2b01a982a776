"""The official openai package talking to `tandem openai` (start it first, see docs/clients.md)."""
import os

from openai import OpenAI

client = OpenAI(base_url=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1"),
                api_key=os.environ.get("OPENAI_API_KEY", "unused"))
stream = client.chat.completions.create(
    model="tandem", stream=True,
    messages=[{"role": "user", "content": "Write a Python function that reverses a string"}])
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)
    if chunk.choices and chunk.choices[0].finish_reason:
        print(f"\n[finish_reason: {chunk.choices[0].finish_reason}]")
