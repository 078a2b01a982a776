"""3. Guard cost: the rules tier in Tandem's own interpreter, and what is not there."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from bench.suites import SuiteContext

_TIMEOUT_S = 300.0
_NO_CACHE = (
    "not measured: the gateway answered no request from a verdict cache (the repeated "
    "prompt of scenario (c) went to the judge every time), so there is no hit to time"
)


def run_guard(ctx: SuiteContext, *, cache_hits: int) -> dict[str, Any]:
    out = ctx.loadgen.scratch / "guard.json"
    ctx.loadgen.scratch.mkdir(parents=True, exist_ok=True)
    argv = [ctx.tools.tandem_python, "-m", "bench.guard_bench", "--out", str(out)]
    if ctx.config.quick:
        argv.append("--quick")
    ctx.log("  guard: rules tier on a short and an 8 KB prompt")
    done = subprocess.run(  # noqa: S603 - our own argv
        argv,
        capture_output=True,
        text=True,
        cwd=ctx.tools.repo,
        timeout=_TIMEOUT_S,
        env={**os.environ, **ctx.tools.bench_env()},
        check=False,
    )
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"guard bench failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    measured = result.get("verdict_cache_hit_us") or {}
    if "short" in measured:
        note = (
            "a hit measured directly: the conversation's key (normalise, SHA-256) and the "
            f"LRU lookup; {cache_hits} requests of scenario (c) were answered from the cache"
        )
    elif cache_hits:
        note = (
            f"{cache_hits} requests of scenario (c) were answered from the cache, but its "
            "interface was not the one this benchmark times"
        )
    else:
        note = _NO_CACHE
    result["verdict_cache_note"] = note
    result["embedded_judge"] = "see real_model.json: the decision latency of the embedded judge"
    return result
