"""Watch a model backend: load it once, then probe it and report readiness changes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from tandem.backends import BackendError, BackendProbe, ChatBackend
from tandem.inflight import InFlight
from tandem.node_status import node_status
from tandem.v1 import worker_pb2

log = logging.getLogger(__name__)

ReadinessSink = Callable[[bool], Awaitable[None]]


class BackendMonitor:
    """Owns a backend; warms it up, probes it and counts generations in flight."""

    def __init__(self, name: str, backend: ChatBackend, *, probe_interval_s: float) -> None:
        self.name = name
        self.backend = backend
        self._probe_interval_s = probe_interval_s
        self._last_probe = BackendProbe(
            reachable=False, model_available=False, model_loaded=False, error="not probed yet"
        )
        self.calls = InFlight()
        self._task: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> int:
        return self.calls.count

    @property
    def last_probe(self) -> BackendProbe:
        return self._last_probe

    def start(self, on_readiness: ReadinessSink) -> None:
        self._task = asyncio.create_task(self._warm_then_probe(on_readiness), name=f"monitor-{self.name}")

    async def _warm_then_probe(self, on_readiness: ReadinessSink) -> None:
        try:
            await self.backend.warm_up()
            log.info("%s: model %s loaded from %s", self.name, self.backend.model, self.backend.location)
        except BackendError as exc:
            log.warning("%s: warm-up failed: %s", self.name, exc.message)
        ready: bool | None = None
        while True:
            probe = await self.refresh()
            if probe.usable != ready:
                ready = probe.usable
                log.log(
                    logging.INFO if ready else logging.WARNING,
                    "%s: backend %s %s",
                    self.name,
                    "ready" if ready else "NOT ready:",
                    probe.error,
                )
                await on_readiness(ready)
            await asyncio.sleep(self._probe_interval_s)

    async def refresh(self) -> BackendProbe:
        self._last_probe = await self.backend.probe()
        return self._last_probe

    def status(self) -> worker_pb2.NodeStatus:
        return node_status(self.name, self.backend, self._last_probe, in_flight=self.in_flight)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.backend.aclose()
