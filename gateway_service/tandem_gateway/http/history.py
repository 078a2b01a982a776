"""The dashboard's charts: the gateway's own counters and link checks, sampled into
bounded rings (15 minutes), never read back from Prometheus.

Each sample keeps the cumulative totals; a chart point is the difference of two
neighbouring samples, so a point is what happened during that interval.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Histogram

from tandem.metrics import StreamMetrics
from tandem.v1 import gateway_pb2

WINDOW_S = 15 * 60


def ring_size(interval_s: float, window_s: float = WINDOW_S) -> int:
    """Samples that cover ``window_s`` (one more than the points they make)."""
    return math.ceil(window_s / interval_s) + 1


@dataclass(frozen=True, slots=True)
class HistogramTotals:
    """A histogram's cumulative count, sum and buckets (upper bound, cumulative count)."""

    count: float = 0.0
    total: float = 0.0
    buckets: tuple[tuple[float, float], ...] = ()

    @classmethod
    def read(cls, histogram: Histogram) -> HistogramTotals:
        """Summed over every label set of ``histogram``."""
        count = total = 0.0
        buckets: dict[float, float] = {}
        for family in histogram.collect():
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    bound = float(sample.labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + sample.value
                elif sample.name.endswith("_count"):
                    count += sample.value
                elif sample.name.endswith("_sum"):
                    total += sample.value
        return cls(count, total, tuple(sorted(buckets.items())))

    def since(self, earlier: HistogramTotals) -> HistogramTotals:
        before = dict(earlier.buckets)
        return HistogramTotals(
            self.count - earlier.count,
            self.total - earlier.total,
            tuple((bound, n - before.get(bound, 0.0)) for bound, n in self.buckets),
        )

    def mean(self) -> float | None:
        return self.total / self.count if self.count > 0 else None

    def quantile(self, q: float) -> float | None:
        """The upper bound of the bucket holding the ``q`` quantile (the largest finite
        bound when it falls in the +Inf bucket); None without observations."""
        if self.count <= 0:
            return None
        finite = [bound for bound, _ in self.buckets if math.isfinite(bound)]
        for bound, cumulative in self.buckets:
            if cumulative >= q * self.count:
                return bound if math.isfinite(bound) else (finite[-1] if finite else None)
        return finite[-1] if finite else None


def _counter_totals(counter: Counter, keys: Iterable[str]) -> dict[str, float]:
    """Cumulative ``counter`` totals by the labels ``keys`` (other labels summed), as 'a/b'."""
    names = tuple(keys)
    totals: dict[str, float] = {}
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                key = "/".join(sample.labels[name] for name in names)
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


@dataclass(frozen=True, slots=True)
class CounterSample:
    at: float  # seconds since the epoch
    decisions: dict[str, float]  # "verdict/tier" -> cumulative count
    guard: HistogramTotals
    first_token: HistogramTotals
    tokens: float


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


class TrafficHistory:
    """Requests/min by verdict and deciding tier, guard latency, tokens/s relayed and time
    to first token, over the last 15 minutes."""

    def __init__(self, metrics: StreamMetrics, interval_s: float) -> None:
        self._metrics = metrics
        self._samples: deque[CounterSample] = deque(maxlen=ring_size(interval_s))

    def sample(self, now: float) -> None:
        metrics = self._metrics
        self._samples.append(
            CounterSample(
                at=now,
                decisions=_counter_totals(metrics.decisions, ("verdict", "tier")),
                guard=HistogramTotals.read(metrics.decision_latency),
                first_token=HistogramTotals.read(metrics.time_to_first_token),
                tokens=sum(_counter_totals(metrics.tokens, ()).values()),
            )
        )

    def to_json(self) -> dict[str, Any]:
        samples = list(self._samples)
        pairs = list(zip(samples, samples[1:], strict=False))
        keys = sorted({key for sample in samples for key in sample.decisions})
        requests: dict[str, list[float]] = {key: [] for key in keys}
        guard_mean: list[float | None] = []
        guard_p95: list[float | None] = []
        ttft_mean: list[float | None] = []
        ttft_p95: list[float | None] = []
        tokens: list[float] = []
        for earlier, later in pairs:
            minutes = max(later.at - earlier.at, 1e-9) / 60
            for key in keys:
                done = later.decisions.get(key, 0.0) - earlier.decisions.get(key, 0.0)
                requests[key].append(round(done / minutes, 2))
            guard = later.guard.since(earlier.guard)
            guard_mean.append(_ms(guard.mean()))
            guard_p95.append(_ms(guard.quantile(0.95)))
            first = later.first_token.since(earlier.first_token)
            ttft_mean.append(_ms(first.mean()))
            ttft_p95.append(_ms(first.quantile(0.95)))
            tokens.append(round((later.tokens - earlier.tokens) / (minutes * 60), 2))
        return {
            "t": [round(later.at * 1000) for _, later in pairs],
            "requests_per_min": requests,
            "guard_ms": {"mean": guard_mean, "p95": guard_p95},
            "tokens_per_s": tokens,
            "ttft_ms": {"mean": ttft_mean, "p95": ttft_p95},
        }


class LinkHistory:
    """Each worker link's health-check round trip (ms; None while it failed)."""

    def __init__(self, interval_s: float) -> None:
        self._size = ring_size(interval_s)
        self._rings: dict[str, deque[tuple[int, float | None]]] = {}

    def sample(self, now: float, status: gateway_pb2.ClusterStatus) -> None:
        for worker in status.workers:
            ring = self._rings.setdefault(worker.address, deque(maxlen=self._size))
            rtt = None
            if worker.HasField("link_rtt") and worker.state != gateway_pb2.WORKER_STATE_UNREACHABLE:
                rtt = round(worker.link_rtt.ToNanoseconds() / 1e6, 3)
            ring.append((round(now * 1000), rtt))

    def to_json(self) -> dict[str, dict[str, list[Any]]]:
        return {
            address: {"t": [t for t, _ in ring], "rtt_ms": [ms for _, ms in ring]}
            for address, ring in self._rings.items()
        }
