"""Run the gateway: guard + GatewayService + health + reflection on one port."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from tandem.backends.factory import build_backend
from prometheus_client.core import GaugeMetricFamily

from tandem.metrics import GaugeCollector, StreamMetrics, StreamMetricsInterceptor
from tandem.monitor import BackendMonitor
from tandem.security.client import worker_channels
from tandem.security.limits import ClientLimiter
from tandem.security.server import ServerSecurity
from tandem.serving import RunningServer, start_server
from tandem.settings import GatewaySettings
from tandem.v1 import gateway_pb2, gateway_pb2_grpc
from tandem_gateway.cluster import ClusterView
from tandem_gateway.guard.guard import Guard, build_guard
from tandem_gateway.guard.judge import LlmJudge
from tandem_gateway.http.listener import HttpListener, start_http_listener
from tandem_gateway.service import GatewayService, RoutingPolicy
from tandem_gateway.workers import LinkTiming

log = logging.getLogger(__name__)

SERVICE_NAME = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name


@dataclass
class RunningGateway:
    server: RunningServer
    cluster: ClusterView
    guard: Guard
    http: HttpListener | None = None  # /metrics, /health and /dashboard
    service: GatewayService | None = None
    limiter: ClientLimiter | None = None

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def metrics(self) -> HttpListener | None:
        """The listener serving /metrics (the same as ``http``)."""
        return self.http


@contextlib.asynccontextmanager
async def running_gateway(settings: GatewaySettings) -> AsyncIterator[RunningGateway]:
    """Start a gateway; it turns ready when its classifier and a worker are."""
    security = ServerSecurity.from_settings(settings, role="gateway", listen=settings.listen)
    channels = worker_channels(settings)
    backend = build_backend(settings, settings.production_model)
    monitor = BackendMonitor(
        settings.node_name or "gateway",
        backend,
        probe_interval_s=settings.probe_interval_s,
        liveness_interval_s=settings.liveness_interval_s,
        liveness_timeout_s=settings.idle_timeout_s,
    )
    guard = build_guard(settings, LlmJudge(backend))
    cluster = ClusterView(
        monitor,
        settings.workers,
        fail_open=settings.fail_open,
        timing=LinkTiming(settings.link_probe_interval_s, settings.link_timeout_s),
        channels=channels,
    )
    service = GatewayService(
        guard,
        cluster,
        max_prompt_chars=settings.max_prompt_chars,
        max_route_s=settings.max_route_s,
        worker_connect_timeout_s=settings.worker_connect_timeout_s,
        routing=RoutingPolicy.from_settings(settings),
    )
    metrics = StreamMetrics.create("tandem_gateway")
    metrics.registry.register(GaugeCollector(lambda: _live_gauges(cluster, service)))
    try:
        server = await start_server(
            settings.listen,
            lambda s: gateway_pb2_grpc.add_GatewayServiceServicer_to_server(service, s),
            [SERVICE_NAME],
            interceptors=[StreamMetricsInterceptor(metrics, ["Route"]), security.gate],
            credentials=security.credentials,
            options=security.options,
        )
    except BaseException:
        await cluster.close()
        raise
    http = await start_http_listener(
        settings.metrics_listen,
        cluster=cluster,
        metrics=metrics,
        tokens=security.gate.policy.tokens,
        sample_s=settings.dashboard_sample_s,
    )

    async def on_readiness(ready: bool) -> None:
        log.log(logging.INFO if ready else logging.WARNING, "gateway ready=%s", ready)
        await server.set_ready(SERVICE_NAME, ready)

    cluster.start(on_readiness)
    security.announce()
    log.info("gateway: workers reached over %s", channels.description)
    log.info("guard tiers: %s (judge model %s)", guard.mode, backend.model)
    if settings.fail_open:
        log.warning("gateway runs FAIL-OPEN: requests pass unscreened when the judge fails")
    log.info(
        "gateway listening on %s (classifier %s %s; workers %s)",
        server.address, backend.kind, backend.model, ", ".join(settings.workers),
    )
    try:
        yield RunningGateway(server, cluster, guard, http, service, security.gate.limiter)
    finally:
        if http is not None:
            await http.close()
        await server.stop(service.routes)
        await cluster.close()


def _live_gauges(cluster: ClusterView, service: GatewayService) -> list[GaugeMetricFamily]:
    up = GaugeMetricFamily("tandem_gateway_worker_up", "1 when the worker is SERVING", labels=["worker"])
    rtt = GaugeMetricFamily("tandem_gateway_link_rtt_seconds", "Health-check round trip per worker", labels=["worker"])
    failures = GaugeMetricFamily(
        "tandem_gateway_link_failures", "Consecutive failed health checks per worker", labels=["worker"]
    )
    in_flight = GaugeMetricFamily("tandem_gateway_worker_in_flight", "Routes relayed per worker", labels=["worker"])
    for link in cluster.pool.links:
        up.add_metric([link.address], float(link.serving))
        failures.add_metric([link.address], link.consecutive_failures)
        in_flight.add_metric([link.address], link.in_flight)
        if link.rtt_s is not None:
            rtt.add_metric([link.address], link.rtt_s)
    return [
        up,
        rtt,
        failures,
        in_flight,
        GaugeMetricFamily("tandem_gateway_ready", "1 when the gateway is ready", value=float(cluster.ready)),
        GaugeMetricFamily("tandem_gateway_routes_in_flight", "Route calls in flight", value=service.routes.count),
        GaugeMetricFamily(
            "tandem_gateway_classifier_up", "1 when the judge backend is ready", value=float(cluster.monitor.ready)
        ),
    ]
