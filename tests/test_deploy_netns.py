"""The worker started before its listen address exists (the Mac Mini at boot, before the
Thunderbolt bridge is up) waits for it, saying so, and serves once it appears."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import GUARD_S, SERVING, WORKER_SERVICE, wait_for_health
from tests.netns import WORKER_IP, SecondHost, second_host, unavailable_reason

_REASON = unavailable_reason()
pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(_REASON is not None, reason=f"no second host: {_REASON}"),
]

ROOT = Path(__file__).resolve().parents[1]
WORKER_ADDRESS = f"{WORKER_IP}:50052"


class LogWatch:
    """Reads a process's stderr on a thread; waits for a line containing some text."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._stream = process.stderr
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self._stream:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.lines.append("")  # end of stream
            self._changed.notify_all()

    def wait_for(self, text: str) -> str:
        def found() -> str | None:
            return next((line for line in self.lines if text in line), None)

        with self._changed:
            self._changed.wait_for(lambda: found() is not None or "" in self.lines, GUARD_S)
            line = found()
        assert line is not None, f"no log line with {text!r}:\n{''.join(self.lines)}"
        return line


@pytest.fixture
def bridge_down() -> Iterator[SecondHost]:
    with second_host() as host:
        host.remove_worker_address()
        yield host


async def test_the_worker_waits_for_its_address_then_serves(bridge_down: SecondHost) -> None:
    ollama = bridge_down.popen(
        sys.executable, "-m", "tests.fake_ollama", stdout=subprocess.PIPE, cwd=ROOT
    )
    worker: subprocess.Popen[str] | None = None
    try:
        assert ollama.stdout is not None
        ollama_url = ollama.stdout.readline().strip()
        worker = bridge_down.popen(
            sys.executable,
            "-m",
            "tandem.cli.main",
            "worker",
            "--listen",
            WORKER_ADDRESS,
            "--ollama-url",
            ollama_url,
            "--model",
            "qwen3-coder-next",
            "--metrics-listen",
            "",
            cwd=ROOT,
            stderr=subprocess.PIPE,
        )
        logs = LogWatch(worker)
        waiting = logs.wait_for("waiting for address")
        assert WORKER_IP in waiting and WORKER_ADDRESS in waiting
        assert worker.poll() is None, "the worker exited instead of waiting"

        bridge_down.add_worker_address()
        await wait_for_health(WORKER_ADDRESS, WORKER_SERVICE, SERVING)
        assert f"address {WORKER_IP} is up" in logs.wait_for("is up after")
        assert "listening on" in logs.wait_for("listening on")
    finally:
        for process in (worker, ollama):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=30)
