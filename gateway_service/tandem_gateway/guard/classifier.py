"""The trained classifier tier: threat score, threat category and difficulty.

Linear models over hashed TF-IDF n-grams (``guard.features``), trained with
grouped cross-validation by ``make train-guard`` (``tandem_gateway.training``)
and shipped as one ``.npz`` of weights (no training text). Scoring is numpy
only and takes about a millisecond per message, so this tier runs on every
backend: it decides on the embedded default, and pre-screens before the LLM
judge on Ollama.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from tandem.backends.base import ChatTurn
from tandem_gateway.guard.decision import THREAT_NAMES, DifficultyName, ThreatName
from tandem_gateway.guard.features import RawFeatures, Vocabulary, raw_features

ARTIFACT_PATH = Path(__file__).with_name("models") / "guard-classifier.npz"
ARTIFACT_FORMAT = 1
DIFFICULTIES: tuple[DifficultyName, ...] = ("low", "medium", "high")
# Only the most recent user/tool turns are scored (each clipped, see features.clip).
MAX_SCORED_TURNS = 16
_SCORED_ROLES = ("user", "tool")


class ArtifactError(Exception):
    """The classifier artifact is missing or not in the expected format."""


@dataclass(frozen=True, slots=True)
class LinearModel:
    """Weights over one vocabulary: ``scores = coef @ x + intercept`` per class."""

    vocabulary: Vocabulary
    coef: npt.NDArray[np.float32]  # (classes, features)
    intercept: npt.NDArray[np.float32]  # (classes,)

    def scores(self, raw: RawFeatures) -> npt.NDArray[np.float32]:
        columns, values = self.vocabulary.transform(raw)
        return (self.coef[:, columns] @ values + self.intercept).astype(np.float32)


@dataclass(frozen=True, slots=True)
class ThreatAssessment:
    """The classifier's view of a conversation."""

    score: float  # the highest threat score over the scored turns (a logit)
    category: ThreatName  # the most likely threat category of that turn
    turn_index: int  # index in the conversation of the highest-scoring turn
    difficulty: DifficultyName  # of the last user turn


@dataclass(frozen=True, slots=True)
class Thresholds:
    decide: float  # refuse at or above this when the classifier decides (<= 2% benign refused)
    prescreen: float  # refuse without asking the judge at or above this (no benign seen)


class GuardClassifier:
    """Loads the shipped artifact and scores conversations."""

    def __init__(
        self,
        threat: LinearModel,
        category: LinearModel,
        difficulty: LinearModel,
        thresholds: Thresholds,
        meta: dict[str, Any],
    ) -> None:
        self._threat = threat
        self._category = category
        self._difficulty = difficulty
        self.thresholds = thresholds
        self.meta = meta

    @property
    def version(self) -> str:
        return str(self.meta.get("version", "unknown"))

    @classmethod
    def load(cls, path: Path | None = None) -> GuardClassifier:
        path = path or ARTIFACT_PATH
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"cannot read the classifier artifact {path}: {exc}") from exc
        try:
            meta = json.loads(bytes(arrays["meta"]).decode("utf-8"))
            if meta.get("format") != ARTIFACT_FORMAT:
                raise ArtifactError(f"{path}: artifact format {meta.get('format')!r}, expected {ARTIFACT_FORMAT}")
            threat = _model(arrays, "threat", "threat")
            category = _model(arrays, "threat", "category")
            difficulty = _model(arrays, "difficulty", "difficulty")
            thresholds = Thresholds(
                decide=float(meta["thresholds"]["decide"]),
                prescreen=float(meta["thresholds"]["prescreen"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{path}: malformed classifier artifact: {exc}") from exc
        if category.coef.shape[0] != len(THREAT_NAMES) or difficulty.coef.shape[0] != len(DIFFICULTIES):
            raise ArtifactError(f"{path}: unexpected number of classes")
        return cls(threat, category, difficulty, thresholds, meta)

    def threat_score(self, text: str) -> float:
        """The threat logit of one text (higher is more likely a threat)."""
        return float(self._threat.scores(raw_features(text))[0])

    def difficulty_of(self, text: str) -> DifficultyName:
        scores = self._difficulty.scores(raw_features(text))
        return DIFFICULTIES[int(np.argmax(scores))]

    def assess(self, turns: Sequence[ChatTurn]) -> ThreatAssessment:
        scored = [i for i, t in enumerate(turns) if t.role in _SCORED_ROLES][-MAX_SCORED_TURNS:]
        if not scored:  # only system turns: score the last one
            scored = [len(turns) - 1]
        best_score, best_index, best_raw = -np.inf, scored[-1], None
        for index in scored:
            raw = raw_features(turns[index].content)
            score = float(self._threat.scores(raw)[0])
            if score > best_score:
                best_score, best_index, best_raw = score, index, raw
        assert best_raw is not None
        category = THREAT_NAMES[int(np.argmax(self._category.scores(best_raw)))]
        last_user = next((t for t in reversed(turns) if t.role == "user"), turns[-1])
        return ThreatAssessment(
            score=best_score,
            category=category,
            turn_index=best_index,
            difficulty=self.difficulty_of(last_user.content),
        )


def _model(arrays: dict[str, np.ndarray], vocab: str, name: str) -> LinearModel:
    vocabulary = Vocabulary(
        arrays[f"{vocab}_buckets"].astype(np.uint64), arrays[f"{vocab}_idf"].astype(np.float32)
    )
    coef = arrays[f"{name}_coef"].astype(np.float32)
    intercept = arrays[f"{name}_intercept"].astype(np.float32)
    if coef.ndim != 2 or coef.shape[1] != len(vocabulary.buckets) or intercept.shape != (coef.shape[0],):
        raise ValueError(f"{name}: weights do not match the vocabulary")
    return LinearModel(vocabulary, cast(npt.NDArray[np.float32], coef), intercept)


def save_artifact(
    path: Path,
    *,
    threat: LinearModel,
    category: LinearModel,
    difficulty: LinearModel,
    meta: dict[str, Any],
) -> None:
    """Write the artifact (used by training). Weights as float16 to keep it small."""
    if threat.vocabulary is not category.vocabulary:
        raise ValueError("threat and category models must share one vocabulary")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        meta=np.frombuffer(json.dumps({**meta, "format": ARTIFACT_FORMAT}, sort_keys=True).encode(), dtype=np.uint8),
        threat_buckets=threat.vocabulary.buckets.astype(np.uint32),
        threat_idf=threat.vocabulary.idf.astype(np.float16),
        threat_coef=threat.coef.astype(np.float16),
        threat_intercept=threat.intercept.astype(np.float32),
        category_coef=category.coef.astype(np.float16),
        category_intercept=category.intercept.astype(np.float32),
        difficulty_buckets=difficulty.vocabulary.buckets.astype(np.uint32),
        difficulty_idf=difficulty.vocabulary.idf.astype(np.float16),
        difficulty_coef=difficulty.coef.astype(np.float16),
        difficulty_intercept=difficulty.intercept.astype(np.float32),
    )
