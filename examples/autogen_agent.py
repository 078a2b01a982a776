"""An AutoGen agent answering through Tandem. Start Tandem first (`make run`)."""
import asyncio

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.ui import Console

from tandem.integrations.autogen import TandemChatCompletionClient


async def main() -> None:
    # The gateway at $TANDEM_CLIENT_GATEWAY, or 127.0.0.1:50051.
    client = TandemChatCompletionClient()
    agent = AssistantAgent("coder", model_client=client, model_client_stream=True)
    await Console(agent.run_stream(task="Write a Python function that reverses a string"))
    await client.close()

asyncio.run(main())
