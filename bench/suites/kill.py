"""4b. The worker is killed mid-stream: how long until each gateway client has its error.

A worker and gateway of its own (the main pair keeps serving the other
suites), the worker restarted after every repetition.
"""

from __future__ import annotations

from typing import Any

from bench.stats import over_reps, percentile
from bench.suites import SuiteContext

_RATE = 20.0
_ANSWER_TOKENS = 200
_OBSERVE_S = 5.0
_READY_S = 60.0


def run_kill(ctx: SuiteContext) -> dict[str, Any]:
    cfg = ctx.config
    worker = ctx.stack.worker("kill-worker", ctx.standin.url)
    gateway = ctx.stack.gateway("kill-gateway", worker.address, ctx.standin.url)
    reps: list[dict[str, Any]] = []
    try:
        for rep in range(cfg.kill_reps):
            ctx.log(
                f"  kill rep {rep + 1}/{cfg.kill_reps}: SIGKILL the worker under "
                f"{cfg.kill_concurrency} streams"
            )
            reps.append(
                ctx.loadgen.run(
                    "kill",
                    [
                        "--kind",
                        "gateway",
                        "--address",
                        gateway.address,
                        "--kill-pid",
                        str(worker.service.pid),
                        "--concurrency",
                        str(cfg.kill_concurrency),
                        "--rate",
                        str(_RATE),
                        "--answer-tokens",
                        str(_ANSWER_TOKENS),
                        "--observe-s",
                        str(_OBSERVE_S),
                    ],
                    _OBSERVE_S + 20.0,
                )
            )
            worker.service.kill()  # reap it (it is already dead)
            ctx.wait_standin_quiet()
            if rep + 1 < cfg.kill_reps:
                worker = ctx.stack.restart(worker)
                ctx.stack.wait_serving(gateway, _READY_S)
    finally:
        ctx.stack.stop(gateway)
        ctx.stack.stop(worker)
    return {
        "concurrency": cfg.kill_concurrency,
        "reps": cfg.kill_reps,
        "summary": {
            "error_ms_p50": over_reps([percentile(r["error_ms"], 50) for r in reps]).as_json(),
            "error_ms_max": over_reps(
                [max(r["error_ms"]) if r["error_ms"] else None for r in reps]
            ).as_json(),
            "codes": _codes(reps),
            "hung": sum(r["hung"] for r in reps),
            "completed_ok": sum(r["completed_ok"] for r in reps),
        },
        "runs": reps,
    }


def _codes(reps: list[dict[str, Any]]) -> dict[str, int]:
    codes: dict[str, int] = {}
    for rep in reps:
        for code, count in rep["codes"].items():
            codes[code] = codes.get(code, 0) + count
    return codes
