"""Requests one after another, each reported on its own (the real model's figures)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

from bench.kinds import TargetKind
from bench.prompts import bench_prompt
from bench.targets import Ask, RequestRecord, TokenCounter, build_target, rpc_error_text


@dataclass(frozen=True)
class SequenceSpec:
    kind: TargetKind
    address: str
    prompt: str
    max_tokens: int
    requests: int
    timeout_s: float
    unique_prompts: bool = False


async def run_sequence(spec: SequenceSpec) -> dict[str, Any]:
    target = build_target(spec.kind, spec.address)
    counter = TokenCounter()
    rows: list[dict[str, Any]] = []
    nonce = uuid.uuid4().hex[:8]  # unique prompts differ from every earlier run's too
    try:
        for index in range(spec.requests):
            record = RequestRecord(time.monotonic())
            prompt = (
                bench_prompt(base=spec.prompt, unique=f"{nonce}.{index}")
                if spec.unique_prompts
                else spec.prompt
            )
            try:
                async with asyncio.timeout(spec.timeout_s):
                    await target.request(Ask(prompt, spec.max_tokens), record, counter)
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                record.error = rpc_error_text(exc)
            rows.append({"prompt": prompt, **_row(record)})
    finally:
        await target.close()
    return {
        "mode": "sequence",
        "kind": spec.kind,
        "max_tokens": spec.max_tokens,
        "unique_prompts": spec.unique_prompts,
        "requests": rows,
    }


def _row(record: RequestRecord) -> dict[str, Any]:
    ttft, total = record.ttft_s, record.total_s
    streaming_s = (total - ttft) if ttft is not None and total is not None else None
    rate = ((record.tokens - 1) / streaming_s) if streaming_s and record.tokens > 1 else None
    return {
        "ttft_ms": None if ttft is None else ttft * 1e3,
        "total_ms": None if total is None else total * 1e3,
        "tokens": record.tokens,
        "tokens_per_s": rate,
        "judge_ms": None if record.judge_s is None else record.judge_s * 1e3,
        "tier": record.tier,
        "error": record.error,
    }
