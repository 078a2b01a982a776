"""The gateway's view of its workers: one channel each, watched over gRPC health.

Each worker's health is followed with the standard ``Health/Watch`` stream, so
the gateway learns of a worker turning ready, not ready, or unreachable as it
happens, not on a polling tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tandem.changes import ChangeSignal
from tandem.node_status import timestamp
from tandem.serving import CHANNEL_OPTIONS
from tandem.status import RichStatus, unavailable
from tandem.v1 import gateway_pb2, worker_pb2, worker_pb2_grpc

log = logging.getLogger(__name__)

WORKER_SERVICE = worker_pb2.DESCRIPTOR.services_by_name["WorkerService"].full_name
_RETRY_S = 0.5
_STATUS_TIMEOUT_S = 3.0

ChangeSink = Callable[[], Awaitable[None]]


class WorkerLink:
    """One worker as the gateway sees it."""

    def __init__(self, address: str, on_change: ChangeSink) -> None:
        self.address = address
        self.channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.stub = worker_pb2_grpc.WorkerServiceStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)
        self._on_change = on_change
        self.state: gateway_pb2.WorkerState.ValueType = gateway_pb2.WORKER_STATE_UNREACHABLE
        self.error = "not contacted yet"
        self.last_seen: datetime | None = None
        self.node: worker_pb2.NodeStatus | None = None
        self.in_flight = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def serving(self) -> bool:
        return self.state == gateway_pb2.WORKER_STATE_SERVING

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name=f"watch-{self.address}")

    async def _watch(self) -> None:
        while True:
            try:
                call = self._health.Watch(health_pb2.HealthCheckRequest(service=WORKER_SERVICE))
                async for response in call:
                    self.last_seen = datetime.now(UTC)
                    serving = response.status == health_pb2.HealthCheckResponse.SERVING
                    await self._refresh_node()
                    await self._set(
                        gateway_pb2.WORKER_STATE_SERVING if serving else gateway_pb2.WORKER_STATE_NOT_SERVING,
                        "" if serving else (self.node.error if self.node and self.node.error else "worker reports NOT_SERVING"),
                    )
                await self._set(gateway_pb2.WORKER_STATE_UNREACHABLE, "health stream ended")
            except grpc.aio.AioRpcError as exc:
                await self._set(
                    gateway_pb2.WORKER_STATE_UNREACHABLE, f"{exc.code().name}: {exc.details()}"
                )
            await asyncio.sleep(_RETRY_S)

    async def _refresh_node(self) -> None:
        try:
            self.node = await self.stub.GetNodeStatus(
                worker_pb2.GetNodeStatusRequest(), timeout=_STATUS_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            log.debug("worker %s: GetNodeStatus failed: %s", self.address, exc.code().name)

    async def _set(self, state: gateway_pb2.WorkerState.ValueType, error: str) -> None:
        changed = state != self.state or error != self.error
        self.state, self.error = state, error
        if changed:
            log.log(
                logging.INFO if state == gateway_pb2.WORKER_STATE_SERVING else logging.WARNING,
                "worker %s: %s %s",
                self.address,
                gateway_pb2.WorkerState.Name(state),
                error,
            )
            await self._on_change()

    def describe(self) -> str:
        return f"{self.address} ({gateway_pb2.WorkerState.Name(self.state)}: {self.error or 'ok'})"

    def to_proto(self) -> gateway_pb2.WorkerStatus:
        status = gateway_pb2.WorkerStatus(address=self.address, state=self.state, error=self.error)
        if self.node is not None and self.state != gateway_pb2.WORKER_STATE_UNREACHABLE:
            status.node.CopyFrom(self.node)
        if self.last_seen is not None:
            status.last_seen.CopyFrom(timestamp(self.last_seen))
        return status

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.channel.close()


class WorkerPool:
    """Chooses a serving worker for each request."""

    def __init__(self, addresses: Iterable[str], on_change: ChangeSink) -> None:
        self._on_change = on_change
        self.changes = ChangeSignal()
        self.links = [WorkerLink(address, self._link_changed) for address in addresses]

    async def _link_changed(self) -> None:
        self.changes.notify()
        await self._on_change()

    @property
    def any_serving(self) -> bool:
        return any(link.serving for link in self.links)

    def start(self) -> None:
        for link in self.links:
            link.start()

    def pick(self, exclude: set[str] = frozenset()) -> WorkerLink | None:  # type: ignore[assignment]
        candidates = [l for l in self.links if l.serving and l.address not in exclude]
        if not candidates:
            return None
        return min(candidates, key=lambda l: (not (l.node and l.node.model_loaded), l.in_flight))

    async def wait_for_worker(self, exclude: set[str], timeout_s: float) -> WorkerLink:
        """A serving worker, waiting up to ``timeout_s`` for one to appear."""
        deadline = time.monotonic() + timeout_s
        while True:
            link = self.pick(exclude)
            if link is not None:
                return link
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NoWorkerError(self._no_worker_status(exclude))
            await self.changes.wait(remaining)

    def _no_worker_status(self, exclude: set[str]) -> RichStatus:
        states = "; ".join(link.describe() for link in self.links)
        tried = f" (already failed: {', '.join(sorted(exclude))})" if exclude else ""
        names = ",".join(link.address for link in self.links)
        return unavailable(names, f"no worker is serving{tried}: {states}", reason="NO_WORKER")

    async def close(self) -> None:
        for link in self.links:
            await link.close()


class NoWorkerError(Exception):
    def __init__(self, status: RichStatus) -> None:
        super().__init__(status.message)
        self.status = status
