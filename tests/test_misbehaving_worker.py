"""The gateway against a worker that misbehaves on purpose.

The scripted worker is a plain synchronous gRPC server, which is what
pytest-grpc serves: its ``grpc_server`` fixture starts it on a real port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tandem.v1 import common_pb2, gateway_pb2, worker_pb2, worker_pb2_grpc
from tandem_gateway.server import RunningGateway, running_gateway
from tandem_worker.server import RunningWorker
from tests.conftest import gateway_settings
from tests.fake_ollama import FakeOllama
from tests.helpers import GATEWAY_SERVICE, GUARD_S, WORKER_SERVICE, route, user, wait_for_health


class ScriptedWorker(worker_pb2_grpc.WorkerServiceServicer):
    """Answers Generate according to ``mode``."""

    def __init__(self) -> None:
        self.mode = "no_summary"
        self.calls = 0

    def Generate(
        self, request: worker_pb2.GenerateRequest, context: grpc.ServicerContext
    ) -> Iterator[worker_pb2.GenerateResponse]:
        self.calls += 1
        if self.mode == "unavailable_before_first_token":
            context.abort(grpc.StatusCode.UNAVAILABLE, "scripted: backend went away")
        yield worker_pb2.GenerateResponse(delta=common_pb2.TextDelta(text="half an "))
        if self.mode == "unavailable_after_first_token":
            context.abort(grpc.StatusCode.UNAVAILABLE, "scripted: died mid-answer")
        # mode "no_summary": the stream ends OK without its summary

    def GetNodeStatus(
        self, request: worker_pb2.GetNodeStatusRequest, context: grpc.ServicerContext
    ) -> worker_pb2.NodeStatus:
        return worker_pb2.NodeStatus(
            node="scripted",
            model="scripted",
            model_available=True,
            model_loaded=True,
            backend_reachable=True,
        )


@pytest.fixture(scope="module")
def grpc_servicer() -> ScriptedWorker:
    return ScriptedWorker()


@pytest.fixture(scope="module")
def grpc_add_to_server():
    def add(servicer: ScriptedWorker, server: grpc.Server) -> None:
        worker_pb2_grpc.add_WorkerServiceServicer_to_server(servicer, server)
        health_servicer = health.HealthServicer()
        health_servicer.set(WORKER_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)

    return add


@pytest.fixture(scope="module")
def grpc_stub_cls():
    return worker_pb2_grpc.WorkerServiceStub


@pytest.fixture
async def scripted_gateway(
    grpc_server: grpc.Server, grpc_addr: str, gateway_ollama: FakeOllama
) -> AsyncIterator[RunningGateway]:
    async with running_gateway(gateway_settings(gateway_ollama.url, [grpc_addr])) as gateway:
        await wait_for_health(gateway.address, GATEWAY_SERVICE)
        yield gateway


async def test_a_stream_without_summary_is_an_error_not_a_short_answer(
    scripted_gateway: RunningGateway, grpc_servicer: ScriptedWorker, grpc_addr: str
) -> None:
    grpc_servicer.mode = "no_summary"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await route(scripted_gateway.address, gateway_pb2.RouteRequest(messages=[user("hi")]))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert grpc_addr in caught.value.details() and "without a summary" in caught.value.details()


async def test_failure_after_the_first_token_is_not_retried(
    scripted_gateway: RunningGateway, grpc_servicer: ScriptedWorker, grpc_addr: str
) -> None:
    grpc_servicer.mode = "unavailable_after_first_token"
    calls = grpc_servicer.calls
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await route(scripted_gateway.address, gateway_pb2.RouteRequest(messages=[user("hi")]))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert grpc_addr in caught.value.details() and "died mid-answer" in caught.value.details()
    assert grpc_servicer.calls == calls + 1


async def test_failure_before_the_first_token_fails_over_to_the_next_worker(
    grpc_server: grpc.Server,
    grpc_servicer: ScriptedWorker,
    grpc_addr: str,
    gateway_ollama: FakeOllama,
    worker: RunningWorker,
    worker_ollama: FakeOllama,
) -> None:
    grpc_servicer.mode = "unavailable_before_first_token"
    worker_ollama.reply = "answer from the healthy worker"
    settings = gateway_settings(gateway_ollama.url, [grpc_addr, worker.address])
    async with running_gateway(settings) as gateway:
        links = gateway.cluster.pool.links
        while not all(link.serving for link in links):
            assert await gateway.cluster.wait_for_change(GUARD_S), "workers never became SERVING"
        # Both serve; make the scripted one the first choice by loading the other.
        gateway.cluster.pool.routes[worker.address] += 100
        calls = grpc_servicer.calls
        result = await route(gateway.address, gateway_pb2.RouteRequest(messages=[user("hi")]))
    assert grpc_servicer.calls == calls + 1
    assert result.text == "answer from the healthy worker"
    assert result.summary.worker == worker.address
