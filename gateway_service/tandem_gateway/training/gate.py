"""The encoder gate (``guard.classifier.EncoderGate``), calibrated on out-of-fold scores.

The gate's screen is a threat model over the n-grams alone, fitted on the same rows
and vocabulary as the full model. For every window of the rows neither model saw,
two threat logits: the full model's (with the window's own sentence embedding) and
the screen's. The gate's threshold is the lowest screen score of any window the full
model refuses, less ``GATE_MARGIN``, and never above the refusal threshold less the
margin: on these rows no window the encoder lifts to a refusal is skipped, the margin
covers windows like them that the rows lack, and a skipped window is never refused.

Tried first, and dropped: scoring a window with the training windows' mean embedding
in place of its own. The full model leans on the embedding (it moves a refused
window's logit by up to ~9), and the mean sits between the classes, so benign windows
scored high with it: a gate under every refused window then kept the encoder on
98.9 % of benign windows. The screen, trained without the embedding, ranks windows on
the n-grams alone; on one exploration split (dev and public rows, out of fold) a gate
under every refused window skipped 69 % of benign windows and 1 % of threat windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tandem_gateway.guard.classifier import EncoderGate, LinearModel, WindowFeatures
from tandem_gateway.guard.features import Vocabulary
from tandem_gateway.training.crossval import FitConfig, fit_rows

# Fixed beforehand, like the models' C (a logit of the screen).
GATE_MARGIN = 0.25

FloatArray = npt.NDArray[np.float64]
Windows = Sequence[WindowFeatures]


@dataclass(frozen=True, slots=True)
class WindowPairs:
    """The full model's and the screen's threat logits of a set of windows (flat, same
    order)."""

    full: FloatArray
    screen: FloatArray

    @classmethod
    def concat(cls, parts: Sequence[WindowPairs]) -> WindowPairs:
        return cls(
            np.concatenate([p.full for p in parts]) if parts else np.empty(0),
            np.concatenate([p.screen for p in parts]) if parts else np.empty(0),
        )


def fit_screen(
    rows: Sequence[Windows],
    labels: npt.NDArray[np.int64],
    config: FitConfig,
    vocabulary: Vocabulary,
    weights: npt.NDArray[np.float64] | None = None,
) -> LinearModel:
    """The gate's screen: the threat model's fit on the n-grams alone, over its vocabulary."""
    ngrams = [[WindowFeatures(w.raw) for w in row] for row in rows]
    return fit_rows(ngrams, labels, config, vocabulary=vocabulary, weights=weights)


def mean_embedding(rows: Sequence[Windows]) -> npt.NDArray[np.float32]:
    """The mean sentence embedding over every window of these rows."""
    dense = [w.dense for row in rows for w in row if w.dense is not None]
    if not dense:
        raise ValueError("no window has an embedding")
    return np.mean(np.stack(dense), axis=0).astype(np.float32)


def window_pairs(model: LinearModel, screen: LinearModel, rows: Sequence[Windows]) -> WindowPairs:
    windows = [w for row in rows for w in row]
    full = [float(model.window_scores(w)[0]) for w in windows]
    screened = [float(screen.scores(w.raw)[0]) for w in windows]
    return WindowPairs(np.array(full), np.array(screened))


def gate_below(pairs: WindowPairs, threshold: float, margin: float = GATE_MARGIN) -> float:
    """The gate's threshold for a refusal threshold, from out-of-fold window pairs."""
    refused = pairs.full >= threshold
    lowest = float(pairs.screen[refused].min()) if refused.any() else threshold
    return min(lowest, threshold) - margin


@dataclass(frozen=True, slots=True)
class GatedScores:
    """Rows scored as served: the highest window, each window gated."""

    scores: FloatArray  # per row
    windows: npt.NDArray[np.int64]  # per row: how many windows
    encoded: npt.NDArray[np.int64]  # per row: how many the encoder read


def gated_row_scores(
    model: LinearModel, rows: Sequence[Windows], gate: EncoderGate | None
) -> GatedScores:
    scores, encoded = [], []
    for row in rows:
        best, read = -np.inf, 0
        for window in row:
            score = None if gate is None else gate.skips(window.raw)
            if score is None:  # the encoder reads this window
                read += 1
                score = float(model.window_scores(window)[0])
            best = max(best, score)
        scores.append(best)
        encoded.append(read)
    return GatedScores(
        np.array(scores),
        np.array([len(row) for row in rows], dtype=np.int64),
        np.array(encoded, dtype=np.int64),
    )
