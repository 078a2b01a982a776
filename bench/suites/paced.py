"""2b. Paced load (issue 18): many streams, each paced like a fast model, long answers.

32, 64 and 128 closed-loop streams, the stand-in pacing every stream at
``paced_rate`` tokens/s with ``paced_tokens``-token answers (32 × 100 × 200 is
3,200 tokens/s offered). Unlike the latency suite the relay is busy here, and
unlike the throughput suite it is not saturated: what it shows is the time to
first token a new request sees while the relay carries a Mac Mini's worth of
streams, whether every offered token is delivered, and the CPU the relaying
processes spend per 1,000 tokens. The paths: (a) direct (the baseline), (c)
gateway + worker (the repeated prompt: the guard's cache answers, so the relay
is what is measured) and LiteLLM, taking turns within each repetition.
Run it alone with ``make bench BENCH_ARGS="--only paced"``.
"""

from __future__ import annotations

from typing import Any

from bench.scenarios import DIRECT, GATEWAY_CACHED, LITELLM
from bench.stats import over_reps
from bench.suites import SuiteContext, healthy
from bench.suites.latency import _summary as added_latency
from bench.suites.throughput import _per_1k

_PATHS = (DIRECT, GATEWAY_CACHED, LITELLM)
_KEEP = (
    "tokens",
    "window_s",
    "tokens_per_s",
    "requests_started",
    "requests_completed",
    "errors",
    "error_samples",
    "ttft_ms",
    "total_ms",
    "processes",
    "elapsed_s",
    "degraded",
)


def run_paced(ctx: SuiteContext) -> dict[str, Any]:
    cfg = ctx.config
    scenarios = [s for s in ctx.scenarios if s.key in _PATHS]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {s.key: {} for s in scenarios}
    for concurrency, scenario, what in ctx.sweep("paced", cfg.paced_concurrency, scenarios):
        result = ctx.closed_loop(
            what,
            scenario,
            concurrency,
            warmup_s=cfg.paced_warmup_s,
            window_s=cfg.paced_window_s,
            tokens=cfg.paced_tokens,
            rate=cfg.paced_rate,
            extra=ctx.watch_args(),
        )
        runs[scenario.key].setdefault(str(concurrency), []).append(
            {k: result.get(k) for k in _KEEP}
        )
        ctx.wait_standin_quiet()
    summary = added_latency(runs)
    for scenario in scenarios:
        for concurrency, entry in summary.get(scenario.key, {}).items():
            reps = healthy(runs[scenario.key][concurrency])
            entry["offered_tokens_per_s"] = int(concurrency) * cfg.paced_rate
            entry["tokens_per_s"] = over_reps([r["tokens_per_s"] for r in reps]).as_json()
            entry["cpu_s_per_1k_tokens"] = _per_1k(scenario, reps)
    return {
        "rate_tokens_per_s": cfg.paced_rate,
        "answer_tokens": cfg.paced_tokens,
        "window_s": cfg.paced_window_s,
        "reps": cfg.reps,
        "labels": {s.key: s.label for s in scenarios},
        "summary": summary,
        "runs": runs,
    }
