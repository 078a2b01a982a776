"""An AutoGen agent with a tool, answering through Tandem. Needs a worker on Ollama with a
tool-calling model such as qwen3-coder-next (the embedded default refuses tools)."""
import asyncio

from autogen_agentchat.agents import AssistantAgent
from autogen_core.tools import FunctionTool

from tandem.integrations.autogen import TandemChatCompletionClient


def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"Sunny and 21 C in {city}"


async def main() -> None:
    # The gateway at $TANDEM_CLIENT_GATEWAY, or 127.0.0.1:50051.
    client = TandemChatCompletionClient()
    agent = AssistantAgent(
        "assistant",
        model_client=client,
        tools=[FunctionTool(get_weather, description="The current weather in a city")],
        reflect_on_tool_use=True,
    )
    result = await agent.run(task="What is the weather in Paris?")
    for message in result.messages:
        print(f"{type(message).__name__}: {message.to_text()}")
    await client.close()

asyncio.run(main())
