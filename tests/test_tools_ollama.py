"""Tools and structured output over Ollama's /api/chat: the backend's httpx code
against the fake Ollama speaking the same wire format (one whole tool call per
chunk, arguments an object, ``done_reason`` still "stop")."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator

import pytest

from tandem.backends import (
    BackendUnsupported,
    ChatRequest,
    ChatTurn,
    Delta,
    Done,
    ResponseFormat,
    SamplingOptions,
    StreamEvent,
    ToolCall,
    ToolChoice,
    ToolDefinition,
)
from tandem.backends.ollama import OllamaBackend
from tests.fake_ollama import FakeOllama, start_fake_ollama, stop_fake_ollama

MODEL = "qwen3-coder-next"
WEATHER = ToolDefinition(
    "get_weather",
    "The weather in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CLOCK = ToolDefinition("get_time", "The time in a zone", {"type": "object", "properties": {}})
ASK = [ChatTurn("user", "What is the weather in Paris?")]


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    server = start_fake_ollama(FakeOllama(models=[f"{MODEL}:latest", "llama3.1:8b"]))
    yield server
    stop_fake_ollama(server)


@pytest.fixture
async def backend(fake: FakeOllama) -> AsyncIterator[OllamaBackend]:
    ollama = OllamaBackend(fake.url, MODEL, keep_alive="2h", num_ctx=8192)
    yield ollama
    await ollama.aclose()


async def collect(
    backend: OllamaBackend, turns: list[ChatTurn], request: ChatRequest
) -> list[StreamEvent]:
    events = backend.chat_stream(turns, SamplingOptions(), request)
    async with contextlib.aclosing(events):
        return [event async for event in events]


async def test_tools_go_out_as_ollama_takes_them_and_calls_come_back_as_events(
    backend: OllamaBackend, fake: FakeOllama
) -> None:
    fake.tool_caller = lambda body: [("get_weather", {"city": "Paris", "days": 2})]
    events = await collect(backend, ASK, ChatRequest(tools=(WEATHER, CLOCK)))

    [body] = fake.generation_requests()
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": WEATHER.parameters,
            },
        },
        {
            "type": "function",
            "function": {
                "name": "get_time",
                "description": "The time in a zone",
                "parameters": {"type": "object", "properties": {}},
            },
        },
    ]
    assert body["options"]["num_ctx"] == 8192 and body["keep_alive"] == "2h"
    assert "format" not in body
    call, done = events
    assert isinstance(call, ToolCall) and isinstance(done, Done)
    assert (call.name, dict(call.arguments)) == ("get_weather", {"city": "Paris", "days": 2})
    assert call.id.startswith("call_")  # Ollama's own id is kept
    assert done.finish_reason == "tool_calls"  # though Ollama said done_reason "stop"


async def test_calls_without_ids_from_older_ollama_get_unique_ones(
    backend: OllamaBackend, fake: FakeOllama
) -> None:
    fake.tool_call_ids = False
    fake.tool_caller = lambda body: [("get_weather", {"city": "A"}), ("get_weather", {"city": "B"})]
    first = [
        e
        for e in await collect(backend, ASK, ChatRequest(tools=(WEATHER,)))
        if isinstance(e, ToolCall)
    ]
    again = [
        e
        for e in await collect(backend, ASK, ChatRequest(tools=(WEATHER,)))
        if isinstance(e, ToolCall)
    ]
    ids = [call.id for call in first + again]
    assert len(set(ids)) == 4 and all(i.startswith("call_") for i in ids)
    assert [dict(c.arguments)["city"] for c in first] == ["A", "B"]


async def test_a_tool_round_trip_sends_the_call_and_its_result_as_ollama_messages(
    backend: OllamaBackend, fake: FakeOllama
) -> None:
    call = ToolCall("call_abc", "get_weather", {"city": "Paris"})
    turns = [
        *ASK,
        ChatTurn("assistant", "", tool_calls=(call,)),
        ChatTurn("tool", '{"temp": 21}', tool_call_id="call_abc"),
    ]
    events = await collect(backend, turns, ChatRequest(tools=(WEATHER,)))

    sent = fake.generation_requests()[-1]["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_abc",
                "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}},
            }
        ],
    }
    # The tool's name is filled in from the call it answers: Ollama's templates read tool_name.
    assert sent[2] == {
        "role": "tool",
        "content": '{"temp": 21}',
        "tool_name": "get_weather",
        "tool_call_id": "call_abc",
    }
    text = "".join(e.text for e in events if isinstance(e, Delta))
    assert text == 'The tool get_weather answered: {"temp": 21}'
    assert isinstance(events[-1], Done) and events[-1].finish_reason == "stop"


async def test_tool_choice_none_sends_no_tools(backend: OllamaBackend, fake: FakeOllama) -> None:
    events = await collect(
        backend, ASK, ChatRequest(tools=(WEATHER,), tool_choice=ToolChoice("none"))
    )
    assert "tools" not in fake.generation_requests()[-1]
    assert not any(isinstance(e, ToolCall) for e in events)


async def test_a_named_function_is_the_only_tool_offered_and_the_model_is_told(
    backend: OllamaBackend, fake: FakeOllama
) -> None:
    fake.tool_caller = lambda body: [(body["tools"][0]["function"]["name"], {})]
    events = await collect(
        backend, ASK, ChatRequest(tools=(WEATHER, CLOCK), tool_choice=ToolChoice.named("get_time"))
    )
    body = fake.generation_requests()[-1]
    assert [t["function"]["name"] for t in body["tools"]] == ["get_time"]
    assert (
        body["messages"][-1]["role"] == "system" and "get_time" in body["messages"][-1]["content"]
    )
    assert [e.name for e in events if isinstance(e, ToolCall)] == ["get_time"]


async def test_a_required_call_the_model_does_not_make_fails_clearly(
    backend: OllamaBackend, fake: FakeOllama
) -> None:
    fake.tool_caller = lambda body: []  # the model answers in text
    events = backend.chat_stream(
        ASK, SamplingOptions(), ChatRequest(tools=(WEATHER,), tool_choice=ToolChoice("required"))
    )
    seen: list[StreamEvent] = []
    with pytest.raises(BackendUnsupported) as caught:
        async with contextlib.aclosing(events):
            async for event in events:
                seen.append(event)
    assert seen == []  # the text was held back, not passed off as the answer
    assert caught.value.reason == "TOOL_CHOICE_NOT_HONOURED"
    assert "without calling a tool" in caught.value.message


async def test_json_and_schema_formats_are_ollamas_format_field(
    backend: OllamaBackend, fake: FakeOllama
) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    events = await collect(
        backend, ASK, ChatRequest(response_format=ResponseFormat.json_schema(schema))
    )
    assert fake.generation_requests()[-1]["format"] == schema
    answer = json.loads("".join(e.text for e in events if isinstance(e, Delta)))
    assert set(answer) == {"name", "age"} and isinstance(answer["age"], int)

    await collect(backend, ASK, ChatRequest(response_format=ResponseFormat.json()))
    assert fake.generation_requests()[-1]["format"] == "json"


async def test_the_request_model_is_the_one_asked_of_ollama(
    backend: OllamaBackend, fake: FakeOllama
) -> None:
    await collect(backend, ASK, ChatRequest(model="llama3.1:8b"))
    await collect(backend, ASK, ChatRequest())
    assert [b["model"] for b in fake.generation_requests()] == ["llama3.1:8b", MODEL]
