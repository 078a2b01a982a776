"""The gateway's live picture of the cluster, its readiness, and a change feed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from tandem.changes import ChangeSignal
from tandem.monitor import BackendMonitor
from tandem.node_status import timestamp
from tandem.v1 import gateway_pb2
from tandem_gateway.workers import WorkerPool

ReadinessSink = Callable[[bool], Awaitable[None]]


class ClusterView:
    """Combines the classifier backend and the workers into one status and readiness."""

    def __init__(self, monitor: BackendMonitor, addresses: list[str], *, fail_open: bool) -> None:
        self.monitor = monitor
        self.pool = WorkerPool(addresses, self._changed)
        self._fail_open = fail_open
        self._classifier_ready = False
        self._ready: bool | None = None
        self._readiness_sink: ReadinessSink | None = None
        self.changes = ChangeSignal()

    @property
    def ready(self) -> bool:
        classifier_ok = self._classifier_ready or self._fail_open
        return classifier_ok and self.pool.any_serving

    def start(self, on_readiness: ReadinessSink) -> None:
        self._readiness_sink = on_readiness
        self.monitor.start(self._classifier_readiness)
        self.pool.start()

    async def _classifier_readiness(self, ready: bool) -> None:
        self._classifier_ready = ready
        await self._changed()

    async def _changed(self) -> None:
        self.changes.notify()
        ready = self.ready
        if ready != self._ready and self._readiness_sink is not None:
            self._ready = ready
            await self._readiness_sink(ready)

    async def wait_for_change(self, timeout_s: float) -> bool:
        """True when something changed, False when ``timeout_s`` passed first."""
        return await self.changes.wait(timeout_s)

    def snapshot(self) -> gateway_pb2.ClusterStatus:
        status = gateway_pb2.ClusterStatus(
            gateway=self.monitor.status(),
            workers=[link.to_proto() for link in self.pool.links],
            ready=self.ready,
        )
        status.observed_at.CopyFrom(timestamp(datetime.now(UTC)))
        return status

    async def close(self) -> None:
        await self.pool.close()
        await self.monitor.stop()
