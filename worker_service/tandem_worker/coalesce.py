"""Merge the deltas that pile up while the reader is behind into one message
(the worker's --coalesce-after-ms; off by default).

While the reader keeps up, each response is read and sent by the same task,
one message per token, with nothing in between: no task, no timer, no extra
loop turn. When a send took longer than ``behind_after_s`` (a busy relay, a
slow link, a client that stopped reading), a read-ahead task starts pulling
the model's stream into a bounded buffer, and each following send takes
everything that piled up meanwhile as one message, instead of paying the
per-message cost once per token and falling further behind. Once
``CAUGHT_UP_AFTER_SENDS`` sends in a row were quick and found a single token
waiting, the read-ahead stops after the token it is reading and the handler
reads for itself again. The
bound keeps flow control intact: a reader that stops reading stops the
read-ahead, and so the model's stream, after ``max_pending_chars``.

An earlier version armed a ``call_later`` timer around every send (a timer
handle per token, cancelled a moment later) and, once a stream had fallen
behind a single time, kept its read-ahead task for the rest of the stream: a
hand-over between two tasks, so an extra loop turn, for every token after one
slow send. Under a shared CPU nearly every stream has one slow send, so
nearly every stream paid that, which made paced latency unsteady.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

from tandem.v1 import common_pb2, worker_pb2

DEFAULT_BEHIND_AFTER_S = 0.002
DEFAULT_MAX_PENDING_CHARS = 64 * 1024
# Quick sends of a single token in a row after which the reader counts as caught up
# (a relay that is merely saturated has a quick one now and then, and keeps merging).
CAUGHT_UP_AFTER_SENDS = 8

Responses = AsyncIterator[worker_pb2.GenerateResponse]


class _ReadAhead:
    """Pulls ``source`` in a task of its own into a bounded buffer, until asked to stop."""

    def __init__(self, source: Responses, max_chars: int) -> None:
        self._source = source
        self._deltas: list[worker_pb2.GenerateResponse] = []
        self._chars = 0
        self._tail: list[worker_pb2.GenerateResponse] = []
        self._failure: Exception | None = None
        self.exhausted = False  # the source ended (or failed)
        self._stopping = False
        self._max_chars = max_chars
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._task = asyncio.create_task(self._pump(), name="coalesce-read-ahead")

    async def _pump(self) -> None:
        try:
            while not self._stopping:
                try:
                    response = await anext(self._source)
                except StopAsyncIteration:
                    self.exhausted = True
                    return
                await self._room.wait()
                if response.HasField("delta") and not self._tail:
                    self._deltas.append(response)
                    self._chars += len(response.delta.text)
                    if self._chars >= self._max_chars:
                        self._room.clear()
                else:
                    self._tail.append(response)
                self._arrived.set()
        except Exception as exc:  # noqa: BLE001 - the reader gets it after the text before it
            self._failure = exc
            self.exhausted = True
        finally:
            self._arrived.set()

    def stop_after_current(self) -> None:
        """Hand the source back once the response being read now is buffered."""
        self._stopping = True

    @property
    def stopped(self) -> bool:
        return self._task.done()

    async def take(self) -> list[worker_pb2.GenerateResponse]:
        """What piled up (the deltas merged into one, then the rest); waits for
        something if nothing did. [] when the pump is done and nothing is left;
        raises the source's failure after the text read before it."""
        await self._arrived.wait()
        self._arrived.clear()
        taken: list[worker_pb2.GenerateResponse] = []
        if len(self._deltas) == 1:
            taken.append(self._deltas[0])
        elif self._deltas:
            merged = common_pb2.TextDelta(
                text="".join(r.delta.text for r in self._deltas),
                tokens=sum(r.delta.tokens or 1 for r in self._deltas),
            )
            taken.append(worker_pb2.GenerateResponse(delta=merged))
        self._deltas, self._chars = [], 0
        self._room.set()
        taken.extend(self._tail)
        self._tail = []
        if self.stopped:
            self._arrived.set()  # the next take() reports the end at once
            if not taken and self._failure is not None:
                raise self._failure
        return taken

    async def close(self) -> None:
        """Stop the pump (and so the source's read in progress) and wait for it; a
        cancellation of the caller still propagates."""
        if not self._task.done():
            self._task.cancel()
            await asyncio.wait([self._task])


async def coalesced(
    source: Responses,
    *,
    behind_after_s: float = DEFAULT_BEHIND_AFTER_S,
    max_pending_chars: int = DEFAULT_MAX_PENDING_CHARS,
) -> AsyncGenerator[worker_pb2.GenerateResponse, None]:
    """``source``, with the deltas that queued up while the reader was behind merged.

    A failure of ``source`` is raised after the text read before it. Closing
    this generator closes ``source`` (and so the model's stream).
    """
    clock = asyncio.get_running_loop().time
    ahead: _ReadAhead | None = None
    quick_in_a_row = 0
    try:
        while True:
            if ahead is None:
                try:
                    batch = [await anext(source)]  # keeping up: read it here, no hand-over
                except StopAsyncIteration:
                    return
            else:
                batch = await ahead.take()
                if not batch:
                    if ahead.exhausted:
                        return
                    ahead = None  # it stopped with nothing left: read for ourselves again
                    continue
            # At most one token was waiting (a merged delta's ``tokens`` counts its own).
            one_token = len(batch) == 1 and batch[0].delta.tokens <= 1
            for response in batch:
                sent_at = clock()
                yield response
                slow = clock() - sent_at > behind_after_s
                if ahead is None:
                    if slow:
                        ahead = _ReadAhead(source, max_pending_chars)
                        quick_in_a_row = 0
                    continue
                quick_in_a_row = quick_in_a_row + 1 if one_token and not slow else 0
                if quick_in_a_row >= CAUGHT_UP_AFTER_SENDS:
                    ahead.stop_after_current()  # caught up: read for ourselves again
    finally:
        try:
            if ahead is not None:
                await ahead.close()
        finally:  # even when cancelled again meanwhile: the model's stream must stop
            with contextlib.suppress(Exception):
                await source.aclose()  # type: ignore[attr-defined]
