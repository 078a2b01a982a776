"""Bad input at the gateway: clear INVALID_ARGUMENT naming the field, configurable
limits, and no crash (the gateway answers normally afterwards)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from tandem.conversions import bracket_depth
from tandem.security.wire import first_invalid_utf8_field
from tandem.v1 import common_pb2, gateway_pb2
from tandem_gateway.server import RunningGateway, running_gateway
from tandem_worker.server import RunningWorker
from tests.conftest import gateway_settings
from tests.fake_ollama import FakeOllama
from tests.helpers import (
    GATEWAY_SERVICE,
    GUARD_S,
    gateway_stub,
    rich_details,
    route,
    user,
    wait_for_health,
)


def tool(text: str) -> common_pb2.ChatMessage:
    return common_pb2.ChatMessage(role=common_pb2.ROLE_TOOL, content=text)


async def _rejected(address: str, request: gateway_pb2.RouteRequest) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in gateway_stub(channel).Route(request, timeout=GUARD_S):
                pass
    return caught.value


def _field_of(exc: grpc.aio.AioRpcError) -> str:
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{exc.code().name}: {exc.details()}"
    bad = [d for d in rich_details(exc) if isinstance(d, error_details_pb2.BadRequest)]
    assert bad, "INVALID_ARGUMENT without BadRequest details"
    field = bad[0].field_violations[0].field
    assert (exc.details() or "").startswith(f"{field}:")
    return field


async def _still_answers(address: str) -> None:
    result = await route(
        address, gateway_pb2.RouteRequest(messages=[user("Write hello world in C")])
    )
    assert result.summary is not None and result.text


DEEP_JSON = '{"result": ' + "[" * 5000 + "1" + "]" * 5000 + "}"

CASES: list[tuple[str, list[common_pb2.ChatMessage], str, str]] = [
    ("NUL byte", [user("print('a')\x00rm -rf /")], "messages[0].content", "NUL"),
    ("NUL only", [user("\x00" * 64)], "messages[0].content", "NUL"),
    (
        "deep tool JSON",
        [user("run the tool"), tool(DEEP_JSON), user("go on")],
        "messages[1].content",
        "nests",
    ),
    ("thousands of messages", [user(f"part {i}") for i in range(3000)], "messages", "at most"),
]


@pytest.mark.parametrize(("label", "messages", "field", "says"), CASES, ids=[c[0] for c in CASES])
async def test_bad_conversations_are_invalid_argument_naming_the_field(
    gateway: RunningGateway,
    worker_ollama: FakeOllama,
    gateway_ollama: FakeOllama,
    label: str,
    messages: list[common_pb2.ChatMessage],
    field: str,
    says: str,
) -> None:
    exc = await _rejected(gateway.address, gateway_pb2.RouteRequest(messages=messages))
    assert _field_of(exc) == field
    assert says in (exc.details() or "")
    assert worker_ollama.generation_requests() == [] and gateway_ollama.generation_requests() == []
    await _still_answers(gateway.address)


async def test_deep_json_in_a_user_message_is_just_text(
    gateway: RunningGateway, worker_ollama: FakeOllama
) -> None:
    """Only tool results are parsed as data by agents; a user may paste anything."""
    result = await route(
        gateway.address, gateway_pb2.RouteRequest(messages=[user("what is this? " + DEEP_JSON)])
    )
    assert result.decision.verdict == gateway_pb2.VERDICT_ALLOW
    assert result.text == worker_ollama.reply
    (sent,) = worker_ollama.generation_requests()
    assert sent["messages"][-1]["content"] == "what is this? " + DEEP_JSON


async def test_limits_are_configurable(
    gateway_ollama: FakeOllama, worker: RunningWorker, worker_ollama: FakeOllama
) -> None:
    settings = gateway_settings(
        gateway_ollama.url, [worker.address], max_prompt_chars=1_000, max_tool_nesting=3
    )
    async with running_gateway(settings) as gateway:
        await wait_for_health(gateway.address, GATEWAY_SERVICE)
        huge = await _rejected(
            gateway.address, gateway_pb2.RouteRequest(messages=[user("x" * 1_001)])
        )
        nested = await _rejected(
            gateway.address,
            gateway_pb2.RouteRequest(messages=[user("run"), tool('{"a": [[[1]]]}')]),
        )
        fine = await route(
            gateway.address, gateway_pb2.RouteRequest(messages=[user("run"), tool('{"a": [[1]]}')])
        )
    assert _field_of(huge) == "messages" and "1000 characters" in (huge.details() or "")
    assert _field_of(nested) == "messages[1].content"
    assert fine.decision.verdict == gateway_pb2.VERDICT_ALLOW


def _classify_bytes(content: bytes) -> bytes:
    """A ClassifyRequest built by hand, as a non-Python client might send it:
    field 1 (messages), holding field 1 (role, varint) and field 2 (content, bytes)."""
    message = b"\x08\x02" + b"\x12" + bytes([len(content)]) + content
    return b"\x0a" + bytes([len(message)]) + message


async def test_invalid_utf8_on_the_wire_is_invalid_argument(gateway: RunningGateway) -> None:
    raw = _classify_bytes(b"caf\xc3 \xff\xfe bad")
    async with grpc.aio.insecure_channel(gateway.address) as channel:
        call = channel.unary_unary(
            "/tandem.v1.GatewayService/Classify",
            request_serializer=lambda b: b,
            response_deserializer=gateway_pb2.ClassifyResponse.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(raw, timeout=GUARD_S)
        good: Any = await call(_classify_bytes("café".encode()), timeout=GUARD_S)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _field_of(caught.value) == "messages[0].content"
    assert "must be UTF-8 (invalid UTF-8 at byte 3)" in (caught.value.details() or "")
    assert good.decision.verdict == gateway_pb2.VERDICT_ALLOW  # the same bytes, valid: fine
    await _still_answers(gateway.address)


def test_the_invalid_utf8_field_is_located_in_hand_built_bytes() -> None:
    raw = _classify_bytes(b"ok") + _classify_bytes(b"caf\xc3 bad")[0:]
    where = first_invalid_utf8_field(gateway_pb2.ClassifyRequest.DESCRIPTOR, raw)
    assert where == "messages[1].content (invalid UTF-8 at byte 3)"
    assert (
        first_invalid_utf8_field(gateway_pb2.ClassifyRequest.DESCRIPTOR, _classify_bytes(b"fine"))
        is None
    )
    assert (
        first_invalid_utf8_field(gateway_pb2.ClassifyRequest.DESCRIPTOR, b"\x0a\xff") is None
    )  # truncated


def test_bracket_depth_ignores_strings_and_stops_early() -> None:
    assert bracket_depth('{"a": "[[[[[[", "b": [1, {"c": 2}]}') == 3
    assert bracket_depth('"\\"[[[["') == 0
    assert bracket_depth("[" * 100_000, stop_above=64) == 65
