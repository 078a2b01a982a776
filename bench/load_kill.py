"""Failure timing: the worker is killed mid-stream; when does each client get its error?

N streams run through the target (the gateway) at a slow pace; once each has
its first tokens, the worker process gets SIGKILL, and every stream notes when
its call failed and with which status.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass
from typing import Any

from bench.kinds import TargetKind
from bench.prompts import bench_prompt
from bench.targets import Ask, RequestRecord, TokenCounter, build_target, rpc_error_text

_WAIT_FOR_TOKENS_S = 20.0


@dataclass(frozen=True)
class KillSpec:
    kind: TargetKind
    address: str
    concurrency: int
    rate: float
    answer_tokens: int
    kill_pid: int
    observe_s: float


async def run_kill(spec: KillSpec) -> dict[str, Any]:
    target = build_target(spec.kind, spec.address)
    records = [RequestRecord(time.monotonic()) for _ in range(spec.concurrency)]
    counter = TokenCounter()
    failed_at: list[float | None] = [None] * spec.concurrency
    codes: dict[str, int] = {}

    async def one(index: int) -> None:
        ask = Ask(
            bench_prompt(rate=spec.rate, tokens=spec.answer_tokens, unique=str(index)),
            spec.answer_tokens,
        )
        try:
            await target.request(ask, records[index], counter)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the error is what is measured
            failed_at[index] = time.monotonic()
            code = rpc_error_text(exc).split(":", 1)[0]
            codes[code] = codes.get(code, 0) + 1

    tasks = [asyncio.create_task(one(i)) for i in range(spec.concurrency)]
    deadline = time.monotonic() + _WAIT_FOR_TOKENS_S
    while time.monotonic() < deadline and not all(r.tokens >= 2 for r in records):
        await asyncio.sleep(0.01)
    killed_at = time.monotonic()
    os.kill(spec.kill_pid, signal.SIGKILL)
    _, pending = await asyncio.wait(tasks, timeout=spec.observe_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await target.close()
    delays = [(at - killed_at) * 1e3 for at in failed_at if at is not None]
    completed_ok = sum(
        1 for r, at in zip(records, failed_at, strict=True) if at is None and r.finished is not None
    )
    return {
        "mode": "kill",
        "kind": spec.kind,
        "concurrency": spec.concurrency,
        "error_ms": delays,
        "codes": codes,
        "completed_ok": completed_ok,
        "no_error_within_s": spec.observe_s,
        "hung": len(pending),
    }
