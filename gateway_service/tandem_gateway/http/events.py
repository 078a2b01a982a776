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


async def _next_change(changes: ChangeSignal, closing: asyncio.Event, timeout_s: float) -> None:
    """Return on a change, after ``timeout_s``, or as soon as ``closing`` is set."""
    waits = {
        asyncio.ensure_future(changes.wait(timeout_s)),
        asyncio.ensure_future(closing.wait()),
    }
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
        for task in waits:
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
        yield sse_message("state", state())
        await _next_change(changes, closing, heartbeat_s)
