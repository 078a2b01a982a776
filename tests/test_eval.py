"""A small slice of `make eval-guardrail` / `make eval-difficulty`, through the real
Classify path of an in-process gateway (the full runs are the make targets)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tandem_gateway.evals.__main__ import run
from tandem_gateway.training.data import default_evals_dir
from tests.fake_ollama import FakeOllama

EVALS = default_evals_dir()
pytestmark = pytest.mark.skipif(
    not (EVALS / "guardrail-dev.jsonl").exists(), reason="the shared eval set is not beside this checkout"
)


async def test_guardrail_slice_rules_only(tmp_path: Path) -> None:
    report = await run(["guardrail", "--rules-only", "--limit", "45", "--report", str(tmp_path / "r.json")])
    assert report["backend"] == "rules-only"
    assert report["decided_by_tier"] == {"rules": report["rows"]}
    assert report["overall"]["benign_refusal"]["hits"] == 0  # the rules tier never refuses benign rows
    assert set(report["threat_recall"]) == {"exfiltration", "harmful", "jailbreak", "malicious_code", "prompt_injection"}
    assert "rules" in report["latency_by_tier"] and report["latency_by_tier"]["rules"]["p95_ms"] >= 0
    assert json.loads((tmp_path / "r.json").read_text())["rows"] == report["rows"]


async def test_guardrail_slice_embedded_default_uses_the_classifier(tmp_path: Path) -> None:
    report = await run(["guardrail", "--limit", "45", "--report", str(tmp_path / "e.json")])
    assert report["backend"] == "embedded"
    assert "classifier" in report["decided_by_tier"] and "judge" not in report["decided_by_tier"]
    assert report["confusion"]["matrix"][0][0] > 0  # some threats refused
    assert report["cv_estimate"]["benign_refused"]["rate"] <= 0.02  # the honest, cross-validated number
    assert "note" in report


async def test_guardrail_slice_with_an_ollama_judge(tmp_path: Path, gateway_ollama: FakeOllama) -> None:
    report = await run(["guardrail", "--ollama-url", gateway_ollama.url, "--model", "llama3.1:8b",
                        "--limit", "18", "--report", str(tmp_path / "o.json")])
    assert report["backend"] == "ollama-llama3.1_8b"
    assert "judge" in report["decided_by_tier"]
    assert len(gateway_ollama.generation_requests()) == report["decided_by_tier"]["judge"]


async def test_difficulty_slice(tmp_path: Path) -> None:
    report = await run(["difficulty", "--limit", "12", "--report", str(tmp_path / "d.json")])
    assert report["rows"] == 12
    assert 0.0 <= report["exact_accuracy"] <= report["within_one_accuracy"] <= 1.0
    assert report["no_difficulty"] == 0
