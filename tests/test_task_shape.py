"""The task-shape features the difficulty model reads beside its n-grams, and the
difficulty model that folds their scaling into its weights."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from tandem_gateway.guard.classifier import (
    GuardClassifier,
    LinearModel,
    WindowFeatures,
    save_artifact,
)
from tandem_gateway.guard.features import raw_features
from tandem_gateway.guard.task_shape import SHAPE_NAMES, task_shape
from tandem_gateway.training.crossval import FitConfig, fit_linear
from tandem_gateway.training.train import DIFFICULTY_C, difficulty_scores, fit_difficulty

JUDGE_TASK = """Given an array nums, return the number of good subsequences.
Since the answer may be very large, return it modulo 109 + 7.

Example 1:
Input: nums = [1,2]
Output: 3

Example 2:
Input: nums = [1]
Output: 1

Constraints:
1 <= nums.length <= 105
1 <= nums[i] <= 10^9
"""


def _shape(text: str) -> dict[str, float]:
    return dict(zip(SHAPE_NAMES, task_shape(text).tolist(), strict=True))


def test_a_judge_task_reads_its_examples_bounds_and_modulo() -> None:
    shape = _shape(JUDGE_TASK)
    assert shape["examples"] == 2
    assert shape["largest bound exponent"] == 9  # "10^9" written out
    assert shape["bounds of 10^5 or more"] == 2  # "105" is 10^5 with its superscript lost
    assert shape["answer modulo a large prime"] == 1
    assert shape["constraint lines"] == 3
    assert shape["log statement chars"] < shape["log text chars"]


def test_plain_numbers_are_not_read_as_lost_superscripts() -> None:
    shape = _shape("Constraints:\n1 <= n <= 100\n0 <= k < 1000\n")
    assert shape["largest bound exponent"] == pytest.approx(3.0)
    assert shape["bounds of 10^5 or more"] == 0


def test_a_chat_request_has_no_task_structure() -> None:
    shape = _shape("Refactor auth/passwords.py for readability.")
    for name in ("examples", "constraint lines", "largest bound exponent", "queries"):
        assert shape[name] == 0


def _rows() -> tuple[list[str], np.ndarray]:
    easy = "Reverse a string s.\n\nExample 1:\nInput: s = ab\n\nConstraints:\n1 <= n <= 100\n"
    hard = JUDGE_TASK
    medium = JUDGE_TASK.replace("modulo 109 + 7", "as an integer").replace("10^9", "1000")
    texts = [easy, medium, hard] * 4
    return texts, np.array([0, 1, 2] * 4, dtype=np.int64)


def test_the_folded_model_scores_raw_shapes_as_the_standardised_fit_did() -> None:
    texts, y = _rows()
    docs = [raw_features(t) for t in texts]
    shapes = np.stack([task_shape(t) for t in texts])
    folded = fit_difficulty(docs, shapes, y)
    mean, spread = shapes.mean(axis=0), shapes.std(axis=0) + 1e-6
    plain = fit_linear(docs, y, FitConfig(DIFFICULTY_C, multiclass=True), (shapes - mean) / spread)
    expected = np.stack(
        [
            plain.window_scores(WindowFeatures(d, (s - mean) / spread))
            for d, s in zip(docs, shapes, strict=True)
        ]
    )
    assert difficulty_scores(folded, docs, shapes) == pytest.approx(expected, abs=1e-3)


def test_an_artifact_rates_difficulty_with_the_task_shape(tmp_path: Path) -> None:
    texts, y = _rows()
    docs = [raw_features(t) for t in texts]
    difficulty = fit_difficulty(docs, np.stack([task_shape(t) for t in texts]), y)
    threat = fit_linear(docs, np.array([0, 1] * 6), FitConfig(1.0))
    category = LinearModel(
        threat.vocabulary,
        np.zeros((5, len(threat.vocabulary.buckets)), np.float32),
        np.zeros(5, np.float32),
    )
    meta = {"version": "t", "thresholds": {"decide": 0.0, "prescreen": 1.0}}
    path = tmp_path / "a.npz"
    save_artifact(path, threat=threat, category=category, difficulty=difficulty, meta=meta)
    assert "difficulty_dense_coef.npy" in zipfile.ZipFile(path).namelist()
    loaded = GuardClassifier.load(path)
    assert [loaded.difficulty_of(t) for t in texts[:3]] == ["low", "medium", "high"]
