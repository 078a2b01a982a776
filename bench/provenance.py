"""Where a number came from: the commit it ran on, whether the tree was clean, the command.

Every artifact under bench/results/ carries this block, so a figure quoted in
the README can be traced to the code that produced it and rerun.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Results are rewritten by the runs themselves: they do not make the code dirty.
_RESULT_DIRS = ("bench/results/", "evals/results/")


def git(repo: Path, *args: str) -> str:
    try:
        return subprocess.run(  # noqa: S603 - fixed git arguments
            ["git", *args],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def changed_paths(repo: Path) -> list[str]:
    """Tracked files changed and untracked files not ignored, results left out."""
    lines = git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()
    paths = [line[3:] for line in lines if len(line) > 3]
    return [p for p in paths if not p.startswith(_RESULT_DIRS)]


def provenance(repo: Path, module: str) -> dict[str, Any]:
    """The commit, the cleanliness of the tree, the command (``python -m module`` and
    this process's arguments), the TANDEM_* settings and how busy the machine was."""
    changed = changed_paths(repo)
    return {
        "commit": git(repo, "rev-parse", "HEAD"),
        "tree_clean": not changed,
        "changed_paths": changed[:50],
        "command": shlex.join(["python", "-m", module, *sys.argv[1:]]),
        "tandem_env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("TANDEM_")},
        "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
