"""``make bench`` in its quick mode: every piece runs and the results are well formed.

A smoke check only. It starts the stand-in, a worker and a gateway through the
real CLI, drives them with the load generator, and reads the JSON back; it
asserts no timing at all (the numbers of a quick run on a busy CI machine mean
nothing). The full benchmark is ``make bench``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = ("a_direct", "b_worker", "c_gateway_cached", "d_gateway_judge")
TANDEM_PATHS = ("b_worker", "d_gateway_judge")  # the cancel suite's paths through Tandem
# A guard against hangs only (the quick run takes well under a minute).
RUN_LIMIT_S = 240


def _run_quick(results: Path) -> subprocess.CompletedProcess[str]:
    python = Path(sys.executable)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "shared")])}
    return subprocess.run(
        [
            str(python),
            "-m",
            "bench",
            "--quick",
            "--results-dir",
            str(results),
            "--tandem-bin",
            str(python.parent / "tandem"),
            "--tandem-python",
            str(python),
            "--skip",
            "litellm",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_LIMIT_S,
        check=False,
    )


def _load(results: Path, name: str) -> dict[str, Any]:
    data = json.loads((results / f"{name}.json").read_text())
    assert isinstance(data, dict)
    return data


def test_quick_bench_writes_well_formed_results(tmp_path: Path) -> None:
    done = _run_quick(tmp_path)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"

    summary = _load(tmp_path, "summary")
    # Every artifact names the commit it measured and whether the tree was clean.
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    for name in ("summary", *summary["suites"]):
        taken = _load(tmp_path, name)["provenance"]
        assert taken["commit"] == head and isinstance(taken["tree_clean"], bool), name
        assert "--quick" in taken["command"]
    assert summary["quick"] is True
    assert summary["failures"] == {}
    suites = {"latency", "guard", "throughput", "cancel", "kill", "real_model"}
    assert set(summary["suites"]) >= suites
    assert summary["machine"]["logical_cpus"] >= 1
    assert all({"target", "value", "unit", "met"} <= set(t) for t in summary["targets"])
    assert "Tandem benchmark" in (tmp_path / "table.md").read_text()
    assert "Added latency" in done.stdout

    latency = _load(tmp_path, "latency")
    for key in SCENARIOS:
        (entry,) = latency["summary"][key].values()
        assert entry["errors"] == 0
        assert sum(entry["samples"]) > 0
        assert entry["ttft_ms"]["p50"]["median"] > 0
        if key != "a_direct":
            assert set(entry["added_ttft_ms"]) == {"p50", "p95", "p99"}
    # Every Route is screened: the decision tier of each repeated-prompt request is known.
    assert sum(latency["verdict_cache"]["decision_tiers"].values()) > 0

    throughput = _load(tmp_path, "throughput")
    for key in ("a_direct", "b_worker", "d_gateway_judge"):
        for entry in throughput["summary"][key].values():
            assert entry["errors"] == 0
            assert entry["tokens_per_s"]["median"] > 0
    for entry in throughput["summary"]["d_gateway_judge"].values():
        assert entry["cpu_s_per_1k_tokens"]["relay_total"]["median"] > 0

    paced = _load(tmp_path, "paced")
    for key in ("a_direct", "c_gateway_cached"):
        (entry,) = paced["summary"][key].values()
        assert entry["errors"] == 0
        assert sum(entry["samples"]) > 0
        assert entry["tokens_per_s"]["median"] > 0
    assert entry["cpu_s_per_1k_tokens"]["relay_total"]["median"] > 0
    assert set(entry["added_ttft_ms"]) == {"p50", "p95", "p99"}

    guard = _load(tmp_path, "guard")
    for figure in ("rules_short_us", "rules_8kb_us", "judge_parse_us"):
        assert guard[figure]["median"] > 0
    assert guard["rules_8kb_chars"] >= 8 * 1024 - 1

    # The real-model row times the guard, not a verdict-cache hit: every prompt
    # differs, and on the embedded default the classifier decides each one.
    real = _load(tmp_path, "real_model")
    prompts = [r["prompt"] for r in real["requests"]]
    assert len(set(prompts)) == len(prompts) > 1
    assert [r["tier"] for r in real["requests"]] == ["classifier"] * len(prompts)
    assert real["summary"]["decision_tiers"] == ["classifier"] and real["summary"]["errors"] == []

    # Cancellation on the Tandem paths: every cancel the client sent reached the
    # stand-in as a disconnect (within the run's observation window), none ran on.
    cancel = _load(tmp_path, "cancel")
    for key in TANDEM_PATHS:
        for concurrency, entry in cancel["summary"][key].items():
            where = f"cancel {key} at {concurrency}"
            assert entry["runs_left_out"] == 0, where
            assert entry["cancelled"] == int(concurrency) * cancel["reps"], where
            assert entry["seen"] == entry["cancelled"], where
            assert entry["ran_to_end"] == 0 and entry["not_seen"] == 0, where

    # The worker killed mid-stream: every gateway client gets UNAVAILABLE, none hangs.
    kill = _load(tmp_path, "kill")
    (run,) = kill["runs"]
    assert run["codes"] == {"UNAVAILABLE": kill["concurrency"]}, run["codes"]
    assert run["hung"] == 0 and run["completed_ok"] == 0
    assert len(run["error_ms"]) == kill["concurrency"]
