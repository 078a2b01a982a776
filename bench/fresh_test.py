"""How long `make test` takes on a fresh clone, kept as an artifact.

    python -m bench.fresh_test [--reuse-wheels] [--out bench/results/fresh_make_test.json]

Clones HEAD into a scratch directory (next to a link to ../shared, as a
checkout has it), runs `.ci/run` there (what CI runs: install, build, every
test, skips failing) and writes the wall time, pytest's own count and time,
and the commit. ``--reuse-wheels`` copies the llama-cpp-python wheel built
before (.wheels/) instead of building it again, and says so in the artifact.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.provenance import provenance

REPO = Path(__file__).resolve().parent.parent
_COUNTS = re.compile(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)")
_SECONDS = re.compile(r" in ([\d.]+)s")


def pytest_summary(output: str) -> dict[str, Any]:
    """The counts and seconds of pytest's last summary line (``== 3 passed in 1.2s ==``)."""
    lines = [line for line in output.splitlines() if _SECONDS.search(line) and _COUNTS.search(line)]
    if not lines:
        return {}
    last = lines[-1]
    counts = {
        kind.rstrip("s") if kind.startswith("error") else kind: int(n)
        for n, kind in _COUNTS.findall(last)
    }
    seconds = _SECONDS.search(last)
    return {
        "line": last.strip("= "),
        "counts": counts,
        "seconds": float(seconds.group(1)) if seconds else None,
    }


def _clean_env() -> dict[str, str]:
    """This machine's environment without Tandem settings or an active virtualenv."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TANDEM_") and k not in ("VIRTUAL_ENV", "PYTHONPATH")
    }


def _run(clone: Path) -> tuple[int, float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    done = subprocess.run(  # noqa: S603 - the repository's own CI entry point
        [str(clone / ".ci" / "run")],
        cwd=clone,
        capture_output=True,
        text=True,
        check=False,
        env=_clean_env(),
    )
    return done.returncode, time.monotonic() - started, done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fresh_test",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--reuse-wheels", action="store_true")
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "results" / "fresh_make_test.json"
    )
    args = parser.parse_args(argv)
    taken = provenance(REPO, "bench.fresh_test")
    with tempfile.TemporaryDirectory(prefix="tandem-fresh-") as scratch:
        clone = Path(scratch) / "tandem"
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)  # noqa: S603,S607
        subprocess.run(["git", "checkout", "--quiet", taken["commit"]], cwd=clone, check=True)  # noqa: S603,S607
        shared = REPO.parent / "shared"
        if shared.is_dir():
            (Path(scratch) / "shared").symlink_to(shared)
        if args.reuse_wheels and (REPO / ".wheels").is_dir():
            shutil.copytree(REPO / ".wheels", clone / ".wheels")
        print(f"[fresh] .ci/run in {clone}", file=sys.stderr, flush=True)
        code, seconds, done = _run(clone)
    artifact = {
        "provenance": taken,
        "reused_wheels": args.reuse_wheels,
        "returncode": code,
        "wall_s": round(seconds, 1),
        "pytest": pytest_summary(done.stdout),
        "not_passed": [
            line for line in done.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))
        ],
        "stdout_tail": done.stdout[-6000:],
        "stderr_tail": done.stderr[-2000:],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(artifact, indent=1) + "\n")
    print(f"[fresh] exit {code} in {seconds / 60:.1f} min; {artifact['pytest'].get('line')}")
    return code


if __name__ == "__main__":
    sys.exit(main())
