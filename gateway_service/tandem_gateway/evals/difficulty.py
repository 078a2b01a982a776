"""``make eval-difficulty``: difficulty through the real Classify path (exact and within one)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tandem_gateway.evals.metrics import confusion, format_confusion, latency_by
from tandem_gateway.evals.runner import Outcome
from tandem_gateway.training.data import DifficultyRow

LEVELS = ("low", "medium", "high")
_ORDER = {"low": 0, "medium": 1, "high": 2}


@dataclass(frozen=True, slots=True)
class DifficultyReport:
    backend: str
    rows: int
    exact: float
    within_one: float
    unspecified: int
    refused: int
    confusion: list[list[int]]
    latency: dict[str, dict[str, float | int]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "rows": self.rows,
            "exact_accuracy": round(self.exact, 4),
            "within_one_accuracy": round(self.within_one, 4),
            "no_difficulty": self.unspecified,
            "refused": self.refused,
            "confusion": {"labels": [*LEVELS, "unspecified"], "matrix": self.confusion},
            "latency_by_tier": self.latency,
        }

    def render(self) -> str:
        return "\n".join(
            [
                f"difficulty eval: {self.rows} rows, backend {self.backend}",
                f"exact {100 * self.exact:.1f}%   within one level {100 * self.within_one:.1f}%   "
                f"(no difficulty given: {self.unspecified}; refused: {self.refused})",
                format_confusion([*LEVELS, "unspecified"], self.confusion),
                "latency per deciding tier: "
                + ", ".join(
                    f"{t} p50 {v['p50_ms']:.2f} ms / p95 {v['p95_ms']:.2f} ms"
                    for t, v in self.latency.items()
                ),
            ]
        )


def difficulty_report(
    backend: str, rows: Sequence[DifficultyRow], outcomes: Sequence[Outcome]
) -> DifficultyReport:
    actual = [r.difficulty for r in rows]
    guessed = [o.difficulty if o.difficulty in _ORDER else "unspecified" for o in outcomes]
    exact = sum(a == g for a, g in zip(actual, guessed, strict=True))
    within = sum(
        g in _ORDER and abs(_ORDER[a] - _ORDER[g]) <= 1
        for a, g in zip(actual, guessed, strict=True)
    )
    n = max(1, len(rows))
    return DifficultyReport(
        backend=backend,
        rows=len(rows),
        exact=exact / n,
        within_one=within / n,
        unspecified=sum(g == "unspecified" for g in guessed),
        refused=sum(o.verdict == "refuse" for o in outcomes),
        confusion=confusion(actual, guessed, [*LEVELS, "unspecified"]),
        latency=latency_by([o.tier for o in outcomes], [o.latency_s for o in outcomes]),
    )
