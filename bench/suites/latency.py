"""1. Added latency: TTFT and total time on each path, less the same on (a).

The stand-in paces every stream like a fast model (``latency_rate`` tokens/s),
so nothing is saturated and what is left is each hop's own cost. Within a
repetition the paths take turns, so drift in the machine's load spreads over
all of them alike.
"""

from __future__ import annotations

from typing import Any

from bench.scenarios import DIRECT, GATEWAY_CACHED
from bench.stats import figures_json, percentiles_over_reps
from bench.suites import SuiteContext, healthy

_KEEP = (
    "tokens_per_s",
    "requests_started",
    "requests_completed",
    "errors",
    "error_samples",
    "tiers",
    "judge_ms",
    "ttft_ms",
    "total_ms",
    "elapsed_s",
)


def run_latency(ctx: SuiteContext) -> dict[str, Any]:
    cfg = ctx.config
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {s.key: {} for s in ctx.scenarios}
    sweep = ctx.sweep("latency", cfg.latency_concurrency, ctx.scenarios)
    for concurrency, scenario, what in sweep:
        result = ctx.closed_loop(
            what,
            scenario,
            concurrency,
            warmup_s=cfg.latency_warmup_s,
            window_s=cfg.latency_window_s,
            tokens=cfg.latency_tokens,
            rate=cfg.latency_rate,
        )
        runs[scenario.key].setdefault(str(concurrency), []).append(
            {k: result.get(k) for k in (*_KEEP, "degraded")}
        )
        ctx.wait_standin_quiet()
    return {
        "rate_tokens_per_s": cfg.latency_rate,
        "answer_tokens": cfg.latency_tokens,
        "window_s": cfg.latency_window_s,
        "reps": cfg.reps,
        "labels": {s.key: s.label for s in ctx.scenarios},
        "summary": _summary(runs),
        "verdict_cache": _cache_finding(runs),
        "runs": runs,
    }


def _summary(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for key, by_concurrency in runs.items():
        for concurrency, all_reps in by_concurrency.items():
            reps = healthy(all_reps)
            ttft = percentiles_over_reps([r["ttft_ms"] for r in reps])
            total = percentiles_over_reps([r["total_ms"] for r in reps])
            base = healthy(runs.get(DIRECT, {}).get(concurrency, []))
            entry: dict[str, Any] = {
                "ttft_ms": figures_json(ttft),
                "total_ms": figures_json(total),
                "samples": [len(r["ttft_ms"]) for r in reps],
                "errors": sum(r["errors"] for r in reps),
                "runs_left_out": len(all_reps) - len(reps),
            }
            if base:
                base_ttft = percentiles_over_reps([r["ttft_ms"] for r in base])
                base_total = percentiles_over_reps([r["total_ms"] for r in base])
                entry["added_ttft_ms"] = {
                    f"p{p}": ttft[p].minus(base_ttft[p]).as_json() for p in ttft
                }
                entry["added_total_ms"] = {
                    f"p{p}": total[p].minus(base_total[p]).as_json() for p in total
                }
            summary.setdefault(key, {})[concurrency] = entry
    return summary


def _cache_finding(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Did the gateway answer the repeated prompt from a verdict cache?"""
    tiers: dict[str, int] = {}
    for reps in runs.get(GATEWAY_CACHED, {}).values():
        for rep in reps:
            for tier, count in rep["tiers"].items():
                tiers[tier] = tiers.get(tier, 0) + count
    hits = tiers.get("cache", 0)
    note = (
        "the gateway answered the repeated prompt from its verdict cache"
        if hits
        else "no verdict cache: the gateway called the judge for every repeated prompt, "
        "so (c) measures the same path as (d)"
    )
    return {"decision_tiers": tiers, "cache_hits": hits, "note": note}
