"""Server-sent events: the dashboard's state on every cluster change, and again every
heartbeat (which moves the charts and proves the stream is alive)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from tandem.changes import ChangeSignal

RETRY_MS = 2000  # how soon a browser reconnects after losing the stream


def sse_message(event: str, payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload, separators=(",", ":"))
    return f"event: {event}\ndata: {data}\n\n".encode()


async def _first_of(change: asyncio.Future[bool], closing: asyncio.Event) -> None:
    """Return when ``change`` is done, or as soon as ``closing`` is set."""
    stop = asyncio.ensure_future(closing.wait())
    try:
        waiting: set[asyncio.Future[Any]] = {change, stop}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (change, stop):
            task.cancel()
        for task in (change, stop):
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def state_events(
    state: Callable[[], dict[str, Any]],
    changes: ChangeSignal,
    closing: asyncio.Event,
    heartbeat_s: float,
) -> AsyncIterator[bytes]:
    """``state`` as an ``event: state`` message now, on each change and each heartbeat,
    until ``closing`` is set (the listener stopping) or the client goes away."""
    yield f"retry: {RETRY_MS}\n\n".encode()
    while not closing.is_set():
        # Start waiting before reading the state: a change while the message is being
        # sent then still wakes the next one (the task runs before this one resumes).
        change = asyncio.ensure_future(changes.wait(heartbeat_s))
        try:
            await asyncio.sleep(0)
            yield sse_message("state", state())
            await _first_of(change, closing)
        finally:
            change.cancel()  # the client went away while the message was on its way
