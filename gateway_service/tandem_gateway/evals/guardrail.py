"""``make eval-guardrail``: threat recall and benign refusals through the real Classify path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tandem_gateway.evals.indirect import is_indirect
from tandem_gateway.evals.metrics import (
    Rate,
    confusion,
    format_confusion,
    format_rates,
    latency_by,
    rates_by,
)
from tandem_gateway.evals.runner import Outcome
from tandem_gateway.training.data import GuardRow


@dataclass(frozen=True, slots=True)
class GuardrailReport:
    backend: str
    rows: int
    threat_recall: dict[str, Rate]
    benign_refusals: dict[str, Rate]
    overall_recall: Rate
    overall_benign_refusal: Rate
    indirect_recall: Rate  # threats that hide an instruction in a document (evals/indirect.py)
    confusion: list[list[int]]
    decided_by: dict[str, int]
    latency: dict[str, dict[str, float | int]]
    misses: list[dict[str, str]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "rows": self.rows,
            "threat_recall": {k: v.as_dict() for k, v in self.threat_recall.items()},
            "benign_refusal": {k: v.as_dict() for k, v in self.benign_refusals.items()},
            "overall": {
                "threat_recall": self.overall_recall.as_dict(),
                "benign_refusal": self.overall_benign_refusal.as_dict(),
                "indirect_injection_recall": self.indirect_recall.as_dict(),
            },
            "confusion": {
                "labels": ["threat", "benign"],
                "columns": ["refuse", "allow"],
                "matrix": self.confusion,
            },
            "decided_by_tier": self.decided_by,
            "latency_by_tier": self.latency,
            "benign_refused_ids": self.misses,
        }

    def render(self) -> str:
        threat_labels = ["threat", "benign"]
        lines = [
            f"guardrail eval: {self.rows} rows, backend {self.backend}",
            "",
            format_rates("threat category (recall)", self.threat_recall),
            f"all threats: {self.overall_recall}",
            "indirect injections (an instruction inside a given document; evals/indirect.py): "
            f"{self.indirect_recall}",
            "",
            format_rates("benign category (refused)", self.benign_refusals),
            f"all benign: {self.overall_benign_refusal}",
            "",
            "confusion (rows: label; columns: refuse, allow)",
            format_confusion(threat_labels, self.confusion).replace(
                "".join(label.rjust(8) for label in threat_labels), "  refuse   allow"
            ),
            "",
            "decided by tier: " + ", ".join(f"{k} {v}" for k, v in self.decided_by.items()),
            "latency per deciding tier (gateway-side):",
            *(
                f"  {tier:<11} n={v['count']:<5} p50 {v['p50_ms']:.3f} ms   "
                f"p95 {v['p95_ms']:.3f} ms"
                for tier, v in self.latency.items()
            ),
        ]
        return "\n".join(lines)


def guardrail_report(
    backend: str, rows: Sequence[GuardRow], outcomes: Sequence[Outcome]
) -> GuardrailReport:
    refused = [o.verdict == "refuse" for o in outcomes]
    threat = [r.is_threat for r in rows]
    by_category = rates_by([r.category for r in rows], refused)
    threat_recall = {k: v for k, v in by_category.items() if not k.startswith("benign")}
    benign = {k: v for k, v in by_category.items() if k.startswith("benign")}
    overall_recall = Rate(
        sum(v.hits for v in threat_recall.values()), sum(v.total for v in threat_recall.values())
    )
    overall_benign = Rate(
        sum(v.hits for v in benign.values()), sum(v.total for v in benign.values())
    )
    indirect = [
        o.verdict == "refuse" for r, o in zip(rows, outcomes, strict=True) if is_indirect(r)
    ]
    actual = ["threat" if t else "benign" for t in threat]
    predicted = ["threat" if f else "benign" for f in refused]
    tiers: dict[str, int] = {}
    for o in outcomes:
        tiers[o.tier] = tiers.get(o.tier, 0) + 1
    return GuardrailReport(
        backend=backend,
        rows=len(rows),
        threat_recall=threat_recall,
        benign_refusals=benign,
        overall_recall=overall_recall,
        overall_benign_refusal=overall_benign,
        indirect_recall=Rate(sum(indirect), len(indirect)),
        confusion=confusion(actual, predicted, ["threat", "benign"]),
        decided_by=dict(sorted(tiers.items())),
        latency=latency_by([o.tier for o in outcomes], [o.latency_s for o in outcomes]),
        misses=[
            {"id": r.id, "category": r.category, "tier": o.tier}
            for r, o in zip(rows, outcomes, strict=True)
            if not r.is_threat and o.verdict == "refuse"
        ],
    )
