"""``python -m bench``: start the systems under test, run every suite, write the results.

    python -m bench                 # the full benchmark (what `make bench` runs)
    python -m bench --quick         # a smoke run of every piece, in seconds
    python -m bench --results-dir D # somewhere else than bench/results
    python -m bench --suite agent   # only the named suites (repeatable)

Results: ``<dir>/<suite>.json`` for each suite, ``summary.json`` (machine,
targets, table), ``table.md``, PNG plots, and py-spy's raw profiles; logs of
every process under ``<dir>/tmp/``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.config import FULL, QUICK, BenchConfig
from bench.loadgen_runner import LoadgenRunner
from bench.machine import litellm_version, load_average, machine_info
from bench.plots import write_plots
from bench.procs import ServiceFailed
from bench.provenance import provenance
from bench.report import render, targets
from bench.scenarios import build_scenarios
from bench.stack import Running, Stack, Tools
from bench.suites import SuiteContext
from bench.suites.agent import AgentBenchOptions, run_agent
from bench.suites.agent import table as agent_table
from bench.suites.cancel import run_cancel
from bench.suites.guard import run_guard
from bench.suites.kill import run_kill
from bench.suites.latency import run_latency
from bench.suites.paced import run_paced
from bench.suites.profile import run_profile
from bench.suites.real_model import run_real_model
from bench.suites.throughput import run_throughput

REPO = Path(__file__).resolve().parent.parent
SUITES = (
    "latency",
    "guard",
    "throughput",
    "paced",
    "cancel",
    "profile",
    "kill",
    "real_model",
    "agent",
)
# The suites that start stacks of their own (the others share the main stack).
_OWN_STACK_SUITES = frozenset({"agent"})
_OUTPUT_GLOBS = ("*.json", "*.png", "table.md", "agent.md", "profile-*.txt")


class _NothingElse(Exception):
    """Only suites with stacks of their own were asked for."""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny windows, 1 rep")
    parser.add_argument("--reps", type=int, default=None, help="repetitions of each figure")
    parser.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--tandem-bin", default=str(REPO / ".venv" / "bin" / "tandem"))
    parser.add_argument("--tandem-python", default=str(REPO / ".venv" / "bin" / "python"))
    parser.add_argument(
        "--litellm-bin", default=str(REPO / "bench" / ".venv-litellm" / "bin" / "litellm")
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=[*SUITES, "litellm"],
        help="leave out a suite, or the LiteLLM peer (repeatable)",
    )
    parser.add_argument(
        "--only",
        "--suite",
        dest="only",
        action="append",
        default=[],
        choices=SUITES,
        help="run only this suite (repeatable; the others are skipped). The "
        "results dir is cleared first: give --results-dir to keep a full run's "
        "(except for suites with stacks of their own, e.g. agent: they only "
        "replace their own results)",
    )
    parser.add_argument("--agent-turns", type=int, default=AgentBenchOptions.turns)
    parser.add_argument(
        "--agent-judge-prompt-tps", type=float, default=AgentBenchOptions.judge_prompt_tps
    )
    parser.add_argument(
        "--agent-judge-output-tps", type=float, default=AgentBenchOptions.judge_output_tps
    )
    parser.add_argument(
        "--agent-worker-prompt-tps",
        type=float,
        default=AgentBenchOptions.assumed_worker_prompt_tps,
        help="ASSUMED prompt tokens/s of the worker's model in the agent suite",
    )
    return parser


def _config(args: argparse.Namespace) -> BenchConfig:
    config = QUICK if args.quick else FULL
    if args.reps is not None:
        config = replace(config, reps=max(1, args.reps))
    return config


class Run:
    """One benchmark run: its results so far, written out as each suite ends."""

    def __init__(
        self, config: BenchConfig, tools: Tools, results_dir: Path, skip: set[str]
    ) -> None:
        self.config = config
        self.tools = tools
        self.dir = results_dir
        self.skip = skip
        self.results: dict[str, Any] = {"quick": config.quick, "failures": {}}
        self.started = time.monotonic()
        # Taken before any result is written: the commit and tree the run measured.
        self.provenance = provenance(REPO, "bench")

    def wanted(self, suite: str) -> bool:
        if suite in self.skip:
            return False
        if suite == "profile":
            return self.config.with_profile
        if suite == "real_model":
            return self.config.with_real_model
        return True

    def suite(self, name: str, job: Callable[[], dict[str, Any]]) -> None:
        if not self.wanted(name):
            return
        _log(f"[bench] {name} ({time.monotonic() - self.started:.0f} s in)")
        try:
            result = job()
        except Exception as exc:  # noqa: BLE001 - one failed suite must not lose the others
            self.results["failures"][name] = f"{type(exc).__name__}: {exc}"
            _log(f"[bench] {name} FAILED:\n{traceback.format_exc()}")
            return
        self.results[name] = result
        artifact = {"provenance": self.provenance, **result}
        (self.dir / f"{name}.json").write_text(json.dumps(artifact, indent=1))

    def finish(self) -> str:
        self.results["machine"]["load_average_at_end"] = load_average()
        self.results["elapsed_s"] = time.monotonic() - self.started
        table = render(self.results)
        summary = {
            "provenance": self.provenance,
            "quick": self.config.quick,
            "machine": self.results["machine"],
            "elapsed_s": self.results["elapsed_s"],
            "failures": self.results["failures"],
            "incidents": self.results.get("incidents", []),
            "targets": targets(self.results),
            "suites": [s for s in SUITES if s in self.results],
            "table_markdown": table,
        }
        (self.dir / "summary.json").write_text(json.dumps(summary, indent=1))
        (self.dir / "table.md").write_text(table + "\n")
        for path in write_plots(self.results, self.dir):
            _log(f"[bench] plot {path}")
        return table


def _clear_old_outputs(results_dir: Path) -> None:
    for pattern in _OUTPUT_GLOBS:
        for path in results_dir.glob(pattern):
            path.unlink()


def _main_stack(run: Run, stack: Stack) -> SuiteContext:
    standin = stack.standin()
    worker = stack.worker("worker", standin.url)
    gateway = stack.gateway("gateway", worker.address, standin.url)
    litellm: Running | None = None
    if run.config.with_litellm and "litellm" not in run.skip:
        try:
            litellm = stack.litellm(standin.url)
        except ServiceFailed as exc:
            run.results["failures"]["litellm"] = str(exc)
        if litellm is None and "litellm" not in run.results["failures"]:
            run.results["failures"]["litellm"] = (
                f"not installed at {run.tools.litellm_bin} (make bench installs it)"
            )
    watch = {
        "standin": standin.service.pid,
        "worker": worker.service.pid,
        "gateway": gateway.service.pid,
    }
    if litellm is not None:
        watch["litellm"] = litellm.service.pid
    scenarios = build_scenarios(
        standin.address, worker.address, gateway.address, litellm.address if litellm else None
    )
    loadgen = LoadgenRunner(run.tools, run.dir / "tmp")
    return SuiteContext(
        run.config, run.tools, loadgen, stack, standin, worker, gateway, scenarios, watch, _log
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = _config(args)
    results_dir: Path = args.results_dir.resolve()
    results_dir.mkdir(parents=True, exist_ok=True)
    own_stacks_only = bool(args.only) and set(args.only) <= _OWN_STACK_SUITES
    if not own_stacks_only:  # those replace their own results and leave the rest alone
        _clear_old_outputs(results_dir)
    litellm_bin = None if "litellm" in args.skip or not config.with_litellm else args.litellm_bin
    tools = Tools(
        REPO,
        sys.executable,
        args.tandem_bin,
        args.tandem_python,
        litellm_bin,
        results_dir / "tmp" / "logs",
    )
    skip = set(args.skip) | ({*SUITES} - set(args.only) if args.only else set())
    run = Run(config, tools, results_dir, skip)
    run.results["machine"] = machine_info(REPO, litellm_version(litellm_bin))
    _log(f"[bench] {'quick' if config.quick else 'full'} run; results in {results_dir}")
    stack = Stack(tools)
    agent = AgentBenchOptions(
        2 if config.quick else args.agent_turns,
        args.agent_judge_prompt_tps,
        args.agent_judge_output_tps,
        args.agent_worker_prompt_tps,
        quick=config.quick,
    )
    try:
        run.suite("agent", lambda: run_agent(tools, _log, agent, results_dir / "tmp"))
        if "agent" in run.results:
            (results_dir / "agent.md").write_text(agent_table(run.results["agent"]) + "\n")
        if not any(run.wanted(name) for name in set(SUITES) - _OWN_STACK_SUITES):
            raise _NothingElse
        ctx = _main_stack(run, stack)
        run.results["incidents"] = ctx.incidents  # the same list: filled in as suites run
        run.suite("latency", lambda: run_latency(ctx))
        hits = (run.results.get("latency") or {}).get("verdict_cache", {}).get("cache_hits", 0)
        run.suite("guard", lambda: run_guard(ctx, cache_hits=hits))
        run.suite("throughput", lambda: run_throughput(ctx))
        run.suite("paced", lambda: run_paced(ctx))
        run.suite("cancel", lambda: run_cancel(ctx))
        run.suite("profile", lambda: run_profile(ctx, results_dir))
        run.suite("kill", lambda: run_kill(ctx))
        stack.close()
        run.suite("real_model", lambda: run_real_model(ctx))
    except _NothingElse:
        pass
    except ServiceFailed as exc:
        run.results["failures"]["setup"] = str(exc)
        _log(f"[bench] could not start the systems under test: {exc}")
    finally:
        stack.close()
    if own_stacks_only:
        if "agent" in run.results:
            print(agent_table(run.results["agent"]), flush=True)
        print(json.dumps({"failures": run.results["failures"]}), flush=True)
    else:
        print(run.finish(), flush=True)
    return 1 if run.results["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
