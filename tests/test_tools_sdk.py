"""The SDK's tools, tool-call events, structured output and model choice, sync
and asyncio, against a real gateway and worker (fake Ollama behind them)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from tandem.sdk import (
    Answer,
    AsyncTandemClient,
    ChatTurn,
    Decision,
    ResponseFormat,
    Summary,
    TandemClient,
    TandemNotFound,
    ToolCall,
    ToolDefinition,
    tool_from_function,
    tool_from_model,
)
from tandem.sdk.tools import response_format_of
from tandem_gateway.server import RunningGateway
from tests.fake_ollama import FakeOllama
from tests.test_sdk import ROOT, docs_block, run_example


def get_weather(city: str, days: int = 1) -> str:
    """The forecast for a city."""
    return f"sunny in {city} for {days} days"


class SearchArgs(BaseModel):
    """Search the code base."""

    query: str
    max_hits: int = 10


class Release(BaseModel):
    language: str
    year: int


def test_tool_definitions_from_functions_and_models() -> None:
    weather = tool_from_function(get_weather)
    assert (weather.name, weather.description) == ("get_weather", "The forecast for a city.")
    assert weather.parameters["type"] == "object"
    assert weather.parameters["required"] == ["city"]
    assert weather.parameters["properties"]["days"]["type"] == "integer"
    search = tool_from_model(SearchArgs, name="search")
    assert (search.name, search.description) == ("search", "Search the code base.")
    assert search.parameters["required"] == ["query"] and "title" not in search.parameters


async def test_route_yields_tool_calls_and_ask_collects_them(
    gateway: RunningGateway, worker_ollama: FakeOllama
) -> None:
    async with AsyncTandemClient(gateway.address) as client:
        events = [e async for e in client.route("Weather in Paris?", tools=[get_weather])]
        answer = await client.ask("Weather in Paris?", tools=[tool_from_function(get_weather)])
        [call] = answer.tool_calls
        follow_up = await client.ask(
            [
                ChatTurn("user", "Weather in Paris?"),
                ChatTurn("assistant", "", tool_calls=answer.tool_calls),
                {"role": "tool", "content": get_weather(**call.arguments), "tool_call_id": call.id},
            ],
            tools=[get_weather],
        )
    assert [type(e) for e in events] == [Decision, ToolCall, Summary]
    assert isinstance(events[-1], Summary) and events[-1].finish_reason == "tool_calls"
    assert answer.finish_reason == "tool_calls" and answer.text == ""
    assert call.name == "get_weather" and call.arguments == {"city": "example", "days": 3}
    assert follow_up.content == "The tool get_weather answered: sunny in example for 3 days"
    assert follow_up.tool_calls == ()


async def test_structured_output_with_a_pydantic_model_sync_and_async(
    gateway: RunningGateway, worker_ollama: FakeOllama
) -> None:
    async with AsyncTandemClient(gateway.address) as client:
        answer = await client.ask("When was Python released?", response_format=Release)
    release = Release.model_validate_json(answer.text)
    assert isinstance(release.year, int)
    assert worker_ollama.generation_requests()[-1]["format"]["required"] == ["language", "year"]

    def sync_json() -> Answer:
        with TandemClient(gateway.address) as client:
            return client.ask("Any JSON please", response_format="json", tool_choice="none")

    assert isinstance((await asyncio.to_thread(sync_json)).json(), dict)
    assert worker_ollama.generation_requests()[-1]["format"] == "json"


async def test_sync_client_calls_tools_with_a_named_choice(
    gateway: RunningGateway, worker_ollama: FakeOllama
) -> None:
    clock = ToolDefinition("get_time", "The time", {"type": "object", "properties": {}})

    def session() -> list[object]:
        with TandemClient(gateway.address) as client:
            return list(
                client.route("What time is it?", tools=[get_weather, clock], tool_choice="get_time")
            )

    events = await asyncio.to_thread(session)
    assert [e.name for e in events if isinstance(e, ToolCall)] == ["get_time"]
    sent = worker_ollama.generation_requests()[-1]
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_time"]


async def test_model_choice_and_an_unknown_model(
    gateway: RunningGateway, worker_ollama: FakeOllama
) -> None:
    async with AsyncTandemClient(gateway.address) as client:
        named = await client.ask("hello", model="qwen3-coder-next")
        status = await client.cluster_status()
        with pytest.raises(TandemNotFound) as caught:
            await client.ask("hello", model="gpt-4o")
    assert named.summary.model == "qwen3-coder-next"
    assert status.workers[0].node is not None
    assert status.workers[0].node.served_models == ("qwen3-coder-next",)
    assert caught.value.details.reason == "MODEL_NOT_SERVED"
    assert caught.value.details.metadata["available"] == "qwen3-coder-next"
    assert "gpt-4o" in caught.value.message
    assert [r["model"] for r in worker_ollama.generation_requests()] == ["qwen3-coder-next"]


def test_response_format_values() -> None:
    assert response_format_of(Release).schema["required"] == ["language", "year"]  # type: ignore[index]
    assert response_format_of({"type": "object"}) == ResponseFormat.json_schema({"type": "object"})
    with pytest.raises(ValueError, match="schema"):
        response_format_of("yaml")


async def test_the_documented_tool_example_runs_as_written(
    gateway: RunningGateway, worker_ollama: FakeOllama
) -> None:
    assert docs_block("sdk-tools-example") == (ROOT / "examples/sdk_tools.py").read_text()
    result = await run_example("sdk_tools.py", TANDEM_CLIENT_GATEWAY=gateway.address)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "[calling get_weather({'city': 'example'})]"
    assert lines[1] == "The tool get_weather answered: Sunny and 21 C in example"
    assert lines[2].startswith("name=") and "population=3" in lines[2]
