"""Run the load generator as its own process and read back its JSON."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stack import Tools

_STARTUP_ALLOWANCE_S = 30.0


class LoadgenFailed(RuntimeError):
    """The load generator exited with an error or ran past its time limit."""


@dataclass(frozen=True)
class LoadgenRunner:
    tools: Tools
    scratch: Path

    def run(self, mode: str, args: list[str], expected_s: float) -> dict[str, Any]:
        """``python -m bench.loadgen MODE ARGS --out …``, bounded by ``expected_s`` plus slack."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        out = self.scratch / f"loadgen-{uuid.uuid4().hex[:12]}.json"
        argv = [self.tools.bench_python, "-m", "bench.loadgen", mode, *args, "--out", str(out)]
        env = {**os.environ, **self.tools.bench_env()}
        try:
            done = subprocess.run(  # noqa: S603 - our own argv
                argv,
                capture_output=True,
                text=True,
                env=env,
                cwd=self.tools.repo,
                timeout=expected_s + _STARTUP_ALLOWANCE_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise LoadgenFailed(f"loadgen {mode} {' '.join(args)} ran past its limit") from exc
        if done.returncode != 0 or not out.exists():
            raise LoadgenFailed(
                f"loadgen {mode} {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stderr[-2000:]}"
            )
        try:
            return dict(json.loads(out.read_text()))
        finally:
            out.unlink(missing_ok=True)
