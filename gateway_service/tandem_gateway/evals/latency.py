"""The classifier tier's own cost, in process (no gRPC): per message and per 30 KB tool result.

The Classify path's latency (``latency_by_tier``) includes the RPC; this is the model
alone: ``GuardClassifier.assess`` on each row as one user message, and ``assess_message``
on a 30 KB tool result made of the benign rows' texts joined together (cost grows with
length: every window is scored).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from tandem.backends.base import ChatTurn
from tandem_gateway.evals.metrics import percentile
from tandem_gateway.guard.classifier import GuardClassifier
from tandem_gateway.guard.features import prepare, windows
from tandem_gateway.training.data import GuardRow

LONG_RESULT_CHARS = 30_000


def classifier_latency(classifier: GuardClassifier, rows: Sequence[GuardRow]) -> dict[str, object]:
    per_request = []
    for row in rows:
        started = time.perf_counter()
        classifier.assess([ChatTurn("user", row.text)])
        per_request.append(time.perf_counter() - started)
    benign = "\n\n".join(r.text for r in rows if not r.is_threat)
    long_text = (benign * (1 + LONG_RESULT_CHARS // max(1, len(benign))))[:LONG_RESULT_CHARS]
    long_runs = []
    for _ in range(3):
        started = time.perf_counter()
        classifier.assess_message(ChatTurn("tool", long_text))
        long_runs.append(time.perf_counter() - started)
    return {
        "encoder": classifier.meta.get("encoder", "none"),
        "requests": len(per_request),
        "p50_ms": round(1000 * percentile(per_request, 50), 3),
        "p95_ms": round(1000 * percentile(per_request, 95), 3),
        "tool_result_30kb_ms": round(1000 * percentile(long_runs, 50), 1),
        "tool_result_30kb_windows": len(windows(prepare(long_text))),
    }


def render_latency(latency: dict[str, object]) -> str:
    return (
        f"classifier in process (encoder {latency['encoder']}): p50 {latency['p50_ms']} ms, "
        f"p95 {latency['p95_ms']} ms per request ({latency['requests']} rows); a 30 KB tool "
        f"result ({latency['tool_result_30kb_windows']} windows) "
        f"{latency['tool_result_30kb_ms']} ms"
    )
