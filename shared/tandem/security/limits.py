"""Per-client limits: a token bucket of calls per second and a cap on calls open at once.

A client is the authenticated token's name, or else the peer's IP address.
State is kept per client and pruned when idle, so a flood of peers cannot grow
it without bound.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from tandem.changes import ChangeSignal
from tandem.errors import ResourceExhausted

# Idle clients (bucket full, nothing open) are forgotten past this many entries.
_PRUNE_ABOVE = 4096


class LimitExceeded(ResourceExhausted):
    """A call over a client's limit; ``retry_after_s`` is when trying again makes sense."""

    names_node = True

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message, retry_after_s=retry_after_s)


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """0 (or less) disables a limit."""

    requests_per_second: float = 0.0
    burst: int = 1
    max_open_calls: int = 0


@dataclass(slots=True)
class _Client:
    tokens: float
    refilled_at: float
    open_calls: int = 0


@dataclass
class ClientLimiter:
    """The live limit state of one server."""

    limits: ClientLimits
    _clients: dict[str, _Client] = field(default_factory=dict)
    # Notified whenever a call closes, for whoever waits for a place to free up.
    changes: ChangeSignal = field(default_factory=ChangeSignal)

    def _client(self, name: str, now: float) -> _Client:
        state = self._clients.get(name)
        if state is None:
            if len(self._clients) >= _PRUNE_ABOVE:
                self._prune(now)
            state = self._clients[name] = _Client(tokens=float(self._burst), refilled_at=now)
        return state

    @property
    def _burst(self) -> int:
        return max(1, self.limits.burst)

    def _refill(self, state: _Client, now: float) -> None:
        rate = self.limits.requests_per_second
        state.tokens = min(float(self._burst), state.tokens + (now - state.refilled_at) * rate)
        state.refilled_at = now

    def _prune(self, now: float) -> None:
        for name, state in list(self._clients.items()):
            self._refill(state, now)
            if state.open_calls == 0 and state.tokens >= self._burst:
                del self._clients[name]

    def take(self, name: str) -> None:
        """Spend one call from ``name``'s bucket; LimitExceeded when it is empty."""
        rate = self.limits.requests_per_second
        if rate <= 0:
            return
        now = time.monotonic()
        state = self._client(name, now)
        self._refill(state, now)
        if state.tokens < 1.0:
            wait_s = (1.0 - state.tokens) / rate
            raise LimitExceeded(
                f"client {name!r} is over {rate:g} calls per second (burst {self._burst}); "
                f"retry in {wait_s:.2f}s",
                wait_s,
            )
        state.tokens -= 1.0

    @contextlib.contextmanager
    def open_call(self, name: str) -> Iterator[None]:
        """Count one open call of ``name`` for the duration; LimitExceeded past the cap."""
        cap = self.limits.max_open_calls
        state = self._client(name, time.monotonic())
        if cap > 0 and state.open_calls >= cap:
            raise LimitExceeded(
                f"client {name!r} already has {state.open_calls} calls open (limit {cap}); "
                "finish or cancel one first",
                1.0,
            )
        state.open_calls += 1
        try:
            yield
        finally:
            state.open_calls -= 1
            self.changes.notify()

    def open_calls(self, name: str) -> int:
        state = self._clients.get(name)
        return state.open_calls if state else 0

    @property
    def tracked_clients(self) -> int:
        return len(self._clients)
