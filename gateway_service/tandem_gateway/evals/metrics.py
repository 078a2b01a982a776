"""Small, typed metric helpers shared by the evals and the training report."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rate:
    hits: int
    total: int

    @property
    def value(self) -> float:
        return self.hits / self.total if self.total else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {"hits": self.hits, "total": self.total, "rate": round(self.value, 4)}

    def __str__(self) -> str:
        return f"{self.hits}/{self.total} ({100 * self.value:.1f}%)"


def rates_by(keys: Sequence[str], flags: Sequence[bool]) -> dict[str, Rate]:
    """For each key, how many rows were flagged."""
    hits: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for key, flag in zip(keys, flags, strict=True):
        totals[key] += 1
        hits[key] += int(flag)
    return {key: Rate(hits[key], totals[key]) for key in sorted(totals)}


def confusion(
    actual: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> list[list[int]]:
    """Rows: actual label; columns: predicted label (in ``labels`` order)."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for a, p in zip(actual, predicted, strict=True):
        matrix[index[a]][index[p]] += 1
    return matrix


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_by(keys: Iterable[str], seconds: Iterable[float]) -> dict[str, dict[str, float | int]]:
    """p50/p95 (milliseconds) and count, per key."""
    grouped: dict[str, list[float]] = defaultdict(list)
    for key, value in zip(keys, seconds, strict=True):
        grouped[key].append(value)
    return {
        key: {
            "count": len(values),
            "p50_ms": round(1000 * percentile(values, 50), 3),
            "p95_ms": round(1000 * percentile(values, 95), 3),
        }
        for key, values in sorted(grouped.items())
    }


def format_rates(title: str, rates: dict[str, Rate]) -> str:
    width = max([len(k) for k in rates] + [len(title)])
    lines = [f"{title:<{width}}  {'flagged':>18}"]
    lines += [f"{key:<{width}}  {str(rate):>18}" for key, rate in rates.items()]
    return "\n".join(lines)


def format_confusion(labels: Sequence[str], matrix: list[list[int]]) -> str:
    width = max(len(label) for label in labels) + 2
    head = "actual \\ predicted".ljust(width + 8) + "".join(label.rjust(width) for label in labels)
    rows = [
        label.ljust(width + 8) + "".join(str(v).rjust(width) for v in row)
        for label, row in zip(labels, matrix, strict=True)
    ]
    return "\n".join([head, *rows])
