"""Link and process failure timings on a real second host, kept as an artifact.

    python -m bench.links [--runs 3] [--out bench/results/links.json]

Runs tests/test_distributed.py (root and network namespaces: the worker and a
fake Ollama at 169.254.19.104 behind a veth link) ``--runs`` times with
$TANDEM_LINK_RESULTS set; the tests append what they measured; this writes, per
event, every run's samples with their spread. A run whose tests fail (or skip)
fails the command: no table is made of a partial run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.provenance import provenance
from bench.stats import percentile

REPO = Path(__file__).resolve().parent.parent
_MODULE = "tests/test_distributed.py"


def _one_run(python: str) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as scratch:
        results = Path(scratch) / "links.jsonl"
        env = {**os.environ, "TANDEM_LINK_RESULTS": str(results), "TANDEM_REQUIRE_ALL": "1"}
        done = subprocess.run(  # noqa: S603 - our own interpreter and test module
            [python, "-m", "pytest", _MODULE, "-q", "-p", "no:cacheprovider"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"{_MODULE} failed ({done.returncode}):\n{done.stdout[-3000:]}")
        events: dict[str, list[float]] = {}
        for line in results.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            events.setdefault(record["event"], []).extend(record["ms"])
        return events


def _summary(per_run: list[list[float]]) -> dict[str, Any]:
    every = [ms for run in per_run for ms in run]
    return {
        "samples": len(every),
        "min_ms": min(every),
        "max_ms": max(every),
        "p50_ms": percentile(every, 50),
        "p95_ms": percentile(every, 95),
        "per_run_ms": per_run,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.links",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "links.json")
    parser.add_argument("--python", default=sys.executable, help="the interpreter with Tandem")
    args = parser.parse_args(argv)
    taken = provenance(REPO, "bench.links")
    runs = []
    for index in range(args.runs):
        print(f"[links] run {index + 1}/{args.runs}: {_MODULE}", file=sys.stderr, flush=True)
        runs.append(_one_run(args.python))
    events = sorted({event for run in runs for event in run})
    artifact = {
        "provenance": taken,
        "runs": args.runs,
        "events": {e: _summary([run.get(e, []) for run in runs]) for e in events},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(artifact, indent=1) + "\n")
    for event, figures in artifact["events"].items():
        print(
            f"{event}: {figures['min_ms']:.1f}-{figures['max_ms']:.1f} ms "
            f"(p50 {figures['p50_ms']:.1f}, p95 {figures['p95_ms']:.1f}, "
            f"{figures['samples']} samples)"
        )
    print(f"[links] wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
