"""The machine a run was taken on, and how busy it was: numbers mean little without it."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from bench.provenance import git


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine_info(repo: Path, litellm_version: str | None) -> dict[str, Any]:
    return {
        "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "grpcio": _version("grpcio"),
        "protobuf": _version("protobuf"),
        "uvloop_in_standin": _version("uvloop"),
        "litellm": litellm_version,
        "git_commit": git(repo, "rev-parse", "--short", "HEAD"),
        "git_dirty": bool(git(repo, "status", "--porcelain", "--untracked-files=no")),
        "load_average_at_start": load_average(),
    }


def litellm_version(litellm_bin: str | None) -> str | None:
    if not litellm_bin:
        return None
    python = Path(litellm_bin).parent / "python"
    if not python.exists():
        return None
    try:
        done = subprocess.run(  # noqa: S603 - our own interpreter
            [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None
