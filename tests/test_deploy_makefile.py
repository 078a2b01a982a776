"""`make install` on a Mac: it finds a Python 3.11/3.12 under any of its usual names, or
says exactly what to install; it needs no `nproc`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What make and the Makefile's shell snippets need, and nothing named python.
TOOLS = ("sh", "uname", "getconf", "echo")


def _bin(tmp_path: Path, pythons: dict[str, str]) -> Path:
    """A PATH folder with the basic tools and the given python names."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        if found:
            (folder / tool).symlink_to(found)
    for name, target in pythons.items():
        (folder / name).symlink_to(target)
    return folder


def _make(tmp_path: Path, folder: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    make = shutil.which("make")
    assert make is not None
    return subprocess.run(
        [make, "-C", str(tmp_path), *argv],
        env={"PATH": str(folder), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _old_python(tmp_path: Path) -> str:
    """A python3 that is 3.9, like the Command Line Tools' (a script: none is installed)."""
    script = tmp_path / "python3.9"
    script.write_text(
        "#!/bin/sh\n[ \"$1\" = --version ] && echo 'Python 3.9.6' && exit 0\nexit 1\n"
    )
    script.chmod(0o755)
    return str(script)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_picks_python311_when_python3_is_too_old(tmp_path: Path) -> None:
    if sys.version_info[:2] not in ((3, 11), (3, 12)):
        pytest.skip("needs this interpreter to be 3.11 or 3.12")
    folder = _bin(tmp_path, {"python3": _old_python(tmp_path), "python3.11": sys.executable})
    shown = _make(tmp_path, folder, "-n", "-p", "help")
    assert "PYTHON := python3.11" in shown.stdout.splitlines()
    jobs = [line for line in shown.stdout.splitlines() if line.startswith("JOBS := ")]
    assert jobs and jobs[0].removeprefix("JOBS := ").isdigit()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_says_what_to_install_without_a_suitable_python(tmp_path: Path) -> None:
    folder = _bin(tmp_path, {"python3": _old_python(tmp_path)})
    failed = _make(tmp_path, folder, ".venv/bin/python")
    assert failed.returncode != 0
    assert "Tandem needs Python 3.11 or 3.12" in failed.stderr
    assert "Python 3.9.6" in failed.stderr
    install_hint = "brew install python@3.12" if sys.platform == "darwin" else "apt install"
    assert install_hint in failed.stderr
    assert not (tmp_path / ".venv").exists()


def test_the_makefile_never_calls_nproc() -> None:
    text = (ROOT / "Makefile").read_text()
    assert "$$(nproc)" not in text and "$(shell nproc" not in text
    assert "CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS)" in text and "-DGGML_METAL=on" in text
