"""The benchmark's suites; each takes a ``SuiteContext`` and returns its JSON result.

Every load-generator run ends with a health check of the worker and the
gateway. A run after which a service on its path no longer serves is marked
``degraded`` (the suites leave it out of their figures and count it); the
service gets a few seconds to come back by itself, else it is restarted; and
the incident is recorded with the services' own last warnings. So a Tandem
failure shows up in the results instead of silently spoiling every later figure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.config import BenchConfig
from bench.loadgen_runner import LoadgenRunner
from bench.procs import get_json
from bench.scenarios import Scenario
from bench.stack import Running, Stack, Tools

Log = Callable[[str], None]
# How long a service that stopped serving gets to come back on its own before it is
# restarted (a gateway that marked a loaded worker unreachable recovers in seconds).
_SELF_RECOVERY_S = {"worker": 3.0, "gateway": 10.0}


@dataclass
class SuiteContext:
    config: BenchConfig
    tools: Tools
    loadgen: LoadgenRunner
    stack: Stack
    standin: Running
    worker: Running
    gateway: Running
    scenarios: list[Scenario]
    watch: dict[str, int]
    log: Log
    incidents: list[dict[str, Any]] = field(default_factory=list)

    def scenario(self, key: str) -> Scenario | None:
        return next((s for s in self.scenarios if s.key == key), None)

    def closed_loop(
        self,
        what: str,
        scenario: Scenario,
        concurrency: int,
        *,
        warmup_s: float,
        window_s: float,
        tokens: int,
        rate: float,
        extra: Sequence[str] = (),
    ) -> dict[str, Any]:
        """One closed-loop load-generator run (``bench.loadgen closed``) against
        ``scenario``: ``concurrency`` streams of ``tokens``-token answers paced at
        ``rate`` tokens/s (0: as fast as the stand-in can), measured over ``window_s``."""
        args = [
            "--kind",
            scenario.kind,
            "--address",
            scenario.address,
            "--concurrency",
            str(concurrency),
            "--warmup-s",
            str(warmup_s),
            "--duration-s",
            str(window_s),
            "--max-tokens",
            str(tokens),
            "--rate",
            str(rate),
            *extra,
            *(["--unique-prompts"] if scenario.unique_prompts else []),
        ]
        return self.run(what, "closed", args, warmup_s + window_s, scenario.processes)

    def watch_args(self) -> list[str]:
        return [arg for name, pid in self.watch.items() for arg in ("--watch", f"{name}={pid}")]

    def sweep(
        self, suite: str, concurrencies: tuple[int, ...], scenarios: list[Scenario]
    ) -> Iterator[tuple[int, Scenario, str]]:
        """Every concurrency × repetition × path, the paths taking turns within a
        repetition so drift in the machine's load spreads over all of them alike."""
        for concurrency in concurrencies:
            for rep in range(self.config.reps):
                for scenario in scenarios:
                    what = (
                        f"{suite} c={concurrency} rep {rep + 1}/{self.config.reps}: "
                        f"{scenario.label}"
                    )
                    self.log(f"  {what}")
                    yield concurrency, scenario, what

    def run(
        self,
        what: str,
        mode: str,
        args: list[str],
        expected_s: float,
        path: tuple[str, ...] = ("worker", "gateway"),
    ) -> dict[str, Any]:
        """One load-generator run, then the health check (and recovery) described above;
        the run counts as degraded only if a service on its ``path`` stopped serving."""
        health = [
            arg
            for running, name in ((self.worker, "worker"), (self.gateway, "gateway"))
            for arg in ("--health", f"{name}={running.address}={running.health}")
        ]
        started = time.monotonic()
        result = self.loadgen.run(mode, [*args, *health], expected_s)
        result["elapsed_s"] = time.monotonic() - started
        lost = {
            name: status for name, status in result.get("health", {}).items() if status != "SERVING"
        }
        if lost:
            if set(lost) & set(path):
                result["degraded"] = lost
            self._recover(what, lost)
        return result

    def _recover(self, what: str, lost: dict[str, str]) -> None:
        self.log(f"  !! after {what}: {lost}; restarting")
        incident: dict[str, Any] = {
            "after": what,
            "health": lost,
            "last_warnings": {
                name: _last_warning(running)
                for name, running in (("worker", self.worker), ("gateway", self.gateway))
            },
        }
        for name in ("worker", "gateway"):
            running = self.worker if name == "worker" else self.gateway
            if name not in lost:
                continue
            if self.stack.serving_within(running, _SELF_RECOVERY_S[name]):
                incident[f"{name}_recovered"] = "by itself"
                continue
            running = self.stack.restart(running)
            incident[f"{name}_recovered"] = "restarted"
            self.watch[name] = running.service.pid
            if name == "worker":
                self.worker = running
            else:
                self.gateway = running
        self.stack.wait_serving(self.gateway)
        self.incidents.append(incident)

    def wait_standin_quiet(self, timeout_s: float = 10.0) -> bool:
        """Until every stream the stand-in started has ended (completed or hung up)."""
        deadline = time.monotonic() + timeout_s
        while True:
            stats = get_json(f"{self.standin.url}/bench/stats")
            running = stats["streams_started"] - stats["streams_completed"] - stats["disconnects"]
            if running <= 0:
                return True
            if time.monotonic() > deadline:
                self.log(f"  (the stand-in still has {running} streams running)")
                return False
            time.sleep(0.05)


def _last_warning(running: Running) -> str:
    lines = [
        line
        for line in running.service.log_tail(200).splitlines()
        if " WARNING " in line or " ERROR " in line
    ]
    return lines[-1][:400] if lines else ""


def healthy(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs after which every service still served (the ones figures are made of)."""
    return [r for r in runs if not r.get("degraded")]
