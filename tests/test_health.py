"""The health service: liveness vs readiness, and watchers that do not lose updates."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tandem_worker.server import RunningWorker
from tests.helpers import GUARD_S, NOT_SERVING, SERVING, WORKER_SERVICE


async def test_unknown_service_is_not_found(worker: RunningWorker) -> None:
    async with grpc.aio.insecure_channel(worker.address) as channel:
        try:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=GUARD_S
            )
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND
        else:
            raise AssertionError("an unknown service must be NOT_FOUND")


async def test_a_watcher_leaving_does_not_silence_the_others(worker: RunningWorker) -> None:
    health = worker.server.health

    async def watchers_become(count: int) -> None:
        await health.watchers_changed.wait_until(
            lambda: health.watchers(WORKER_SERVICE) == count, GUARD_S
        )

    request = health_pb2.HealthCheckRequest(service=WORKER_SERVICE)
    await watchers_become(0)  # the fixture's readiness watch has gone
    async with grpc.aio.insecure_channel(worker.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        staying = stub.Watch(request, timeout=GUARD_S)
        leaving = stub.Watch(request, timeout=GUARD_S)
        assert (await staying.read()).status == SERVING
        assert (await leaving.read()).status == SERVING
        await watchers_become(2)
        leaving.cancel()
        # The server has run the leaving watcher's clean-up: that is where the bug was.
        await watchers_become(1)
        await worker.server.set_ready(WORKER_SERVICE, False)
        assert (await staying.read()).status == NOT_SERVING
        await worker.server.set_ready(WORKER_SERVICE, True)
        assert (await staying.read()).status == SERVING
        staying.cancel()
    await watchers_become(0)
