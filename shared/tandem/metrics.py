"""Prometheus metrics for both services, each on its own registry (no global state).

Streams are observed by a server interceptor that watches the responses go
by, so the services carry no metrics code: a ``decision`` event counts the
verdict, the first ``delta`` gives the time to first token, the ``summary``
the token count, and an error its status code. Live state (in flight, queue,
node up/down, link RTT) is read at scrape time by collectors.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tandem.protoutil import enum_name
from tandem.settings import parse_host_port
from tandem.v1 import gateway_pb2

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_REASON_CHARS = 200


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused request as the dashboard lists it: never any prompt text."""

    at: datetime
    categories: tuple[str, ...]
    tier: str
    reason: str  # the guard's rule or one-sentence reason, cut to _REASON_CHARS


class RefusalLog:
    """The most recent refusals, newest last, bounded."""

    def __init__(self, size: int = 50) -> None:
        self._entries: deque[Refusal] = deque(maxlen=size)

    def add(self, decision: gateway_pb2.Decision, tier: str) -> None:
        self._entries.append(
            Refusal(
                at=datetime.now(UTC),
                categories=tuple(
                    enum_name(gateway_pb2.ThreatCategory, t, "THREAT_CATEGORY_")
                    for t in decision.threats
                ),
                tier=tier,
                reason=decision.reason[:_REASON_CHARS],
            )
        )

    def recent(self) -> list[Refusal]:
        return list(self._entries)


@dataclass
class StreamMetrics:
    """What every streaming call of a service records."""

    registry: CollectorRegistry
    calls: Counter
    time_to_first_token: Histogram
    tokens: Counter
    decisions: Counter
    decision_latency: Histogram
    refusals: RefusalLog = field(default_factory=RefusalLog)

    @classmethod
    def create(cls, prefix: str) -> StreamMetrics:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            calls=Counter(
                f"{prefix}_calls",
                "Streaming calls by method and final status code",
                ["method", "code"],
                registry=registry,
            ),
            time_to_first_token=Histogram(
                f"{prefix}_time_to_first_token_seconds",
                "From receiving the call to sending its first token",
                ["method"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            tokens=Counter(
                f"{prefix}_tokens", "Generated tokens relayed", ["method"], registry=registry
            ),
            decisions=Counter(
                f"{prefix}_decisions",
                "Guard decisions",
                ["verdict", "tier", "difficulty"],
                registry=registry,
            ),
            decision_latency=Histogram(
                f"{prefix}_decision_seconds",
                "Time the guard took, by tier",
                ["tier"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
        )

    def observe(self, method: str, response: Any, started: float, first_token: bool) -> bool:
        """Record what one Route/Generate response tells; True when it carried text."""
        kind = response.WhichOneof("event")
        if kind == "delta":
            if first_token:
                self.time_to_first_token.labels(method).observe(time.monotonic() - started)
            return True
        if kind == "summary":
            self.tokens.labels(method).inc(response.summary.usage.completion_tokens)
        elif kind == "decision":
            self.decision(response.decision)
        return False

    def decision(self, decision: gateway_pb2.Decision) -> None:
        tier = enum_name(gateway_pb2.DecisionTier, decision.tier, "DECISION_TIER_")
        verdict = enum_name(gateway_pb2.Verdict, decision.verdict, "VERDICT_")
        if verdict == "refuse":
            self.refusals.add(decision, tier)
        self.decisions.labels(
            verdict,
            tier,
            enum_name(gateway_pb2.Difficulty, decision.difficulty, "DIFFICULTY_"),
        ).inc()
        self.decision_latency.labels(tier).observe(decision.latency.ToNanoseconds() / 1e9)


class StreamMetricsInterceptor(grpc.aio.ServerInterceptor):
    """Observes the response streams of the named methods."""

    def __init__(self, metrics: StreamMetrics, methods: Iterable[str]) -> None:
        self._metrics = metrics
        self._methods = frozenset(methods)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method.rsplit("/", 1)[-1]
        if handler is None or handler.unary_stream is None or method not in self._methods:
            return handler
        inner = handler.unary_stream
        metrics = self._metrics

        async def observed(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.monotonic()
            first_token = True
            code = "OK"
            try:
                async for response in inner(request, context):
                    if metrics.observe(method, response, started, first_token):
                        first_token = False
                    yield response
            except BaseException:
                code = _code_name(context) or "CANCELLED"
                raise
            finally:
                metrics.calls.labels(method, code).inc()

        return grpc.unary_stream_rpc_method_handler(
            observed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _code_name(context: grpc.aio.ServicerContext) -> str:
    code = context.code()
    if code is None:
        return ""
    return code.name if isinstance(code, grpc.StatusCode) else str(code)


class GaugeCollector(Collector):
    """Gauges read from live objects at scrape time."""

    def __init__(self, read: Callable[[], Iterable[GaugeMetricFamily]]) -> None:
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        return list(self._read())


class MetricsServer:
    """The /metrics HTTP endpoint of one service."""

    def __init__(self, listen: str, registry: CollectorRegistry) -> None:
        host, port = parse_host_port(listen)
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        self.port = self._server.server_port
        self.address = f"{host}:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def start_metrics(
    listen: str | None, registry: CollectorRegistry, role: str
) -> MetricsServer | None:
    """Serve /metrics on ``listen``; a port in use is logged, never fatal."""
    if not listen:
        return None
    try:
        server = MetricsServer(listen, registry)
    except OSError as exc:
        log.warning("%s: metrics disabled, cannot listen on %s: %s", role, listen, exc)
        return None
    log.info("%s: Prometheus metrics on http://%s/metrics", role, server.address)
    return server
