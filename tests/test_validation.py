"""Bad input gets INVALID_ARGUMENT naming the field, on both services."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2

from tandem.v1 import common_pb2, gateway_pb2, worker_pb2
from tandem_gateway.server import RunningGateway
from tandem_worker.server import RunningWorker
from tests.fake_ollama import FakeOllama
from tests.helpers import GUARD_S, gateway_stub, rich_details, user, worker_stub

OVERSIZED = "x" * 400_001

CASES = [
    ("empty messages", [], None, "messages"),
    ("empty content", [user("   ")], None, "messages[0].content"),
    ("unspecified role", [common_pb2.ChatMessage(content="hi")], None, "messages[0].role"),
    ("unknown role", [common_pb2.ChatMessage(role=42, content="hi")], None, "messages[0].role"),  # type: ignore[arg-type]
    ("oversized prompt", [user(OVERSIZED)], None, "messages"),
    (
        "assistant last",
        [user("hi"), common_pb2.ChatMessage(role=common_pb2.ROLE_ASSISTANT, content="yo")],
        None,
        "messages[1].role",
    ),
    (
        "temperature",
        [user("hi")],
        common_pb2.GenerationOptions(temperature=7.0),
        "options.temperature",
    ),
    ("max tokens", [user("hi")], common_pb2.GenerationOptions(max_tokens=0), "options.max_tokens"),
    ("top_p", [user("hi")], common_pb2.GenerationOptions(top_p=0.0), "options.top_p"),
    ("empty stop", [user("hi")], common_pb2.GenerationOptions(stop=[""]), "options.stop[0]"),
]


def _assert_names_field(exc: grpc.aio.AioRpcError, field: str) -> None:
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.details().startswith(f"{field}:")
    [bad_request] = rich_details(exc)
    assert isinstance(bad_request, error_details_pb2.BadRequest)
    assert bad_request.field_violations[0].field == field


@pytest.mark.parametrize(
    ("label", "messages", "options", "field"), CASES, ids=[c[0] for c in CASES]
)
async def test_route_rejects_bad_input(
    gateway: RunningGateway,
    worker_ollama: FakeOllama,
    label: str,
    messages: list,
    options,
    field: str,
) -> None:
    request = gateway_pb2.RouteRequest(messages=messages, options=options)
    async with grpc.aio.insecure_channel(gateway.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in gateway_stub(channel).Route(request, timeout=GUARD_S):
                pass
    _assert_names_field(caught.value, field)
    assert worker_ollama.generation_requests() == []


@pytest.mark.parametrize(
    ("label", "messages", "options", "field"), CASES, ids=[c[0] for c in CASES]
)
async def test_generate_rejects_bad_input(
    worker: RunningWorker,
    worker_ollama: FakeOllama,
    label: str,
    messages: list,
    options,
    field: str,
) -> None:
    request = worker_pb2.GenerateRequest(messages=messages, options=options)
    async with grpc.aio.insecure_channel(worker.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in worker_stub(channel).Generate(request, timeout=GUARD_S):
                pass
    _assert_names_field(caught.value, field)
    assert worker_ollama.generation_requests() == []


async def test_classify_rejects_empty_messages(gateway: RunningGateway) -> None:
    async with grpc.aio.insecure_channel(gateway.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await gateway_stub(channel).Classify(gateway_pb2.ClassifyRequest(), timeout=GUARD_S)
    _assert_names_field(caught.value, "messages")
