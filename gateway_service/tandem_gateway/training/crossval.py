"""Grouped cross-validation for the linear models over hashed TF-IDF features.

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

from tandem_gateway.guard.classifier import LinearModel
from tandem_gateway.guard.features import RawFeatures, Vocabulary, fit_vocabulary

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def design_matrix(vocabulary: Vocabulary, docs: Sequence[RawFeatures]) -> sp.csr_matrix:
    data, indices, indptr = [], [], [0]
    for doc in docs:
        columns, values = vocabulary.transform(doc)
        indices.append(columns)
        data.append(values)
        indptr.append(indptr[-1] + len(columns))
    return sp.csr_matrix(
        (np.concatenate(data) if data else np.empty(0), np.concatenate(indices) if indices else np.empty(0, int),
         np.array(indptr)),
        shape=(len(docs), len(vocabulary.buckets)),
    )


@dataclass(frozen=True, slots=True)
class FitConfig:
    c: float
    min_df: int = 2
    multiclass: bool = False


def fit_linear(docs: Sequence[RawFeatures], labels: npt.NDArray[np.int64], config: FitConfig) -> LinearModel:
    vocabulary = fit_vocabulary(list(docs), min_df=config.min_df)
    x = design_matrix(vocabulary, docs)
    if config.multiclass:
        model = LogisticRegression(C=config.c, max_iter=5000, solver="lbfgs")
    else:
        model = LogisticRegression(C=config.c, max_iter=5000, solver="liblinear")
    model.fit(x, labels)
    coef = np.asarray(model.coef_, dtype=np.float32)
    intercept = np.asarray(model.intercept_, dtype=np.float32)
    return LinearModel(vocabulary, coef, intercept)


def folds(
    strata: Sequence[str] | npt.NDArray[np.str_], groups: Sequence[int], *, n_splits: int, seed: int
) -> list[tuple[IntArray, IntArray]]:
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    strata_array = np.asarray(strata)
    return [
        (np.asarray(train), np.asarray(test))
        for train, test in splitter.split(np.zeros(len(strata_array)), strata_array, np.asarray(groups))
    ]


def threshold_for_rate(benign_scores: FloatArray, rate: float) -> float:
    """The lowest threshold at which at most ``rate`` of these benign scores reach it."""
    ordered = np.sort(benign_scores)[::-1]
    allowed = int(np.floor(rate * len(ordered)))
    if allowed >= len(ordered):
        return float(ordered[-1])
    # Refuse score >= threshold: put it just above the (allowed+1)-th highest benign.
    return float(np.nextafter(ordered[allowed], np.inf))


def binary_scores(model: LinearModel, docs: Sequence[RawFeatures]) -> FloatArray:
    return np.array([float(model.scores(d)[0]) for d in docs])


def class_scores(model: LinearModel, docs: Sequence[RawFeatures]) -> FloatArray:
    return np.stack([model.scores(d) for d in docs]).astype(np.float64)
