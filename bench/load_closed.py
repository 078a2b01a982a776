"""Closed-loop load: N streams, each sending its next request when the last one ends.

Stream starts are spread over the first half of a warm-up, so requests are at
every phase rather than one burst. Then comes a measurement window of fixed
length: tokens received in it give the aggregate rate, and the processes' CPU
and memory are sampled around it. A request is measured when it started after
every stream had joined: its time to first token if that came before the
window closed, its total time if it ended before then.

An optional probe stream sends short requests one after another beside the
load: what a new request sees when N streams are already running, with many
samples even when the load's own requests are too long to cycle in the window.
At the window's end every stream is cancelled, so each run is bounded in time
whatever the target does.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from bench.kinds import TargetKind
from bench.proc_sampler import ProcessUsage, ProcSampler
from bench.prompts import bench_prompt
from bench.targets import (
    Ask,
    RequestRecord,
    Target,
    TokenCounter,
    build_target,
    one_per_stream,
    rpc_error_text,
)

_ERROR_PAUSE_S = 0.02
_SAMPLES_PER_WINDOW = 4
_MAX_ERROR_SAMPLES = 3


@dataclass(frozen=True)
class ClosedLoopSpec:
    kind: TargetKind
    address: str
    concurrency: int
    warmup_s: float
    duration_s: float
    max_tokens: int
    rate: float
    unique_prompts: bool
    watch: dict[str, int]
    probe_tokens: int = 0


@dataclass
class _Stream:
    name: str
    target: Target
    max_tokens: int
    start_delay_s: float
    records: list[RequestRecord] = field(default_factory=list)


@dataclass(frozen=True)
class _Window:
    joined: float
    start: float
    end: float
    tokens: int

    @property
    def seconds(self) -> float:
        return self.end - self.start


async def run_closed_loop(spec: ClosedLoopSpec) -> dict[str, Any]:
    nonce = uuid.uuid4().hex[:8]  # "unique" prompts differ from every earlier run's too
    streams = _streams(spec)
    counter = TokenCounter()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_loop(spec, s, counter, stop, nonce)) for s in streams]
    sampler = ProcSampler(spec.watch)
    began = time.monotonic()
    try:
        await asyncio.sleep(spec.warmup_s)
        start, tokens_start = time.monotonic(), counter.tokens
        sampler.start()
        for _ in range(_SAMPLES_PER_WINDOW):
            await asyncio.sleep(spec.duration_s / _SAMPLES_PER_WINDOW)
            sampler.sample()
        window = _Window(
            began + spec.warmup_s / 2, start, time.monotonic(), counter.tokens - tokens_start
        )
        usage = sampler.stop()
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for target in {id(s.target): s.target for s in streams}.values():
            await target.close()
    load = [r for s in streams if s.name != "probe" for r in s.records]
    probe = [r for s in streams if s.name == "probe" for r in s.records]
    return {
        "mode": "closed_loop",
        "kind": spec.kind,
        "concurrency": spec.concurrency,
        "max_tokens": spec.max_tokens,
        "probe_tokens": spec.probe_tokens,
        "rate": spec.rate,
        "unique_prompts": spec.unique_prompts,
        "window_s": window.seconds,
        "tokens": window.tokens,
        "tokens_per_s": window.tokens / window.seconds if window.seconds > 0 else 0.0,
        **_requests(load, window),
        "probe": _requests(probe, window) if spec.probe_tokens else None,
        "processes": _usage_json(usage),
    }


def _streams(spec: ClosedLoopSpec) -> list[_Stream]:
    count = spec.concurrency + (1 if spec.probe_tokens else 0)
    if one_per_stream(spec.kind):
        targets = [build_target(spec.kind, spec.address) for _ in range(count)]
    else:
        targets = [build_target(spec.kind, spec.address)] * count
    spread = spec.warmup_s / 2
    streams = [
        _Stream(str(i), targets[i], spec.max_tokens, spread * i / spec.concurrency)
        for i in range(spec.concurrency)
    ]
    if spec.probe_tokens:
        streams.append(_Stream("probe", targets[-1], spec.probe_tokens, spread))
    return streams


async def _loop(
    spec: ClosedLoopSpec,
    stream: _Stream,
    counter: TokenCounter,
    stop: asyncio.Event,
    nonce: str,
) -> None:
    await asyncio.sleep(stream.start_delay_s)
    sent = 0
    while not stop.is_set():
        unique = f"{nonce}.{stream.name}.{sent}" if spec.unique_prompts else None
        ask = Ask(bench_prompt(rate=spec.rate, unique=unique), stream.max_tokens)
        record = RequestRecord(time.monotonic())
        stream.records.append(record)
        sent += 1
        try:
            await stream.target.request(ask, record, counter)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is a data point
            record.error = rpc_error_text(exc)
            await asyncio.sleep(_ERROR_PAUSE_S)


def _requests(records: list[RequestRecord], window: _Window) -> dict[str, Any]:
    """TTFT, total time, errors and decision tiers of the requests that count."""
    measured = [r for r in records if window.joined <= r.started <= window.end]
    ttft = [
        r.ttft_s * 1e3
        for r in measured
        if r.ttft_s is not None and r.first_token is not None and r.first_token <= window.end
    ]
    total = [
        r.total_s * 1e3
        for r in measured
        if r.total_s is not None
        and r.finished is not None
        and r.finished <= window.end
        and not r.error
    ]
    errors = [r.error for r in measured if r.error]
    tiers: dict[str, int] = {}
    for record in measured:
        if record.tier:
            tiers[record.tier] = tiers.get(record.tier, 0) + 1
    return {
        "requests_started": len(measured),
        "requests_completed": len(total),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:_MAX_ERROR_SAMPLES],
        "tiers": tiers,
        "judge_ms": [r.judge_s * 1e3 for r in measured if r.judge_s is not None],
        "ttft_ms": ttft,
        "total_ms": total,
    }


def _usage_json(usage: dict[str, ProcessUsage]) -> dict[str, dict[str, float]]:
    return {
        name: {"cpu_s": u.cpu_s, "rss_mb_peak": u.rss_mb_peak, "rss_mb_start": u.rss_mb_start}
        for name, u in usage.items()
    }
