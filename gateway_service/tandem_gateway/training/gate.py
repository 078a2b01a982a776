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
from tandem_gateway.training.crossval import FitConfig, fit_rows, row_scores

# Fixed beforehand, like the models' C (a logit of the screen).
GATE_MARGIN = 0.25

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Windows = Sequence[WindowFeatures]


@dataclass(frozen=True, slots=True)
class GatedScores:
    """Rows scored as served: the highest window, each window gated."""

    scores: FloatArray  # per row
    windows: IntArray  # per row: how many windows
    encoded: IntArray  # per row: how many the encoder read


@dataclass(frozen=True, slots=True)
class WindowPairs:
    """The full model's and the screen's threat logits of every window of a set of rows
    (flat, in row order), and how many windows each row has. Each window is scored
    once; the rows' scores with and without the gate both come from these."""

    full: FloatArray
    screen: FloatArray
    counts: IntArray  # per row: how many windows (at least one)

    @classmethod
    def concat(cls, parts: Sequence[WindowPairs]) -> WindowPairs:
        return cls(
            np.concatenate([p.full for p in parts]) if parts else np.empty(0),
            np.concatenate([p.screen for p in parts]) if parts else np.empty(0),
            np.concatenate([p.counts for p in parts]) if parts else np.empty(0, np.int64),
        )

    def row_scores(self) -> FloatArray:
        """Each row's score with every window embedded: its highest full score."""
        return np.maximum.reduceat(self.full, self._starts())

    def gated(self, below: float) -> GatedScores:
        """Each row's score as served behind a gate at ``below``: a window the screen
        scores under it keeps its screen score (``EncoderGate.skips``), any other its
        full score."""
        skipped = self.screen < below
        served = np.where(skipped, self.screen, self.full)
        starts = self._starts()
        return GatedScores(
            np.maximum.reduceat(served, starts),
            self.counts,
            np.add.reduceat((~skipped).astype(np.int64), starts),
        )

    def _starts(self) -> IntArray:
        return np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)


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
    counts = np.array([len(row) for row in rows], dtype=np.int64)
    return WindowPairs(np.array(full), np.array(screened), counts)


def gate_below(pairs: WindowPairs, threshold: float, margin: float = GATE_MARGIN) -> float:
    """The gate's threshold for a refusal threshold, from out-of-fold window pairs."""
    refused = pairs.full >= threshold
    lowest = float(pairs.screen[refused].min()) if refused.any() else threshold
    return min(lowest, threshold) - margin


def served_row_scores(
    model: LinearModel, rows: Sequence[Windows], gate: EncoderGate | None
) -> FloatArray:
    """Each row's threat score as the classifier serves it, behind ``gate`` if any."""
    if gate is None:
        return row_scores(model, rows)
    return window_pairs(model, gate.screen, rows).gated(gate.below).scores
