"""The standard ``grpc.health.v1.Health`` service, for asyncio servers.

The protocol and its generated stubs come from grpcio-health-checking. Its
asyncio servicer is not used: when one watcher of a service disconnects it
deletes the condition every other watcher of that service waits on, so those
watchers (a second gateway, a dashboard) never hear of a change again. This
servicer gives each watcher its own wake-up event instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tandem.changes import ChangeSignal

# A grpc.health.v1 serving status (SERVING, NOT_SERVING, ...), an int enum value.
ServingStatus = int
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class HealthService(health_pb2_grpc.HealthServicer):
    """``""`` is the process's liveness; other names are per-service readiness."""

    def __init__(self) -> None:
        self._status: dict[str, ServingStatus] = {"": SERVING}
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._shutting_down = False
        self.watchers_changed = ChangeSignal()

    def watchers(self, service: str) -> int:
        """How many Watch streams follow ``service`` now."""
        return len(self._watchers.get(service, ()))

    def set(self, service: str, status: ServingStatus) -> None:
        if self._shutting_down:
            return
        self._publish(service, status)

    def status(self, service: str) -> ServingStatus | None:
        return self._status.get(service)

    def enter_graceful_shutdown(self) -> None:
        """Every service turns NOT_SERVING, for good."""
        for service in list(self._status):
            self._publish(service, NOT_SERVING)
        self._shutting_down = True

    def _publish(self, service: str, status: ServingStatus) -> None:
        self._status[service] = status
        for wake in self._watchers.get(service, ()):
            wake.set()

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        status = self._status.get(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        wake = asyncio.Event()
        watchers = self._watchers.setdefault(request.service, set())
        watchers.add(wake)
        self.watchers_changed.notify()
        last: ServingStatus | None = None
        try:
            while True:
                status = self._status.get(request.service, SERVICE_UNKNOWN)
                if status != last:
                    last = status
                    yield health_pb2.HealthCheckResponse(status=status)
                await wake.wait()
                wake.clear()
        finally:
            watchers.discard(wake)
            self.watchers_changed.notify()
