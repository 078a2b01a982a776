"""Tools and JSON output through the OpenAI-compatible endpoint, driven by the
official ``openai`` package: endpoint → gateway → worker → fake Ollama."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from tandem.openai_compat.server import running_openai_endpoint
from tandem_gateway.server import RunningGateway
from tests.fake_ollama import FakeOllama
from tests.helpers import GUARD_S
from tests.test_openai_endpoint import endpoint_settings
from tests.test_sdk import ROOT, docs_block, run_example

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}
CLOCK: dict[str, Any] = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}
ASK = {"role": "user", "content": "What is the weather in Paris?"}


def when_asked(*calls: tuple[str, dict[str, Any]]) -> Any:
    """The fake model makes ``calls`` when a user spoke last, else answers in text."""
    return lambda body: list(calls) if body["messages"][-1]["role"] == "user" else []


@pytest.fixture
async def client(gateway: RunningGateway) -> AsyncIterator[openai.AsyncOpenAI]:
    async with (
        running_openai_endpoint(endpoint_settings(gateway.address)) as running,
        openai.AsyncOpenAI(
            base_url=running.base_url, api_key="unused", max_retries=0, timeout=GUARD_S
        ) as openai_client,
    ):
        yield openai_client


async def test_a_two_step_tool_round_trip(
    client: openai.AsyncOpenAI, worker_ollama: FakeOllama
) -> None:
    worker_ollama.tool_caller = when_asked(("get_weather", {"city": "Paris", "unit": "c"}))
    first = await client.chat.completions.create(model="tandem", messages=[ASK], tools=[WEATHER])

    [choice] = first.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "c"}
    sent = worker_ollama.generation_requests()[-1]
    assert sent["tools"][0]["function"]["parameters"] == WEATHER["function"]["parameters"]

    second = await client.chat.completions.create(
        model="tandem",
        messages=[
            ASK,
            choice.message.model_dump(exclude_none=True),  # the assistant's call, sent back
            {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 21}'},
        ],
        tools=[WEATHER],
    )
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == 'The tool get_weather answered: {"temp": 21}'
    back = worker_ollama.generation_requests()[-1]["messages"]
    assert back[1]["tool_calls"] == [
        {
            "id": call.id,
            "function": {
                "index": 0,
                "name": "get_weather",
                "arguments": {"city": "Paris", "unit": "c"},
            },
        }
    ]
    assert back[2] == {
        "role": "tool",
        "content": '{"temp": 21}',
        "tool_name": "get_weather",
        "tool_call_id": call.id,
    }


async def test_streamed_tool_calls_are_openai_deltas(
    client: openai.AsyncOpenAI, worker_ollama: FakeOllama
) -> None:
    worker_ollama.tool_caller = lambda body: [("get_weather", {"city": "Oslo"}), ("get_time", {})]
    stream = await client.chat.completions.create(
        model="tandem", messages=[ASK], tools=[WEATHER, CLOCK], stream=True
    )
    chunks = [chunk async for chunk in stream]

    deltas = [
        c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls
    ]
    calls = [d[0] for d in deltas]
    assert [c.index for c in calls] == [0, 1]
    assert [(c.type, c.function.name) for c in calls] == [
        ("function", "get_weather"),
        ("function", "get_time"),
    ]
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Oslo"}, {}]
    assert len({c.id for c in calls}) == 2
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_parallel_tool_calls_false_answers_one_call(
    client: openai.AsyncOpenAI, worker_ollama: FakeOllama
) -> None:
    worker_ollama.tool_caller = lambda body: [
        ("get_weather", {"city": "A"}),
        ("get_weather", {"city": "B"}),
    ]
    answer = await client.chat.completions.create(
        model="tandem", messages=[ASK], tools=[WEATHER], parallel_tool_calls=False
    )
    calls = answer.choices[0].message.tool_calls or []
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "A"}]


async def test_tool_choice_none_and_named_reach_ollama_as_documented(
    client: openai.AsyncOpenAI, worker_ollama: FakeOllama
) -> None:
    worker_ollama.reply = "No tools needed."
    plain = await client.chat.completions.create(
        model="tandem", messages=[ASK], tools=[WEATHER], tool_choice="none"
    )
    assert plain.choices[0].message.content == "No tools needed."
    assert "tools" not in worker_ollama.generation_requests()[-1]

    named = await client.chat.completions.create(
        model="tandem",
        messages=[ASK],
        tools=[WEATHER, CLOCK],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert [c.function.name for c in named.choices[0].message.tool_calls or []] == ["get_time"]
    assert [t["function"]["name"] for t in worker_ollama.generation_requests()[-1]["tools"]] == [
        "get_time"
    ]


async def test_a_required_call_the_model_does_not_make_is_an_error_not_an_answer(
    client: openai.AsyncOpenAI, worker_ollama: FakeOllama
) -> None:
    worker_ollama.tool_caller = lambda body: []
    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(
            model="tandem", messages=[ASK], tools=[WEATHER], tool_choice="required"
        )
    assert caught.value.code == "tool_choice_not_honoured"


class City(BaseModel):
    name: str
    population: int
    capital: bool


async def test_a_json_schema_request_parses_into_the_model(
    client: openai.AsyncOpenAI, worker_ollama: FakeOllama
) -> None:
    completion = await client.chat.completions.parse(
        model="tandem",
        messages=[{"role": "user", "content": "Describe Paris"}],
        response_format=City,
    )
    city = completion.choices[0].message.parsed
    assert isinstance(city, City) and isinstance(city.population, int)
    fmt = worker_ollama.generation_requests()[-1]["format"]
    assert fmt["type"] == "object" and set(fmt["required"]) == {"name", "population", "capital"}


async def test_json_object_mode_is_ollamas_json_format(
    client: openai.AsyncOpenAI, worker_ollama: FakeOllama
) -> None:
    answer = await client.chat.completions.create(
        model="tandem", messages=[ASK], response_format={"type": "json_object"}, stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in answer if c.choices])
    assert isinstance(json.loads(text), dict)
    assert worker_ollama.generation_requests()[-1]["format"] == "json"


async def test_bad_tool_values_are_400_naming_the_param(client: openai.AsyncOpenAI) -> None:
    bad_call = {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": "[1, 2]"},
            }
        ],
    }
    with pytest.raises(openai.BadRequestError) as arguments:
        await client.chat.completions.create(
            model="tandem",
            messages=[ASK, bad_call, {"role": "tool", "tool_call_id": "c1", "content": "x"}],
        )
    with pytest.raises(openai.BadRequestError) as unanswered:
        await client.chat.completions.create(
            model="tandem", messages=[ASK, {"role": "tool", "tool_call_id": "c9", "content": "x"}]
        )
    with pytest.raises(openai.BadRequestError) as schema:
        await client.chat.completions.create(
            model="tandem",
            messages=[ASK],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "string"}},
            },
        )
    assert arguments.value.param == "messages[1].tool_calls[0].function.arguments"
    assert unanswered.value.param == "messages[1].tool_call_id"
    assert schema.value.param == "response_format.json_schema.schema"


async def test_the_documented_tool_example_runs_as_written(
    gateway: RunningGateway, worker_ollama: FakeOllama
) -> None:
    assert docs_block("openai-tools-example") == (ROOT / "examples/openai_tools.py").read_text()
    async with running_openai_endpoint(endpoint_settings(gateway.address)) as endpoint:
        result = await run_example(
            "openai_tools.py", OPENAI_BASE_URL=endpoint.base_url, OPENAI_API_KEY="unused"
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "[calling get_weather(city='example')]",
        "The tool get_weather answered: Sunny in example",
    ]
