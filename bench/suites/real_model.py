"""6. The real model: the embedded default (SmolLM2-135M on llama.cpp) through the full path.

A worker and a gateway started without ``--ollama-url``, as ``make run`` does;
requests one after another through ``GatewayService/Route``, the first one a
warm-up, each prompt made unique so that no verdict-cache hit is timed (the
suite fails if one is). Where the gateway's embedded default skips the LLM judge (newer
gateways let the classifier decide there), a second gateway with
``--use-judge`` measures the embedded judge's own latency.
"""

from __future__ import annotations

from typing import Any

from bench.prompts import BASE_PROMPT
from bench.stack import Running
from bench.stats import over_reps
from bench.suites import SuiteContext

_TIMEOUT_S = 120.0
_USE_JUDGE = "--use-judge"


def run_real_model(ctx: SuiteContext) -> dict[str, Any]:
    ctx.log("  real model: starting an embedded worker and gateway")
    worker = ctx.stack.worker("embedded-worker", None)
    try:
        default = _through_gateway(ctx, worker, "embedded-gateway", ())
        judged = None
        if ctx.config.real_model_with_judge and ctx.stack.supports("gateway", _USE_JUDGE):
            judged = _through_gateway(ctx, worker, "embedded-judge-gateway", (_USE_JUDGE,))
    finally:
        ctx.stack.stop(worker)
    return {
        "prompt": BASE_PROMPT,
        "max_tokens": ctx.config.real_model_tokens,
        "summary": default["summary"],
        "with_judge": judged["summary"] if judged else None,
        "requests": default["requests"],
        "requests_with_judge": judged["requests"] if judged else None,
    }


def _through_gateway(
    ctx: SuiteContext, worker: Running, name: str, extra: tuple[str, ...]
) -> dict[str, Any]:
    cfg = ctx.config
    gateway = ctx.stack.gateway(name, worker.address, None, extra)
    try:
        requests = cfg.real_model_requests + 1
        ctx.log(f"  real model: {requests} requests through {name} (the first a warm-up)")
        result = ctx.loadgen.run(
            "sequence",
            [
                "--kind",
                "gateway",
                "--address",
                gateway.address,
                "--prompt",
                BASE_PROMPT,
                "--max-tokens",
                str(cfg.real_model_tokens),
                "--requests",
                str(requests),
                "--timeout-s",
                str(_TIMEOUT_S),
                "--unique-prompts",
            ],
            requests * _TIMEOUT_S,
        )
    finally:
        ctx.stack.stop(gateway)
    rows = result["requests"]
    measured = rows[1:] or rows
    cached = [r["prompt"] for r in measured if r["tier"] == "cache"]
    if cached:  # each prompt differs: a cache hit means the figure is not the guard's
        raise RuntimeError(f"{name}: the verdict cache answered {len(cached)} measured requests")
    return {
        "summary": {
            "ttft_ms": over_reps([r["ttft_ms"] for r in measured]).as_json(),
            "tokens_per_s": over_reps([r["tokens_per_s"] for r in measured]).as_json(),
            "decision_ms": over_reps([r["judge_ms"] for r in measured]).as_json(),
            "decision_tiers": sorted({r["tier"] for r in measured if r["tier"]}),
            "total_ms": over_reps([r["total_ms"] for r in measured]).as_json(),
            "tokens": over_reps([float(r["tokens"]) for r in measured]).as_json(),
            "errors": [r["error"] for r in measured if r["error"]],
        },
        "requests": rows,
    }
