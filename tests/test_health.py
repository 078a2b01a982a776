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
    request = health_pb2.HealthCheckRequest(service=WORKER_SERVICE)
    async with grpc.aio.insecure_channel(worker.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        staying = stub.Watch(request, timeout=GUARD_S)
        leaving = stub.Watch(request, timeout=GUARD_S)
        assert (await staying.read()).status == SERVING
        assert (await leaving.read()).status == SERVING
        leaving.cancel()
        # A round trip on the same connection: the server has seen the cancel.
        await stub.Check(request, timeout=GUARD_S)
        await worker.server.set_ready(WORKER_SERVICE, False)
        assert (await staying.read()).status == NOT_SERVING
        await worker.server.set_ready(WORKER_SERVICE, True)
        assert (await staying.read()).status == SERVING
        staying.cancel()
