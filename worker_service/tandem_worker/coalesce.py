"""Merge the deltas that pile up while the reader is behind into one message.

The model's tokens are read ahead by a pump task, up to a bound, while the
gRPC stream sends. A reader that keeps up gets every token as its own message,
as soon as it arrives; one that falls behind (a busy relay, a slow link) gets
everything that queued up meanwhile as one message, instead of paying the
per-message cost once per token and falling further behind. The bound keeps
flow control intact: a reader that stops reading stops the pump, and so the
model's HTTP stream, after ``max_pending_chars``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

from tandem.v1 import common_pb2, worker_pb2

DEFAULT_MAX_PENDING_CHARS = 64 * 1024


class _Pending:
    """Text read ahead and not yet sent, then what follows it (the summary)."""

    def __init__(self, max_chars: int) -> None:
        self.deltas: list[worker_pb2.GenerateResponse] = []
        self.chars = 0
        self.tail: list[worker_pb2.GenerateResponse] = []
        self.failure: BaseException | None = None
        self.finished = False
        self.max_chars = max_chars
        self.arrived = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()

    def add(self, response: worker_pb2.GenerateResponse) -> None:
        if response.HasField("delta") and not self.tail:
            self.deltas.append(response)
            self.chars += len(response.delta.text)
            if self.chars >= self.max_chars:
                self.room.clear()
        else:
            self.tail.append(response)
        self.arrived.set()

    def take(self) -> list[worker_pb2.GenerateResponse]:
        """Everything waiting: the deltas merged into one, then the rest, in order."""
        taken: list[worker_pb2.GenerateResponse] = []
        if len(self.deltas) == 1:
            taken.append(self.deltas[0])
        elif self.deltas:
            merged = common_pb2.TextDelta(
                text="".join(r.delta.text for r in self.deltas),
                tokens=sum(r.delta.tokens or 1 for r in self.deltas),
            )
            taken.append(worker_pb2.GenerateResponse(delta=merged))
        if self.deltas:
            self.deltas, self.chars = [], 0
            self.room.set()
        taken.extend(self.tail)
        self.tail = []
        self.arrived.clear()
        return taken


async def coalesced(
    responses: AsyncIterator[worker_pb2.GenerateResponse],
    max_pending_chars: int = DEFAULT_MAX_PENDING_CHARS,
) -> AsyncGenerator[worker_pb2.GenerateResponse, None]:
    """``responses`` with consecutive deltas merged whenever they queued up.

    A failure of ``responses`` is raised after the text read before it has
    been yielded. Closing this generator cancels the pump, which closes
    ``responses`` (and so the model's stream).
    """
    pending = _Pending(max_pending_chars)

    async def pump() -> None:
        try:
            async for response in responses:
                await pending.room.wait()
                pending.add(response)
        except Exception as exc:  # handed to the reader, after the text before it
            pending.failure = exc
        finally:
            pending.finished = True
            pending.arrived.set()
            with contextlib.suppress(Exception):
                await responses.aclose()  # type: ignore[attr-defined]

    task = asyncio.create_task(pump(), name="coalesce-pump")
    try:
        while True:
            await pending.arrived.wait()
            done = pending.finished
            for response in pending.take():
                yield response
            if done:
                if pending.failure is not None:
                    raise pending.failure
                return
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
