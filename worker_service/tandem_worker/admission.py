"""Admission control: a bounded number of generations in flight and a bounded queue.

Past the queue a call is rejected at once with retry advice, so load never
piles up unboundedly in front of the model. Waiting calls are served by
priority (higher first, then in arrival order); a waiting call can be
overtaken by later, higher-priority calls at most ``max_bypass`` times, so a
low-priority call is never starved.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from tandem.changes import ChangeSignal
from tandem.errors import ResourceExhausted

_MIN_RETRY_S = 1.0
_MAX_RETRY_S = 60.0
_EWMA_WEIGHT = 0.2
DEFAULT_MAX_BYPASS = 8


class AdmissionRejected(ResourceExhausted):
    """The queue is full: RESOURCE_EXHAUSTED, with when a slot will likely be free."""

    names_node = True

    def __init__(self, running: int, queued: int, retry_after_s: float) -> None:
        super().__init__(
            f"busy ({running} generations running and {queued} queued (the limit)); "
            f"retry in {retry_after_s:.0f}s",
            retry_after_s=retry_after_s,
        )


@dataclass(eq=False)
class _Waiter:
    priority: int
    arrival: int
    granted: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    bypassed: int = 0  # how many later arrivals were served before this one


class Admission:
    def __init__(
        self, max_running: int, max_queued: int, max_bypass: int = DEFAULT_MAX_BYPASS
    ) -> None:
        self._max_running = max_running
        self._max_queued = max_queued
        self._max_bypass = max_bypass
        self._waiters: list[_Waiter] = []
        self._arrivals = itertools.count()
        self.running = 0
        self._typical_s = 10.0  # EWMA of generation durations, seeded pessimistically
        self.changes = ChangeSignal()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    async def wait_until(self, predicate: Callable[[Admission], bool], timeout_s: float) -> None:
        """Wait until ``predicate(self)`` holds (for drains and tests); TimeoutError if not."""
        await self.changes.wait_until(lambda: predicate(self), timeout_s)

    def retry_after_s(self) -> float:
        """Roughly when a slot will have freed up for a caller that retries."""
        waves = (self.queued + 1) / self._max_running
        return min(_MAX_RETRY_S, max(_MIN_RETRY_S, self._typical_s * waves))

    @contextlib.asynccontextmanager
    async def slot(self, priority: int = 0) -> AsyncIterator[None]:
        """Hold one generation slot for the block, waiting in the queue if needed."""
        if self.running >= self._max_running or self._waiters:
            await self._wait_in_queue(priority)
        else:
            self.running += 1
        self.changes.notify()
        started = time.monotonic()
        try:
            yield
        finally:
            self._release()
            elapsed = time.monotonic() - started
            self._typical_s += _EWMA_WEIGHT * (elapsed - self._typical_s)

    async def _wait_in_queue(self, priority: int) -> None:
        if self.queued >= self._max_queued:
            raise AdmissionRejected(self.running, self.queued, self.retry_after_s())
        waiter = _Waiter(priority, next(self._arrivals))
        self._waiters.append(waiter)
        self.changes.notify()
        try:
            await waiter.granted  # the releasing call counted us as running already
        except BaseException:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
                self.changes.notify()
            elif waiter.granted.done() and not waiter.granted.cancelled():
                self._release()  # granted, then cancelled before it could start: pass it on
            raise

    def _release(self) -> None:
        self.running -= 1
        while self.running < self._max_running and self._waiters:
            chosen = self._next_waiter()
            self._waiters.remove(chosen)
            if chosen.granted.done():
                # Cancelled while waiting: its task has not yet run the handler that
                # leaves the queue. It takes no slot; the next waiter does.
                continue
            for waiter in self._waiters:
                if waiter.arrival < chosen.arrival:
                    waiter.bypassed += 1
            self.running += 1
            chosen.granted.set_result(None)
        self.changes.notify()

    def _next_waiter(self) -> _Waiter:
        starved = [w for w in self._waiters if w.bypassed >= self._max_bypass]
        if starved:
            return min(starved, key=lambda w: w.arrival)
        return min(self._waiters, key=lambda w: (-w.priority, w.arrival))
