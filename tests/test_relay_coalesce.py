"""The worker's coalescing (--coalesce-after-ms) merges only while the reader is behind.

``coalesced`` is driven here by a plain async generator standing in for the
model's stream and a reader that is slow exactly once (the end-to-end
behaviour under real backpressure is in tests/test_worker_depth.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from tandem.v1 import common_pb2, worker_pb2
from tandem_worker.coalesce import coalesced

_BURST = 10  # tokens that pile up while the reader is slow
_PACED = 30  # then one token each time the reader took the previous one
_SLOW_S = 0.2  # the one slow send, far above the threshold below
_BEHIND_AFTER_S = 0.05


def _delta(i: int) -> worker_pb2.GenerateResponse:
    return worker_pb2.GenerateResponse(delta=common_pb2.TextDelta(text=f"<{i}>", tokens=1))


def _read_ahead_tasks() -> list[asyncio.Task[object]]:
    tasks = asyncio.all_tasks()
    return [t for t in tasks if t.get_name() == "coalesce-read-ahead" and not t.done()]


async def test_merges_while_behind_then_one_message_per_token_without_a_task() -> None:
    received: list[asyncio.Event] = [asyncio.Event() for _ in range(1 + _BURST + _PACED)]
    tasks_seen_when_paced: list[int] = []

    async def model() -> AsyncIterator[worker_pb2.GenerateResponse]:
        for i in range(1 + _BURST):
            yield _delta(i)  # token 0, then a burst that is ready at once
        for i in range(1 + _BURST, 1 + _BURST + _PACED):
            await received[i - 1].wait()  # the reader keeps up from here on
            yield _delta(i)
        await received[-1].wait()
        yield worker_pb2.GenerateResponse(summary=worker_pb2.GenerateSummary(model="m"))

    messages: list[worker_pb2.GenerateResponse] = []
    tokens = 0
    async for response in coalesced(model(), behind_after_s=_BEHIND_AFTER_S):
        messages.append(response)
        if response.HasField("delta"):
            tokens += response.delta.tokens
            received[tokens - 1].set()
            if tokens > 1 + _BURST + 5:
                tasks_seen_when_paced.append(len(_read_ahead_tasks()))
        if len(messages) == 1:
            await asyncio.sleep(_SLOW_S)  # the one slow send: the burst piles up meanwhile

    text = "".join(m.delta.text for m in messages if m.HasField("delta"))
    # Nothing lost, nothing reordered.
    assert text == "".join(f"<{i}>" for i in range(1 + _BURST + _PACED))
    assert messages[-1].HasField("summary")
    deltas = [m.delta.tokens for m in messages if m.HasField("delta")]
    assert deltas[0] == 1
    assert deltas[1] > 1, "the burst that piled up behind the slow send was not merged"
    # Caught up: one message per token again, read by the handler itself (no read-ahead task).
    assert deltas[-_PACED // 2 :] == [1] * (_PACED // 2)
    assert tasks_seen_when_paced[-_PACED // 2 :] == [0] * (_PACED // 2)
    assert not _read_ahead_tasks()


async def test_a_reader_that_keeps_up_never_starts_a_read_ahead() -> None:
    async def model() -> AsyncIterator[worker_pb2.GenerateResponse]:
        for i in range(50):
            yield _delta(i)

    started: list[int] = []
    count = 0
    async for response in coalesced(model(), behind_after_s=_BEHIND_AFTER_S):
        count += response.delta.tokens
        started.append(len(_read_ahead_tasks()))
    assert count == 50
    assert started == [0] * 50
