"""The gateway's live picture of the cluster, its readiness, and a change feed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from tandem.changes import ChangeSignal
from tandem.host_memory import host_memory
from tandem.monitor import BackendMonitor
from tandem.protoutil import timestamp
from tandem.v1 import gateway_pb2, worker_pb2
from tandem_gateway.pool import WorkerPool

_GIB = 1024**3
LOW_MEMORY_FRACTION = 0.10
LOW_MEMORY_BYTES = 2 * _GIB


def memory_warning(node: worker_pb2.NodeStatus) -> str:
    """A warning when a node runs short of memory, else ''.

    It follows the node's memory pressure when the node reports one (on a Mac,
    the kernel's own verdict: wired model memory is not "available" but is no
    shortage); only a node without it is judged by its available bytes.
    """
    memory = node.memory
    total, free = memory.total_bytes, memory.available_bytes
    if memory.pressure in (worker_pb2.MEMORY_PRESSURE_WARN, worker_pb2.MEMORY_PRESSURE_CRITICAL):
        level = "critical" if memory.pressure == worker_pb2.MEMORY_PRESSURE_CRITICAL else "high"
        swap = (
            f", swap {memory.swap_used_bytes / _GIB:.1f} of {memory.swap_total_bytes / _GIB:.1f} "
            "GiB used"
            if memory.swap_total_bytes
            else ""
        )
        return (
            f"{node.node}: memory pressure {level}, {free / _GIB:.1f} GiB available of "
            f"{total / _GIB:.1f} GiB{swap}"
        )
    if memory.pressure == worker_pb2.MEMORY_PRESSURE_NORMAL:
        return ""
    if total and (free < LOW_MEMORY_BYTES or free < LOW_MEMORY_FRACTION * total):
        return f"{node.node}: low memory, {free / _GIB:.1f} GiB free of {total / _GIB:.1f} GiB"
    return ""


ReadinessSink = Callable[[bool], Awaitable[None]]


class ClusterView:
    """The judge backend (when the judge is in use) and the workers: one status, one readiness.

    Ready means: at least one worker serving, and the judge backend usable when
    the judge is in use (or the gateway fails open).
    """

    def __init__(
        self,
        node_name: str,
        judge_backend: BackendMonitor | None,
        make_pool: Callable[[Callable[[], Awaitable[None]]], WorkerPool],
        *,
        fail_open: bool,
    ) -> None:
        self.node_name = node_name
        self.judge_backend = judge_backend
        self.pool = make_pool(self._changed)
        self._fail_open = fail_open
        self._judge_ready = judge_backend is None
        self._ready: bool | None = None
        self._readiness_sink: ReadinessSink | None = None
        self.changes = ChangeSignal()

    @property
    def judge_ready(self) -> bool:
        return self._judge_ready

    @property
    def ready(self) -> bool:
        return (self._judge_ready or self._fail_open) and self.pool.any_serving

    def start(self, on_readiness: ReadinessSink) -> None:
        self._readiness_sink = on_readiness
        if self.judge_backend is not None:
            self.judge_backend.start(self._judge_readiness)
        self.pool.start()

    async def _judge_readiness(self, ready: bool) -> None:
        self._judge_ready = ready
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

    async def refresh(self) -> None:
        """Probe the judge backend now (workers report on their own)."""
        if self.judge_backend is not None:
            await self.judge_backend.refresh()

    def gateway_status(self) -> worker_pb2.NodeStatus:
        if self.judge_backend is not None:
            return self.judge_backend.status()
        return worker_pb2.NodeStatus(
            node=self.node_name,
            error="",
            memory=host_memory(),
            backend_reachable=True,
        )

    def snapshot(self) -> gateway_pb2.ClusterStatus:
        gateway = self.gateway_status()
        workers = [link.to_proto() for link in self.pool.links]
        nodes = [gateway, *(x.node for x in workers if x.HasField("node"))]
        warnings = [w for w in (memory_warning(node) for node in nodes) if w]
        # What each node says is wrong with it (a model partly off the GPU, ...).
        warnings += [f"{node.node}: {w}" for node in nodes for w in node.warnings]
        status = gateway_pb2.ClusterStatus(
            gateway=gateway, workers=workers, ready=self.ready, warnings=warnings
        )
        status.observed_at.CopyFrom(timestamp(datetime.now(UTC)))
        return status

    async def close(self) -> None:
        await self.pool.close()
        if self.judge_backend is not None:
            await self.judge_backend.close()
