"""Cancellation timing: N streams hang up at once; when does the stand-in see each go?

Every stream is tagged (``bench-id``) and paced slowly; once each has its first
tokens, the client cancels them all, noting the instant of each cancel. The
stand-in notes the instant its connection for that stream closed (the same
CLOCK_MONOTONIC). The difference is how long the model would have kept
generating for nobody. A stream the stand-in saw run to its end was never
cancelled upstream.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

from bench.kinds import TargetKind
from bench.prompts import bench_prompt
from bench.standin_client import StandinClient
from bench.targets import Ask, RequestRecord, TokenCounter, build_target, one_per_stream

_WAIT_FOR_TOKENS_S = 10.0


@dataclass(frozen=True)
class CancelSpec:
    kind: TargetKind
    address: str
    standin: str
    concurrency: int
    rate: float
    answer_tokens: int
    after_tokens: int
    observe_s: float


async def run_cancel(spec: CancelSpec) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    shared = None if one_per_stream(spec.kind) else build_target(spec.kind, spec.address)
    targets = [shared or build_target(spec.kind, spec.address) for _ in range(spec.concurrency)]
    ids = [f"{run}-{i}" for i in range(spec.concurrency)]
    records = [RequestRecord(time.monotonic()) for _ in ids]
    counter = TokenCounter()
    tasks = [
        asyncio.create_task(
            targets[i].request(
                Ask(
                    bench_prompt(rate=spec.rate, tokens=spec.answer_tokens, bench_id=ids[i]),
                    spec.answer_tokens,
                ),
                records[i],
                counter,
            )
        )
        for i in range(spec.concurrency)
    ]
    ready = await _wait_for_tokens(records, tasks, spec.after_tokens)
    cancelled_at: dict[str, float] = {}
    for bench_id, task in zip(ids, tasks, strict=True):
        if not task.done():
            cancelled_at[bench_id] = time.monotonic()
            task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    standin = StandinClient(spec.standin)
    try:
        seen = await standin.disconnect_times(list(cancelled_at), spec.observe_s)
    finally:
        standin.close()
        for target in {id(t): t for t in targets}.values():
            await target.close()
    delays = [
        (seen[i]["disconnected_at"] - at) * 1e3
        for i, at in cancelled_at.items()
        if seen[i].get("disconnected_at") is not None
    ]
    ran_to_end = sum(1 for i in cancelled_at if seen[i].get("completed_at"))
    return {
        "mode": "cancel",
        "kind": spec.kind,
        "concurrency": spec.concurrency,
        "rate": spec.rate,
        "streams_ready": ready,
        "cancelled": len(cancelled_at),
        "disconnect_ms": delays,
        "ran_to_end": ran_to_end,
        "not_seen_within_s": spec.observe_s,
        "not_seen": len(cancelled_at) - len(delays) - ran_to_end,
    }


async def _wait_for_tokens(
    records: list[RequestRecord], tasks: list[asyncio.Task[None]], wanted: int
) -> int:
    deadline = time.monotonic() + _WAIT_FOR_TOKENS_S
    while time.monotonic() < deadline:
        ready = sum(
            1 for r, t in zip(records, tasks, strict=True) if r.tokens >= wanted or t.done()
        )
        if ready == len(records):
            break
        await asyncio.sleep(0.01)
    return sum(1 for r in records if r.tokens >= wanted)
