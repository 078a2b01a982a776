"""Grouped cross-validation for the linear models over hashed TF-IDF features
(and, for the threat models, a sentence embedding of each window beside them).

Every fold fits its own vocabulary (document frequencies) on its training part
only, so nothing about the test rows leaks into a fold's model. Thresholds
are chosen inside each training part (nested), so the reported refusal rates
are estimates for unseen families, not fitted to the rows they are measured on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold

from tandem_gateway.guard.classifier import LinearModel, WindowFeatures
from tandem_gateway.guard.features import RawFeatures, Vocabulary, fit_vocabulary

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Windows = Sequence[
    WindowFeatures
]  # one row: the features of each of its windows (features.windows)


def design_matrix(
    vocabulary: Vocabulary,
    docs: Sequence[RawFeatures],
    dense: npt.NDArray[np.float32] | None = None,
) -> sp.csr_matrix:
    """TF-IDF columns of the vocabulary, then the dense columns (if any)."""
    data, indices, indptr = [], [], [0]
    for doc in docs:
        columns, values = vocabulary.transform(doc)
        indices.append(columns)
        data.append(values)
        indptr.append(indptr[-1] + len(columns))
    sparse = sp.csr_matrix(
        (
            np.concatenate(data) if data else np.empty(0),
            np.concatenate(indices) if indices else np.empty(0, int),
            np.array(indptr),
        ),
        shape=(len(docs), len(vocabulary.buckets)),
    )
    if dense is None:
        return sparse
    return sp.hstack([sparse, sp.csr_matrix(dense)], format="csr")


@dataclass(frozen=True, slots=True)
class FitConfig:
    c: float
    min_df: int = 2
    multiclass: bool = False


def fit_linear(
    docs: Sequence[RawFeatures],
    labels: npt.NDArray[np.int64],
    config: FitConfig,
    dense: npt.NDArray[np.float32] | None = None,
    vocabulary: Vocabulary | None = None,
    weights: npt.NDArray[np.float64] | None = None,
) -> LinearModel:
    """Logistic regression on the TF-IDF of ``docs`` (vocabulary fitted on them unless
    given) and, if given, one dense feature row per doc."""
    vocabulary = vocabulary or fit_vocabulary(list(docs), min_df=config.min_df)
    x = design_matrix(vocabulary, docs, dense)
    solver = "lbfgs" if config.multiclass else "liblinear"
    # liblinear shuffles with a random state: fixed, so the same rows give the same model.
    model = LogisticRegression(C=config.c, max_iter=5000, solver=solver, random_state=0)
    model.fit(x, labels, sample_weight=weights)
    coef = np.asarray(model.coef_, dtype=np.float32)
    intercept = np.asarray(model.intercept_, dtype=np.float32)
    width = len(vocabulary.buckets)
    dense_coef = None if dense is None else np.ascontiguousarray(coef[:, width:])
    return LinearModel(vocabulary, np.ascontiguousarray(coef[:, :width]), intercept, dense_coef)


def folds(
    strata: Sequence[str] | npt.NDArray[np.str_], groups: Sequence[int], *, n_splits: int, seed: int
) -> list[tuple[IntArray, IntArray]]:
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    strata_array = np.asarray(strata)
    return [
        (np.asarray(train), np.asarray(test))
        for train, test in splitter.split(
            np.zeros(len(strata_array)), strata_array, np.asarray(groups)
        )
    ]


def threshold_for_rate(benign_scores: FloatArray, rate: float) -> float:
    """The lowest threshold at which at most ``rate`` of these benign scores reach it."""
    ordered = np.sort(benign_scores)[::-1]
    allowed = int(np.floor(rate * len(ordered)))
    if allowed >= len(ordered):
        return float(ordered[-1])
    # Refuse score >= threshold: put it just above the (allowed+1)-th highest benign.
    return float(np.nextafter(ordered[allowed], np.inf))


def class_scores(model: LinearModel, docs: Sequence[RawFeatures]) -> FloatArray:
    return np.stack([model.scores(d) for d in docs]).astype(np.float64)


def _dense(windows: Sequence[WindowFeatures]) -> npt.NDArray[np.float32] | None:
    if not windows or windows[0].dense is None:
        return None
    return np.stack([w.dense for w in windows if w.dense is not None])


def fit_rows(
    rows: Sequence[Windows],
    labels: npt.NDArray[np.int64],
    config: FitConfig,
    vocabulary: Vocabulary | None = None,
    weights: npt.NDArray[np.float64] | None = None,
) -> LinearModel:
    """Fit on every window of every row, each window carrying its row's label and weight
    (as served: a message scores as its highest window)."""
    windows = [w for row in rows for w in row]
    counts = [len(row) for row in rows]
    y = np.repeat(labels, counts)
    w = None if weights is None else np.repeat(weights, counts)
    return fit_linear([w.raw for w in windows], y, config, _dense(windows), vocabulary, w)


def row_scores(model: LinearModel, rows: Sequence[Windows]) -> FloatArray:
    """Each row's threat score: the highest over its windows."""
    return np.array([max(float(model.window_scores(w)[0]) for w in row) for row in rows])


def row_class_scores(model: LinearModel, row: Windows) -> FloatArray:
    """Per-class scores of a row: the highest over its windows, per class."""
    return np.stack([model.window_scores(w) for w in row]).max(axis=0).astype(np.float64)
