"""Admission control: a bounded number of generations in flight and a bounded queue.

Past the queue a call is rejected at once with retry advice, so load never
piles up unboundedly in front of the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from tandem.changes import ChangeSignal

_MIN_RETRY_S = 1.0
_MAX_RETRY_S = 60.0
_EWMA_WEIGHT = 0.2


class AdmissionRejected(Exception):
    def __init__(self, running: int, queued: int, retry_after_s: float) -> None:
        super().__init__(f"{running} generations running and {queued} queued (the limit)")
        self.retry_after_s = retry_after_s


class Admission:
    def __init__(self, max_running: int, max_queued: int) -> None:
        self._max_running = max_running
        self._max_queued = max_queued
        self._slots = asyncio.Semaphore(max_running)
        self.running = 0
        self.queued = 0
        self._typical_s = 10.0  # EWMA of generation durations, seeded pessimistically
        self.changes = ChangeSignal()

    async def wait_until(self, predicate: Callable[[Admission], bool], timeout_s: float) -> None:
        """Wait until ``predicate(self)`` holds (for drains and tests); TimeoutError if not."""
        await self.changes.wait_until(lambda: predicate(self), timeout_s)

    def retry_after_s(self) -> float:
        """Roughly when a slot will have freed up for a caller that retries."""
        waves = (self.queued + 1) / self._max_running
        return min(_MAX_RETRY_S, max(_MIN_RETRY_S, self._typical_s * waves))

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self.running >= self._max_running or self._slots.locked():
            if self.queued >= self._max_queued:
                raise AdmissionRejected(self.running, self.queued, self.retry_after_s())
            self.queued += 1
            self.changes.notify()
            try:
                await self._slots.acquire()
            finally:
                self.queued -= 1
        else:
            await self._slots.acquire()
        self.running += 1
        self.changes.notify()
        started = time.monotonic()
        try:
            yield
        finally:
            self.running -= 1
            self._slots.release()
            self.changes.notify()
            elapsed = time.monotonic() - started
            self._typical_s += _EWMA_WEIGHT * (elapsed - self._typical_s)
