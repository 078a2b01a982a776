"""A tool round trip and a JSON answer with the Tandem SDK. Needs a worker on Ollama
with a tool-calling model (the embedded default refuses tools); see docs/tools.md."""
from pydantic import BaseModel

from tandem.sdk import ChatTurn, TandemClient


def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"Sunny and 21 C in {city}"

class City(BaseModel):
    name: str
    population: int

with TandemClient() as client:  # the gateway at $TANDEM_CLIENT_GATEWAY, or 127.0.0.1:50051
    question = [ChatTurn("user", "What is the weather in Paris?")]
    answer = client.ask(question, tools=[get_weather])  # a typed function is a tool
    while answer.finish_reason == "tool_calls":
        question.append(ChatTurn("assistant", answer.text, tool_calls=answer.tool_calls))
        for call in answer.tool_calls:  # ToolCall(id, name, arguments: dict)
            print(f"[calling {call.name}({call.arguments})]")
            question.append(ChatTurn("tool", get_weather(**call.arguments), tool_call_id=call.id))
        answer = client.ask(question, tools=[get_weather])
    print(answer.content)
    city = City.model_validate_json(client.ask("Describe Paris", response_format=City).text)
    print(city)
