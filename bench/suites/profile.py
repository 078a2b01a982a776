"""Where the time goes at saturation: py-spy on the worker and the gateway at once.

The load is scenario (d) at 32 streams with the stand-in as fast as it can go.
py-spy samples native frames too (``--native``: gRPC's core and the syscalls
show up by name), which pauses the process at each sample, so this run's own
throughput is not reported anywhere.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.profile_summary import summarize_file
from bench.scenarios import GATEWAY_JUDGE
from bench.suites import SuiteContext

_CONCURRENCY = 32
_RATE_HZ = 100
_WARMUP_S = 1.0


def py_spy_path(bench_python: str) -> str | None:
    beside = Path(bench_python).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def run_profile(ctx: SuiteContext, results_dir: Path) -> dict[str, Any]:
    py_spy = py_spy_path(ctx.tools.bench_python)
    scenario = ctx.scenario(GATEWAY_JUDGE)
    if py_spy is None or scenario is None:
        return {"skipped": "py-spy is not installed (it comes with the bench environment)"}
    seconds = ctx.config.profile_s
    targets = {name: ctx.watch[name] for name in ("worker", "gateway") if name in ctx.watch}
    outputs = {name: results_dir / f"profile-{name}.txt" for name in targets}
    ctx.log(
        f"  profile: py-spy on {', '.join(targets)} for {seconds:.0f}s under "
        f"{_CONCURRENCY} streams of {scenario.label}"
    )
    spies = {
        name: subprocess.Popen(  # noqa: S603 - our own argv
            [
                py_spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                f"{seconds:g}",
                "--rate",
                str(_RATE_HZ),
                "--native",
                "--format",
                "raw",
                "--output",
                str(outputs[name]),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, pid in targets.items()
    }
    try:
        ctx.run(
            "the profiling run",
            "closed",
            [
                "--kind",
                scenario.kind,
                "--address",
                scenario.address,
                "--concurrency",
                str(_CONCURRENCY),
                "--warmup-s",
                str(_WARMUP_S),
                "--duration-s",
                f"{seconds + 1.0:g}",
                "--max-tokens",
                str(ctx.config.throughput_tokens),
                "--rate",
                "0",
                "--unique-prompts",
            ],
            _WARMUP_S + seconds + 1.0,
        )
    finally:
        notes = {name: _finish(spy, seconds) for name, spy in spies.items()}
    ctx.wait_standin_quiet()
    result: dict[str, Any] = {
        "concurrency": _CONCURRENCY,
        "seconds": seconds,
        "scenario": scenario.key,
    }
    for name, path in outputs.items():
        if path.exists() and path.stat().st_size:
            result[name] = {"raw_file": path.name, **summarize_file(path)}
        else:
            result[name] = {"error": notes[name]}
    return result


def _finish(spy: subprocess.Popen[str], seconds: float) -> str:
    try:
        output, _ = spy.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        spy.kill()
        output, _ = spy.communicate()
    return (output or "")[-500:]
