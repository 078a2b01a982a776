"""The gateway against a worker that misbehaves on purpose.

The scripted worker is a plain synchronous gRPC server, which is what
pytest-grpc serves: its ``grpc_server`` fixture starts it on a real port.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tandem.v1 import common_pb2, gateway_pb2, worker_pb2, worker_pb2_grpc
from tandem_gateway.server import RunningGateway, running_gateway
from tandem_worker.server import RunningWorker
from tests.conftest import gateway_settings
from tests.fake_ollama import FakeOllama
from tests.helpers import (
    GATEWAY_SERVICE,
    GUARD_S,
    NOT_SERVING,
    SERVING,
    WORKER_SERVICE,
    gateway_stub,
    route,
    user,
    wait_for_health,
)

# The scripted worker's threads: a held health check must not stall its streams.
grpc_max_workers = 8


class ScriptedHealth(health.HealthServicer):
    """The standard health servicer, whose Check can be held unanswered, as a worker
    whose event loop is busy streaming would leave it."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = threading.Event()
        self.held_checks = 0
        self._arrived = threading.Condition()

    def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        if self.hold.is_set():
            with self._arrived:
                self.held_checks += 1
                self._arrived.notify_all()
            ended = threading.Event()
            context.add_callback(ended.set)  # the caller's deadline passed
            ended.wait(GUARD_S)
        return super().Check(request, context)

    def wait_for_held_checks(self, count: int) -> bool:
        with self._arrived:
            return self._arrived.wait_for(lambda: self.held_checks >= count, GUARD_S)


class ScriptedWorker(worker_pb2_grpc.WorkerServiceServicer):
    """Answers Generate according to ``mode``."""

    def __init__(self) -> None:
        self.mode = "no_summary"
        self.calls = 0
        self.health = ScriptedHealth()
        self.stop_streaming = threading.Event()

    def Generate(
        self, request: worker_pb2.GenerateRequest, context: grpc.ServicerContext
    ) -> Iterator[worker_pb2.GenerateResponse]:
        self.calls += 1
        if self.mode == "unavailable_before_first_token":
            context.abort(grpc.StatusCode.UNAVAILABLE, "scripted: backend went away")
        if self.mode == "stream_until_stopped":  # a token every 50 ms, like a slow model
            while not self.stop_streaming.wait(0.05) and context.is_active():
                yield worker_pb2.GenerateResponse(delta=common_pb2.TextDelta(text="tok "))
            return
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
        servicer.health.set(WORKER_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(servicer.health, server)

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


async def test_a_busy_worker_whose_streams_deliver_is_not_declared_unreachable(
    scripted_gateway: RunningGateway, grpc_servicer: ScriptedWorker
) -> None:
    """A health check that times out while the worker's stream keeps delivering is a busy
    worker, not a dead link: the gateway keeps routing to it. Once nothing arrives
    either, the next timed-out check marks it unreachable."""
    grpc_servicer.mode = "stream_until_stopped"
    grpc_servicer.stop_streaming.clear()
    (link,) = scripted_gateway.cluster.pool.links
    health_servicer = grpc_servicer.health
    async with grpc.aio.insecure_channel(scripted_gateway.address) as channel:
        call = gateway_stub(channel).Route(
            gateway_pb2.RouteRequest(messages=[user("write a lot")]), timeout=GUARD_S
        )
        while (await call.read()).WhichOneof("event") != "delta":
            pass
        failures = link.consecutive_failures
        health_servicer.hold.set()
        try:
            # The second held check arrives only after the first one timed out at the
            # gateway and its failure was handled.
            assert await asyncio.to_thread(
                health_servicer.wait_for_held_checks, health_servicer.held_checks + 2
            )
            assert link.consecutive_failures > failures
            assert link.serving, link.describe()
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=GATEWAY_SERVICE), timeout=GUARD_S
            )
            assert reply.status == SERVING

            stopped = time.monotonic()
            grpc_servicer.stop_streaming.set()  # the stream ends; nothing arrives any more
            with pytest.raises(grpc.aio.AioRpcError):
                while await call.read() is not grpc.aio.EOF:
                    pass
            await wait_for_health(scripted_gateway.address, GATEWAY_SERVICE, NOT_SERVING)
            assert not link.serving and "health check failed" in link.error
            silent_s = time.monotonic() - stopped
            print(f"\n[measured] silent busy worker -> unreachable: {silent_s:.2f} s")
        finally:
            health_servicer.hold.clear()
    await wait_for_health(scripted_gateway.address, GATEWAY_SERVICE, SERVING)
