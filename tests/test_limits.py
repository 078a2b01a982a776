"""Per-client limits and connection hygiene, through real channels."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tandem.v1 import gateway_pb2
from tandem_gateway.server import running_gateway
from tandem_worker.server import RunningWorker, running_worker
from tests.conftest import Minted, gateway_settings, worker_settings
from tests.fake_ollama import FakeOllama
from tests.helpers import (
    GATEWAY_SERVICE,
    GUARD_S,
    NOT_SERVING,
    SERVING,
    WORKER_SERVICE,
    gateway_stub,
    rich_details,
    route,
    user,
    wait_for_health,
)

CLASSIFY = gateway_pb2.ClassifyRequest(
    messages=[user("Write a Python function that reverses a string")]
)


def retry_delay_s(error: grpc.aio.AioRpcError) -> float:
    retry = [d for d in rich_details(error) if isinstance(d, error_details_pb2.RetryInfo)]
    assert retry, "RESOURCE_EXHAUSTED without RetryInfo"
    return retry[0].retry_delay.ToNanoseconds() / 1e9


async def test_calls_per_second_are_limited_per_client_with_retry_advice(
    gateway_ollama: FakeOllama, worker: RunningWorker
) -> None:
    greedy, other = Minted.new("greedy", "gateway"), Minted.new("other", "gateway")
    # One call per 100 s sustained, two at once: the third call in a row is over.
    settings = gateway_settings(
        gateway_ollama.url,
        [worker.address],
        auth_tokens=[greedy.line, other.line],
        requests_per_second=0.01,
        request_burst=2,
    )
    async with running_gateway(settings) as running:
        await wait_for_health(running.address, GATEWAY_SERVICE)
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = gateway_stub(channel)
            for _ in range(2):
                await stub.Classify(CLASSIFY, timeout=GUARD_S, metadata=greedy.metadata)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Classify(CLASSIFY, timeout=GUARD_S, metadata=greedy.metadata)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "greedy" in (caught.value.details() or "")
            assert 1.0 < retry_delay_s(caught.value) <= 100.0
            # Another client has its own bucket, and health is never rate limited.
            await stub.Classify(CLASSIFY, timeout=GUARD_S, metadata=other.metadata)
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(5):
                reply = await health.Check(
                    health_pb2.HealthCheckRequest(service=GATEWAY_SERVICE), timeout=GUARD_S
                )
                assert reply.status == SERVING


async def test_open_calls_are_limited_per_client(
    gateway_ollama: FakeOllama, worker: RunningWorker
) -> None:
    watcher, other = Minted.new("watcher", "status"), Minted.new("other", "status")
    settings = gateway_settings(
        gateway_ollama.url,
        [worker.address],
        auth_tokens=[watcher.line, other.line],
        max_streams_per_client=2,
    )
    request = gateway_pb2.WatchClusterStatusRequest()
    async with running_gateway(settings) as running:
        await wait_for_health(running.address, GATEWAY_SERVICE)
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = gateway_stub(channel)
            open_calls = [
                stub.WatchClusterStatus(request, metadata=watcher.metadata) for _ in range(2)
            ]
            for call in open_calls:
                await call.read()  # admitted and streaming
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.WatchClusterStatus(
                    request, metadata=watcher.metadata, timeout=GUARD_S
                ).read()
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "2 calls open" in (caught.value.details() or "")
            assert retry_delay_s(caught.value) > 0
            extra = stub.WatchClusterStatus(request, metadata=other.metadata, timeout=GUARD_S)
            assert (await extra.read()).HasField("gateway")
            extra.cancel()
            # A finished call frees its place: once the server has closed the cancelled
            # call, the next one is admitted.
            open_calls.pop().cancel()
            limiter = running.limiter
            assert limiter is not None
            await limiter.changes.wait_until(lambda: limiter.open_calls("watcher") < 2, GUARD_S)
            again = stub.WatchClusterStatus(request, metadata=watcher.metadata)
            assert (await again.read()).HasField("gateway")
            for call in (again, *open_calls):
                call.cancel()


async def test_too_many_messages_is_invalid_argument(
    gateway_ollama: FakeOllama, worker: RunningWorker
) -> None:
    settings = gateway_settings(gateway_ollama.url, [worker.address], max_messages=4)
    async with running_gateway(settings) as running:
        await wait_for_health(running.address, GATEWAY_SERVICE)
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = gateway_stub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Classify(
                    gateway_pb2.ClassifyRequest(messages=[user("hi")] * 5), timeout=GUARD_S
                )
            await stub.Classify(
                gateway_pb2.ClassifyRequest(messages=[user("hi")] * 4), timeout=GUARD_S
            )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith("messages: at most 4 messages")


async def test_an_oversized_message_is_refused_and_the_server_carries_on(
    gateway_ollama: FakeOllama, worker: RunningWorker
) -> None:
    settings = gateway_settings(gateway_ollama.url, [worker.address], max_message_bytes=64 * 1024)
    async with running_gateway(settings) as running:
        await wait_for_health(running.address, GATEWAY_SERVICE)
        async with grpc.aio.insecure_channel(running.address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await gateway_stub(channel).Classify(
                    gateway_pb2.ClassifyRequest(messages=[user("x" * 100_000)]), timeout=GUARD_S
                )
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        result = await route(running.address, gateway_pb2.RouteRequest(messages=[user("hello")]))
        assert result.summary is not None


async def test_recycled_worker_connections_never_interrupt_the_gateway(
    gateway_ollama: FakeOllama, worker_ollama: FakeOllama
) -> None:
    """The worker closes every connection after a short age + grace; the gateway's
    health Watch reconnects at once, so it never sees the worker go away."""
    settings = worker_settings(
        worker_ollama.url, max_connection_age_s=0.2, max_connection_age_grace_s=0.3
    )
    async with running_worker(settings) as worker:
        await wait_for_health(worker.address, WORKER_SERVICE)
        async with running_gateway(
            gateway_settings(gateway_ollama.url, [worker.address])
        ) as gateway:
            await wait_for_health(gateway.address, GATEWAY_SERVICE)
            seen: list[int] = []
            watcher = asyncio.create_task(_follow(gateway.address, seen))
            recycled = 0
            async with grpc.aio.insecure_channel(worker.address) as channel:
                health = health_pb2_grpc.HealthStub(channel)
                async with asyncio.timeout(GUARD_S):
                    while recycled < 3:  # three connection lifetimes, seen as our own stream cut
                        with contextlib.suppress(grpc.aio.AioRpcError):
                            async for _ in health.Watch(
                                health_pb2.HealthCheckRequest(service=WORKER_SERVICE)
                            ):
                                pass
                        recycled += 1
                        result = await route(
                            gateway.address, gateway_pb2.RouteRequest(messages=[user("hi")])
                        )
                        assert result.text == worker_ollama.reply
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    assert seen and NOT_SERVING not in seen


async def _follow(address: str, seen: list[int]) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        async for reply in health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=GATEWAY_SERVICE)
        ):
            seen.append(reply.status)
