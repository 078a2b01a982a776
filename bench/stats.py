"""Percentiles per repetition, then the median over repetitions with its spread."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PERCENTILES: tuple[int, ...] = (50, 95, 99)


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Linear interpolation between closest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Figure:
    """A figure over repetitions: the median, and the lowest and highest repetition."""

    median: float | None
    low: float | None
    high: float | None
    reps: int

    def as_json(self) -> dict[str, Any]:
        return {"median": self.median, "min": self.low, "max": self.high, "reps": self.reps}

    def minus(self, base: Figure) -> Figure:
        """This figure less a baseline's median (the added part), spread kept."""
        if self.median is None or base.median is None:
            return Figure(None, None, None, self.reps)
        low = None if self.low is None else self.low - base.median
        high = None if self.high is None else self.high - base.median
        return Figure(self.median - base.median, low, high, self.reps)


def over_reps(values: Sequence[float | None]) -> Figure:
    present = [v for v in values if v is not None]
    if not present:
        return Figure(None, None, None, len(values))
    return Figure(statistics.median(present), min(present), max(present), len(values))


def percentiles_over_reps(samples_per_rep: Sequence[Sequence[float]]) -> dict[int, Figure]:
    """For each percentile: its value in each repetition, then median and spread."""
    return {
        pct: over_reps([percentile(samples, pct) for samples in samples_per_rep])
        for pct in PERCENTILES
    }


def figures_json(figures: dict[int, Figure]) -> dict[str, Any]:
    return {f"p{pct}": figure.as_json() for pct, figure in figures.items()}
