"""Processes under test: start, wait until ready, stop; never left running.

Every child gets SIGTERM when the orchestrator dies (Linux ``PR_SET_PDEATHSIG``),
and ``stop`` escalates to SIGKILL after a grace period, so a benchmark that
fails half-way leaves nothing behind. This process never loads gRPC: it forks
every other process, and gRPC's core does not survive a fork (it crashed here).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1
_POLL_S = 0.1


class ServiceFailed(RuntimeError):
    """A service exited or did not become ready in time."""


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Service:
    """One child process with its log file."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise ServiceFailed(f"{self.name} is not running")
        return self.proc.pid

    def start(self) -> Service:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(  # noqa: S603 - our own argv
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                cwd=self.cwd,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only calls prctl
            )
        finally:
            log.close()
        return self

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            tail = self.log_tail()
            raise ServiceFailed(f"{self.name} exited (status {code}); its log ends:\n{tail}")

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def kill(self) -> None:
        """SIGKILL, no grace (the failure-timing suite's worker crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self, grace_s: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def wait_ready(
    service: Service,
    ready: Callable[[], bool],
    what: str,
    timeout_s: float,
    poll_s: float = _POLL_S,
) -> None:
    """Poll ``ready()`` (another process: nothing to wait on) until it holds; ServiceFailed
    if the service died or ``timeout_s`` passed first, with the end of its log."""
    deadline = time.monotonic() + timeout_s
    while True:
        service.check_alive()
        if ready():
            return
        if time.monotonic() > deadline:
            raise ServiceFailed(
                f"{service.name}: {what} after {timeout_s:.0f}s\n{service.log_tail()}"
            )
        time.sleep(poll_s)


def wait_http(service: Service, url: str, timeout_s: float) -> None:
    """Until ``url`` answers 200 (the stand-in, LiteLLM)."""

    def answers() -> bool:
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=2.0) as response,
        ):  # noqa: S310 - loopback
            return response.status == 200
        return False

    wait_ready(service, answers, f"{url} not ready", timeout_s)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5.0) as response:  # noqa: S310 - loopback
        return json.loads(response.read())
