"""The trained classifier tier: threat score, threat category and difficulty.

Linear models over hashed TF-IDF n-grams (``guard.features``), trained with
grouped cross-validation by ``make train-guard`` (``tandem_gateway.training``)
and shipped as one ``.npz`` of weights (no training text). Scoring is numpy
only and takes about a millisecond per message, so this tier runs on every
backend: it decides on the embedded default, and pre-screens before the LLM
judge on Ollama.

Each message is scored on its own and whole (``assess_message``): long text in
overlapping windows and, when the artifact names a ``features.PhraseRule``, the
lines and sentences of a request a few windows long as well
(``features.message_windows``); the highest decides. A conversation's score is
the highest over its untrusted messages (``assess``), so a long benign tool result
cannot lift a short request, and an instruction planted anywhere in one is seen.

The sentence encoder is the expensive part (~8 ms of CPU for a short window, all of
it matrix products), so it runs only where it can change the verdict
(``EncoderGate``): each window is first scored by an n-gram-only screen, and only a
window that scores near enough to a refusal is embedded. Most benign traffic never
reaches the encoder.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from tandem.backends.base import ChatTurn
from tandem_gateway.guard.decision import THREAT_NAMES, DifficultyName, ThreatName
from tandem_gateway.guard.encoder import EncoderUnavailable, SentenceEncoder, shared_encoder
from tandem_gateway.guard.features import (
    PhraseRule,
    RawFeatures,
    Vocabulary,
    message_windows,
    raw_features,
)
from tandem_gateway.guard.features import features_of as ngram_features
from tandem_gateway.guard.task_shape import SHAPE_NAMES, task_shape

ARTIFACT_PATH = Path(__file__).with_name("models") / "guard-classifier.npz"
# 5: optional ``phrase_rule`` in meta (a few-window message's phrases scored beside its windows);
# 4: optional difficulty weights over the task's shape (``guard.task_shape``);
# 3: optional encoder gate (screen weights, mean embedding); 2: optional dense (encoder)
# weights; 1: n-grams only.
ARTIFACT_FORMAT = 5
_READABLE_FORMATS = (1, 2, 3, 4, 5)
ENCODER_NAME = "all-MiniLM-L6-v2"
DIFFICULTIES: tuple[DifficultyName, ...] = ("low", "medium", "high")
# Roles whose content is untrusted and scored whole. An assistant turn is the
# model's own output; only the arguments of the tools it called are scored.
_SCORED_ROLES = ("system", "user", "tool")


class ArtifactError(Exception):
    """The classifier artifact is missing or not in the expected format."""


@dataclass(frozen=True, slots=True)
class WindowFeatures:
    """One window of a message: its n-gram features and (if the model uses one) its
    sentence embedding."""

    raw: RawFeatures
    dense: npt.NDArray[np.float32] | None = None


@dataclass(frozen=True, slots=True)
class LinearModel:
    """Weights over one vocabulary (and optionally a dense embedding):
    ``scores = coef @ tfidf + dense_coef @ embedding + intercept`` per class."""

    vocabulary: Vocabulary
    coef: npt.NDArray[np.float32]  # (classes, features)
    intercept: npt.NDArray[np.float32]  # (classes,)
    dense_coef: npt.NDArray[np.float32] | None = None  # (classes, embedding size)

    def scores(self, raw: RawFeatures) -> npt.NDArray[np.float32]:
        columns, values = self.vocabulary.transform(raw)
        return (self.coef[:, columns] @ values + self.intercept).astype(np.float32)

    def window_scores(self, window: WindowFeatures) -> npt.NDArray[np.float32]:
        scores = self.scores(window.raw)
        if self.dense_coef is not None:
            if window.dense is None:
                raise ValueError("this model needs the window's sentence embedding")
            scores = scores + self.dense_coef @ window.dense
        return scores.astype(np.float32)


@dataclass(frozen=True, slots=True)
class EncoderGate:
    """Which windows the sentence encoder reads.

    ``screen`` is a threat model over the n-grams alone (the threat model's vocabulary,
    no embedding), a fraction of a millisecond per window. A window it scores below
    ``below`` is not embedded: that screen score stands as the window's threat score.
    At or above it the window is embedded and scored by the full threat model.
    ``below`` is set in training (``training.gate``) a margin under the lowest screen
    score of any out-of-fold window the full model refused, and under the refusal
    threshold, so on the training rows no window the encoder lifts to a refusal is
    skipped, and a skipped window is never refused. ``mean`` (the training windows'
    mean embedding) stands in for a skipped window's own in the category model.
    """

    screen: LinearModel  # n-grams only, one class: the threat logit
    below: float  # a screen logit, under the decide threshold
    mean: npt.NDArray[np.float32]  # (embedding size,)

    def skips(self, raw: RawFeatures) -> float | None:
        """The window's screen score if it is below the gate (the encoder is not
        needed), else None."""
        score = float(self.screen.scores(raw)[0])
        return score if score < self.below else None


@dataclass(frozen=True, slots=True)
class _Scored:
    features: WindowFeatures
    encoded: bool  # the window's own embedding (else the gate's mean, or none)
    score: float | None = None  # the gate's screen score of a skipped window


@dataclass(frozen=True, slots=True)
class MessageAssessment:
    """The classifier's view of one message, read whole."""

    score: float  # the highest threat score over the message's windows (a logit)
    category: ThreatName  # the most likely threat category of that window
    difficulty: DifficultyName  # of the whole message
    # which window scored highest (features.message_windows: the windows, then the phrases)
    window_index: int
    encoded_windows: int = 0  # how many windows the sentence encoder read


@dataclass(frozen=True, slots=True)
class ThreatAssessment:
    """The classifier's view of a conversation."""

    score: float  # the highest threat score over the scored turns (a logit)
    category: ThreatName  # the most likely threat category of that turn
    turn_index: int  # index in the conversation of the highest-scoring turn
    difficulty: DifficultyName  # of the last user turn
    window_index: int = 0  # the window of that turn that scored highest


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
        encoder: SentenceEncoder | None = None,
        gate: EncoderGate | None = None,
    ) -> None:
        if gate is not None and encoder is None:
            raise ValueError("an encoder gate needs the encoder")
        self._encoder = encoder
        self._gate = gate
        self._threat = threat
        self._category = category
        self._difficulty = difficulty
        self.thresholds = thresholds
        self.meta = meta
        rule = meta.get("phrase_rule")
        self._phrase_rule = None if rule is None else PhraseRule.from_meta(rule)

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
            if meta.get("format") not in _READABLE_FORMATS:
                raise ArtifactError(
                    f"{path}: artifact format {meta.get('format')!r}, expected {ARTIFACT_FORMAT}"
                )
            threat = _model(arrays, "threat", "threat")
            category = _model(arrays, "threat", "category")
            difficulty = _model(arrays, "difficulty", "difficulty")
            thresholds = Thresholds(
                decide=float(meta["thresholds"]["decide"]),
                prescreen=float(meta["thresholds"]["prescreen"]),
            )
            gate = _gate(arrays, meta, threat)
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{path}: malformed classifier artifact: {exc}") from exc
        if category.coef.shape[0] != len(THREAT_NAMES) or difficulty.coef.shape[0] != len(
            DIFFICULTIES
        ):
            raise ArtifactError(f"{path}: unexpected number of classes")
        if difficulty.dense_coef is not None and difficulty.dense_coef.shape[1] != len(SHAPE_NAMES):
            raise ArtifactError(f"{path}: difficulty weights do not match the task shape")
        encoder = None
        if meta.get("encoder"):
            if meta["encoder"] != ENCODER_NAME or threat.dense_coef is None:
                raise ArtifactError(f"{path}: unknown encoder {meta['encoder']!r}")
            try:
                encoder = shared_encoder()
            except EncoderUnavailable as exc:
                raise ArtifactError(f"{path} needs the sentence encoder: {exc}") from exc
        return cls(
            threat, category, difficulty, thresholds, meta, encoder, gate if encoder else None
        )

    @property
    def gate(self) -> EncoderGate | None:
        return self._gate

    def threat_score(self, text: str) -> float:
        """The threat logit of one text, read whole (higher is more likely a threat)."""
        return max(self.window_scores(text))

    def window_scores(self, text: str) -> list[float]:
        """The threat logit of each window of the text (``features.message_windows``)."""
        scored = [self._features(w, encode=True) for w in self._windows(text)]
        return [self._score(s) for s in scored if s is not None]

    def _windows(self, text: str) -> list[str]:
        return message_windows(text, self._phrase_rule)

    def _features(self, window: str, *, encode: bool) -> _Scored | None:
        """A window's features as scored: with its own embedding only if the gate lets it
        through (None if it would need the encoder and ``encode`` is false)."""
        raw = ngram_features(window)
        if self._encoder is None:
            return _Scored(WindowFeatures(raw), encoded=False)
        if self._gate is not None:
            screened = self._gate.skips(raw)
            if screened is not None:
                return _Scored(WindowFeatures(raw, self._gate.mean), encoded=False, score=screened)
        if not encode:
            return None
        return _Scored(WindowFeatures(raw, self._encoder.embed(window)), encoded=True)

    def _score(self, scored: _Scored) -> float:
        if scored.score is not None:
            return scored.score
        return float(self._threat.window_scores(scored.features)[0])

    def difficulty_of(self, text: str) -> DifficultyName:
        shape = task_shape(text) if self._difficulty.dense_coef is not None else None
        scores = self._difficulty.window_scores(WindowFeatures(raw_features(text), shape))
        return DIFFICULTIES[int(np.argmax(scores))]

    def assess_message(self, turn: ChatTurn) -> MessageAssessment:
        """Score one message whole, however long: the highest of its windows decides."""
        assessment = self._assess_message(turn, encode=True)
        assert assessment is not None  # with the encoder allowed, every window is scored
        return assessment

    def assess_message_without_encoder(self, turn: ChatTurn) -> MessageAssessment | None:
        """``assess_message`` if no window of the message needs the sentence encoder
        (the gate passes all of them on their n-grams), else None. Cheap enough for an
        event loop; a message it returns None for is worth a thread."""
        return self._assess_message(turn, encode=False)

    def _assess_message(self, turn: ChatTurn, *, encode: bool) -> MessageAssessment | None:
        text = message_text(turn)
        best_score, best_index, best_window, encoded = -np.inf, 0, None, 0
        for index, window in enumerate(self._windows(text)):
            scored = self._features(window, encode=encode)
            if scored is None:
                return None
            encoded += scored.encoded
            score = self._score(scored)
            if score > best_score:
                best_score, best_index, best_window = score, index, scored.features
        assert best_window is not None  # a text has at least one window
        category = THREAT_NAMES[int(np.argmax(self._category.window_scores(best_window)))]
        return MessageAssessment(
            score=best_score,
            category=category,
            difficulty=self.difficulty_of(text),
            window_index=best_index,
            encoded_windows=encoded,
        )

    def assess(self, turns: Sequence[ChatTurn]) -> ThreatAssessment:
        """The highest-scoring untrusted message decides; difficulty is the last user turn's."""
        if not turns:
            raise ValueError("assess() needs at least one turn")
        best: MessageAssessment | None = None
        best_index = len(turns) - 1
        for index in scored_turns(turns):
            result = self.assess_message(turns[index])
            if best is None or result.score > best.score:
                best, best_index = result, index
        if best is None:  # only assistant turns without tool calls: score the last one
            best = self.assess_message(turns[-1])
        last_user = next((t for t in reversed(turns) if t.role == "user"), turns[-1])
        return ThreatAssessment(
            score=best.score,
            category=best.category,
            turn_index=best_index,
            difficulty=self.difficulty_of(last_user.content),
            window_index=best.window_index,
        )


def scored_turns(turns: Sequence[ChatTurn]) -> Iterator[int]:
    """Indexes of the untrusted turns: system, user, tool, and assistant turns that call tools."""
    for index, turn in enumerate(turns):
        if turn.role in _SCORED_ROLES or turn.tool_calls:
            yield index


def message_text(turn: ChatTurn) -> str:
    """What the classifier reads of a message: its content (not an assistant's own
    words), then each tool call it makes, as ``name({json arguments})``."""
    calls = [
        f"{c.name}({json.dumps(dict(c.arguments), ensure_ascii=False, sort_keys=True)})"
        for c in turn.tool_calls
    ]
    own = [] if turn.role == "assistant" and calls else [turn.content]
    return "\n".join(own + calls)


def _gate(
    arrays: dict[str, np.ndarray], meta: dict[str, Any], threat: LinearModel
) -> EncoderGate | None:
    below = meta["thresholds"].get("encoder_gate")
    if below is None:
        return None  # an older artifact: the encoder reads every window
    mean = arrays["encoder_mean"].astype(np.float32)
    if threat.dense_coef is None or mean.shape != (threat.dense_coef.shape[1],):
        raise ValueError("the encoder gate's mean embedding does not match the dense weights")
    screen = _model(arrays, "threat", "gate")
    if screen.coef.shape[0] != 1 or "gate_dense_coef" in arrays:
        raise ValueError("the encoder gate's screen must be one n-gram-only threat logit")
    return EncoderGate(screen, float(below), mean)


def _model(arrays: dict[str, np.ndarray], vocab: str, name: str) -> LinearModel:
    vocabulary = Vocabulary(
        arrays[f"{vocab}_buckets"].astype(np.uint64), arrays[f"{vocab}_idf"].astype(np.float32)
    )
    coef = arrays[f"{name}_coef"].astype(np.float32)
    intercept = arrays[f"{name}_intercept"].astype(np.float32)
    if (
        coef.ndim != 2
        or coef.shape[1] != len(vocabulary.buckets)
        or intercept.shape != (coef.shape[0],)
    ):
        raise ValueError(f"{name}: weights do not match the vocabulary")
    dense = arrays.get(f"{name}_dense_coef")
    if dense is not None and (dense.ndim != 2 or dense.shape[0] != coef.shape[0]):
        raise ValueError(f"{name}: dense weights do not match the classes")
    return LinearModel(
        vocabulary,
        cast(npt.NDArray[np.float32], coef),
        intercept,
        None if dense is None else dense.astype(np.float32),
    )


def format_for(meta: dict[str, Any]) -> int:
    """The oldest artifact format that holds what ``meta`` names, so that a gateway
    of an earlier release still loads an artifact that uses nothing newer."""
    return ARTIFACT_FORMAT if "phrase_rule" in meta else 4


def save_artifact(
    path: Path,
    *,
    threat: LinearModel,
    category: LinearModel,
    difficulty: LinearModel,
    meta: dict[str, Any],
    gate: EncoderGate | None = None,
) -> None:
    """Write the artifact (used by training). Weights as float16 to keep it small.

    Byte-for-byte reproducible: the zip entries carry a fixed date, unlike
    ``np.savez_compressed``.
    """
    if threat.vocabulary is not category.vocabulary:
        raise ValueError("threat and category models must share one vocabulary")
    arrays = {
        "meta": np.frombuffer(
            json.dumps({**meta, "format": format_for(meta)}, sort_keys=True).encode(),
            dtype=np.uint8,
        ),
        "threat_buckets": threat.vocabulary.buckets.astype(np.uint32),
        "threat_idf": threat.vocabulary.idf.astype(np.float16),
        "threat_coef": threat.coef.astype(np.float16),
        "threat_intercept": threat.intercept.astype(np.float32),
        "category_coef": category.coef.astype(np.float16),
        "category_intercept": category.intercept.astype(np.float32),
        "difficulty_buckets": difficulty.vocabulary.buckets.astype(np.uint32),
        "difficulty_idf": difficulty.vocabulary.idf.astype(np.float16),
        "difficulty_coef": difficulty.coef.astype(np.float16),
        "difficulty_intercept": difficulty.intercept.astype(np.float32),
    }
    for name, model in (("threat", threat), ("category", category), ("difficulty", difficulty)):
        if model.dense_coef is not None:
            arrays[f"{name}_dense_coef"] = model.dense_coef.astype(np.float32)
    if gate is not None:
        if meta.get("thresholds", {}).get("encoder_gate") != gate.below:
            raise ValueError("meta['thresholds']['encoder_gate'] must be the gate's threshold")
        if gate.screen.vocabulary is not threat.vocabulary or gate.screen.dense_coef is not None:
            raise ValueError("the gate's screen must be n-grams only over the threat vocabulary")
        arrays["gate_coef"] = gate.screen.coef.astype(np.float16)
        arrays["gate_intercept"] = gate.screen.intercept.astype(np.float32)
        arrays["encoder_mean"] = gate.mean.astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def weights_digest(
    threat: LinearModel, difficulty: LinearModel, gate: EncoderGate | None = None
) -> str:
    """A short digest of the weights (and the encoder gate), for the artifact's version."""
    digest = hashlib.sha256()
    if gate is not None:
        for gate_part in (
            np.float64(gate.below),
            gate.screen.coef.astype(np.float16),
            gate.screen.intercept,
            gate.mean.astype(np.float32),
        ):
            digest.update(np.ascontiguousarray(gate_part).tobytes())
    for model in (threat, difficulty):
        dense = model.dense_coef if model.dense_coef is not None else np.empty(0, np.float32)
        for array in (
            model.vocabulary.buckets,
            model.coef.astype(np.float16),
            model.intercept,
            dense,
        ):
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:12]
