"""A small slice of `make eval-guardrail` / `make eval-difficulty` / `make train-guard`:
the Classify path of an in-process gateway, and the training report regenerated on a slice
(the full runs are the make targets). Each check recomputes what the report claims."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tandem_gateway.evals.__main__ import run
from tandem_gateway.evals.indirect import is_indirect
from tandem_gateway.evals.runner import stratified_sample
from tandem_gateway.training.crossval import FitConfig
from tandem_gateway.training.data import default_evals_dir, load_guard_rows
from tandem_gateway.training.train import GuardData, grouped_cv, train_threat
from tests.fake_ollama import FakeOllama

EVALS = default_evals_dir()
pytestmark = pytest.mark.skipif(
    not (EVALS / "guardrail-dev.jsonl").exists(),
    reason="the shared eval set is not beside this checkout",
)


async def test_guardrail_slice_rules_only(tmp_path: Path) -> None:
    report = await run(
        ["guardrail", "--rules-only", "--limit", "45", "--report", str(tmp_path / "r.json")]
    )
    assert report["backend"] == "rules-only"
    assert report["decided_by_tier"] == {"rules": report["rows"]}
    assert (
        report["overall"]["benign_refusal"]["hits"] == 0
    )  # the rules tier never refuses benign rows
    assert set(report["threat_recall"]) == {
        "exfiltration",
        "harmful",
        "jailbreak",
        "malicious_code",
        "prompt_injection",
    }
    latency = report["latency_by_tier"]["rules"]
    assert latency["count"] == report["rows"] and latency["p50_ms"] <= latency["p95_ms"]
    assert json.loads((tmp_path / "r.json").read_text())["rows"] == report["rows"]


async def test_guardrail_slice_embedded_default_uses_the_classifier(tmp_path: Path) -> None:
    report = await run(["guardrail", "--limit", "45", "--report", str(tmp_path / "e.json")])
    assert report["backend"] == "embedded"
    assert "classifier" in report["decided_by_tier"] and "judge" not in report["decided_by_tier"]
    assert report["confusion"]["matrix"][0][0] > 0  # some threats refused
    assert "note" in report and "in-sample" in report["note"]
    rows = load_guard_rows(EVALS / "guardrail-dev.jsonl")
    sample = [rows[i] for i in stratified_sample([r.category for r in rows], 45, 0)]
    indirect = report["overall"]["indirect_injection_recall"]
    assert indirect["total"] == sum(is_indirect(r) for r in sample)


def test_the_training_report_is_regenerated_and_says_what_its_folds_did() -> None:
    """train_threat on a slice (n-grams only): every row is tested once per shuffle, the
    shipped threshold refuses at most the target share of the out-of-fold benign scores,
    the in-sample fit is reported apart, and the rules tier's table is labelled in-sample."""
    rows = load_guard_rows(EVALS / "guardrail-dev.jsonl")
    sample = [rows[i] for i in stratified_sample([r.category for r in rows], 120, 1)]
    seeds = (0,)
    report, threat, _, thresholds, gate = train_threat(sample, 0.05, lambda _: None, seeds=seeds)
    assert gate is None and "encoder_gate" not in report  # no encoder, no gate
    cv = report["cv"]
    by_category = cv["classifier_only"]["by_category"]
    for category in {r.category for r in sample}:
        assert by_category[category]["total"] == len(seeds) * sum(
            r.category == category for r in sample
        )
    assert "in-sample" in cv["rules_plus_classifier_dev_rows"]["note"]
    assert report["in_sample_fit_warning"]["note"].startswith("fit on its own training rows")
    assert len(cv["fold_thresholds"]) == 5 * len(seeds)
    # Recompute the shipped decide threshold's promise from the same out-of-fold scores.
    data = GuardData.of(sample)
    again = grouped_cv(data, FitConfig(report["c"]), 0.05, seeds, lambda _: None)
    benign = again.scores[:, data.y == 0].ravel()
    assert np.mean(benign >= thresholds["decide"]) <= 0.05
    assert again.fold_thresholds == cv["fold_thresholds"]  # deterministic: same rows, same folds
    threats = cv["classifier_only"]["threats_caught"]
    assert threats["hits"] == int(again.flagged[:, data.y == 1].sum())


async def test_guardrail_slice_with_an_ollama_judge(
    tmp_path: Path, gateway_ollama: FakeOllama
) -> None:
    report = await run(
        [
            "guardrail",
            "--ollama-url",
            gateway_ollama.url,
            "--model",
            "llama3.1:8b",
            "--limit",
            "18",
            "--report",
            str(tmp_path / "o.json"),
        ]
    )
    assert report["backend"] == "ollama-llama3.1_8b"
    assert "judge" in report["decided_by_tier"]
    assert len(gateway_ollama.generation_requests()) == report["decided_by_tier"]["judge"]


async def test_difficulty_slice(tmp_path: Path) -> None:
    report = await run(["difficulty", "--limit", "12", "--report", str(tmp_path / "d.json")])
    assert report["rows"] == 12
    assert report["no_difficulty"] == 0
    matrix = np.array(report["confusion"]["matrix"])[:3, :3]  # low, medium, high
    assert matrix.sum() == 12
    assert report["exact_accuracy"] == round(np.trace(matrix) / 12, 4)
    assert report["within_one_accuracy"] == round((12 - matrix[0, 2] - matrix[2, 0]) / 12, 4)
