"""What the dashboard shows, from what the gateway already keeps: the cluster snapshot,
its change signal, the stream counters and the refusal log."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from tandem.changes import ChangeSignal
from tandem.metrics import StreamMetrics
from tandem.v1 import gateway_pb2
from tandem_gateway.http.cluster_json import READY_WORDS, node_rows
from tandem_gateway.http.history import WINDOW_S, LinkHistory, TrafficHistory


class ClusterSource(Protocol):
    """The gateway's live cluster picture (tandem_gateway.cluster.ClusterView)."""

    changes: ChangeSignal

    def snapshot(self) -> gateway_pb2.ClusterStatus: ...


class DashboardFeed:
    """The cluster picture, 15 minutes of charts and the recent refusals, as JSON."""

    def __init__(self, cluster: ClusterSource, metrics: StreamMetrics, sample_s: float) -> None:
        self.cluster = cluster
        self.sample_s = sample_s
        self._metrics = metrics
        self._traffic = TrafficHistory(metrics, sample_s)
        self._links = LinkHistory(sample_s)

    def sample(self, now: float) -> None:
        self._traffic.sample(now)
        self._links.sample(now, self.cluster.snapshot())

    async def run_sampler(self) -> None:
        """Sample every ``sample_s`` until cancelled."""
        while True:
            started = time.monotonic()
            self.sample(time.time())
            await asyncio.sleep(max(0.0, self.sample_s - (time.monotonic() - started)))

    def state(self) -> dict[str, Any]:
        status = self.cluster.snapshot()
        return {
            "observed_at": status.observed_at.ToJsonString(),
            "ready": status.ready,
            "readiness": READY_WORDS[status.ready],
            "warnings": list(status.warnings),
            "nodes": node_rows(status),
            "links": self._links.to_json(),
            "traffic": self._traffic.to_json(),
            "refusals": [
                {
                    "at": refusal.at.isoformat(),
                    "categories": list(refusal.categories),
                    "tier": refusal.tier,
                    "reason": refusal.reason,
                }
                for refusal in reversed(self._metrics.refusals.recent())
            ],
            "sample_s": self.sample_s,
            "window_s": WINDOW_S,
        }
