"""Watch a model backend: load it once, then probe it and report readiness changes.

Readiness needs the backend reachable with the model available, and, once a
liveness check has run, a working generation: a backend can list its models
while inference is wedged. The liveness check (a one-token generation) only
runs when the model is loaded and nothing else has proven inference recently,
and it asks for no longer a residency than the model already has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from tandem.backends import BackendError, BackendProbe, ChatBackend
from tandem.changes import ChangeSignal
from tandem.inflight import InFlight
from tandem.node_status import node_status
from tandem.v1 import worker_pb2

log = logging.getLogger(__name__)

ReadinessSink = Callable[[bool], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class LivenessResult:
    ok: bool
    checked_at: datetime
    latency_s: float
    error: str = ""


class BackendMonitor:
    """Owns a backend; warms it up, probes it and counts calls in flight."""

    def __init__(
        self,
        name: str,
        backend: ChatBackend,
        *,
        probe_interval_s: float,
        liveness_interval_s: float = 0.0,
        liveness_timeout_s: float = 60.0,
    ) -> None:
        self.name = name
        self.backend = backend
        self._probe_interval_s = probe_interval_s
        self._liveness_interval_s = liveness_interval_s
        self._liveness_timeout_s = liveness_timeout_s
        self._last_probe = BackendProbe(
            reachable=False, model_available=False, model_loaded=False, error="not probed yet"
        )
        self._liveness: LivenessResult | None = None
        self._inference_proven_at = time.monotonic()
        self.calls = InFlight()
        self.changes = ChangeSignal()
        self._task: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> int:
        return self.calls.count

    @property
    def last_probe(self) -> BackendProbe:
        return self._last_probe

    @property
    def ready(self) -> bool:
        liveness_ok = self._liveness is None or self._liveness.ok
        return self._last_probe.usable and liveness_ok

    def note_generation_succeeded(self) -> None:
        """A real generation worked: that proves liveness as well as a check would."""
        self._inference_proven_at = time.monotonic()
        if self._liveness is not None and not self._liveness.ok:
            self._liveness = LivenessResult(True, datetime.now(UTC), 0.0)

    def start(self, on_readiness: ReadinessSink) -> None:
        self._task = asyncio.create_task(
            self._warm_then_probe(on_readiness), name=f"monitor-{self.name}"
        )

    async def _warm_then_probe(self, on_readiness: ReadinessSink) -> None:
        try:
            await self.backend.warm_up()
            log.info(
                "%s: model %s loaded from %s", self.name, self.backend.model, self.backend.location
            )
        except BackendError as exc:
            log.warning("%s: warm-up failed: %s", self.name, exc.message)
        ready: bool | None = None
        while True:
            probe = await self.refresh()
            if self._liveness_due(probe):
                await self._check_liveness(probe)
            self.changes.notify()
            if self.ready != ready:
                ready = self.ready
                why = probe.error or (self._liveness.error if self._liveness else "")
                log.log(
                    logging.INFO if ready else logging.WARNING,
                    "%s: backend %s %s",
                    self.name,
                    "ready" if ready else "NOT ready:",
                    why,
                )
                await on_readiness(ready)
            await asyncio.sleep(self._probe_interval_s)

    def _liveness_due(self, probe: BackendProbe) -> bool:
        if self._liveness_interval_s <= 0 or not probe.model_loaded or self.in_flight:
            return False
        interval = self._liveness_interval_s
        if self._liveness is not None and not self._liveness.ok:
            interval = self._probe_interval_s  # failing: re-check at probe pace
        return time.monotonic() - self._inference_proven_at >= interval

    async def _check_liveness(self, probe: BackendProbe) -> None:
        keep_alive_s: int | None = None
        if probe.model_expires_at is not None:
            remaining = (probe.model_expires_at - datetime.now(UTC)).total_seconds()
            keep_alive_s = max(1, int(remaining))
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._liveness_timeout_s):
                await self.backend.generate_one_token(keep_alive_s)
        except (BackendError, TimeoutError) as exc:
            error = (
                exc.message
                if isinstance(exc, BackendError)
                else (f"no token within {self._liveness_timeout_s:.0f}s")
            )
            self._liveness = LivenessResult(
                False, datetime.now(UTC), time.monotonic() - started, error
            )
            log.warning("%s: liveness check failed: %s", self.name, error)
        else:
            self._liveness = LivenessResult(True, datetime.now(UTC), time.monotonic() - started)
        self._inference_proven_at = time.monotonic()

    async def refresh(self) -> BackendProbe:
        self._last_probe = await self.backend.probe()
        return self._last_probe

    def status(self, *, queued: int = 0) -> worker_pb2.NodeStatus:
        status = node_status(self.name, self.backend, self._last_probe, in_flight=self.in_flight)
        status.generations_queued = queued
        if self._liveness is not None:
            status.liveness.ok = self._liveness.ok
            status.liveness.checked_at.FromDatetime(self._liveness.checked_at)
            status.liveness.latency.FromNanoseconds(int(self._liveness.latency_s * 1e9))
            status.liveness.error = self._liveness.error
        return status

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.backend.aclose()
