"""The worker's admission queue on its own (the worker's tests drive it through gRPC)."""

from __future__ import annotations

import asyncio

from tandem_worker.admission import Admission


async def test_a_waiter_cancelled_as_a_slot_frees_takes_no_slot() -> None:
    admission = Admission(max_running=1, max_queued=4)
    held = admission.slot()
    await held.__aenter__()

    async def wait_for_a_slot() -> None:
        async with admission.slot():
            raise AssertionError("a cancelled waiter must not run")

    waiting = asyncio.create_task(wait_for_a_slot())
    await admission.wait_until(lambda a: a.queued == 1, 5.0)
    # Cancel the waiter, then free the slot before the waiter's task has run again:
    # its future is cancelled but it is still in the queue.
    waiting.cancel()
    await held.__aexit__(None, None, None)
    assert admission.running == 0 and admission.queued == 0
    await asyncio.gather(waiting, return_exceptions=True)
    assert waiting.cancelled()
    async with asyncio.timeout(5.0), admission.slot():  # the slot is free for the next caller
        assert admission.running == 1
    assert admission.running == 0
