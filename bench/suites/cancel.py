"""4a. Cancel → the stand-in sees the disconnect, at each concurrency, on each path."""

from __future__ import annotations

from typing import Any

from bench.scenarios import GATEWAY_CACHED
from bench.stats import over_reps, percentile
from bench.suites import SuiteContext, healthy

# Long enough that every stream is still running when all have their first tokens,
# even at 256 streams; a stream that did end first is not counted as cancelled.
_ANSWER_TOKENS = 120
_AFTER_TOKENS = 2
_OBSERVE_S = 1.5
_QUIET_S = 20.0  # LiteLLM's uncancelled streams at 256 take this long to run out


def run_cancel(ctx: SuiteContext) -> dict[str, Any]:
    cfg = ctx.config
    scenarios = [s for s in ctx.scenarios if s.key != GATEWAY_CACHED]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {s.key: {} for s in scenarios}
    for concurrency, scenario, what in ctx.sweep("cancel", cfg.cancel_concurrency, scenarios):
        result = ctx.run(
            what,
            "cancel",
            [
                "--kind",
                scenario.kind,
                "--address",
                scenario.address,
                "--standin",
                ctx.standin.address,
                "--concurrency",
                str(concurrency),
                "--rate",
                str(cfg.cancel_rate),
                "--answer-tokens",
                str(_ANSWER_TOKENS),
                "--after-tokens",
                str(_AFTER_TOKENS),
                "--observe-s",
                str(_OBSERVE_S),
            ],
            _ANSWER_TOKENS / cfg.cancel_rate + _OBSERVE_S + 20.0,
            scenario.processes,
        )
        runs[scenario.key].setdefault(str(concurrency), []).append(result)
        ctx.wait_standin_quiet(_QUIET_S)
    return {
        "rate_tokens_per_s": cfg.cancel_rate,
        "answer_tokens": _ANSWER_TOKENS,
        "observe_s": _OBSERVE_S,
        "reps": cfg.reps,
        "labels": {s.key: s.label for s in scenarios},
        "summary": {key: _summary(by_c) for key, by_c in runs.items()},
        "runs": runs,
    }


def _summary(by_concurrency: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for concurrency, all_reps in by_concurrency.items():
        reps = healthy(all_reps)
        summary[concurrency] = {
            "runs_left_out": len(all_reps) - len(reps),
            "disconnect_ms_p50": over_reps(
                [percentile(r["disconnect_ms"], 50) for r in reps]
            ).as_json(),
            "disconnect_ms_max": over_reps(
                [max(r["disconnect_ms"]) if r["disconnect_ms"] else None for r in reps]
            ).as_json(),
            "cancelled": sum(r["cancelled"] for r in reps),
            "seen": sum(len(r["disconnect_ms"]) for r in reps),
            "ran_to_end": sum(r["ran_to_end"] for r in reps),
            "not_seen": sum(r["not_seen"] for r in reps),
        }
    return summary
