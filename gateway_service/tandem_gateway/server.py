"""The gateway node: guard + cluster view + GatewayService, started by ``run_node``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily

from tandem.backends.factory import build_backend
from tandem.monitor import BackendMonitor
from tandem.node import NodeRole, run_node
from tandem.security.client import worker_channels
from tandem.security.limits import ClientLimiter
from tandem.services import GATEWAY_SERVICE
from tandem.serving import RunningServer
from tandem.settings import GatewaySettings
from tandem.v1.gateway_pb2_grpc import add_GatewayServiceServicer_to_server
from tandem_gateway.cluster import ClusterView
from tandem_gateway.guard.guard import Guard, build_guard
from tandem_gateway.guard.judge import LlmJudge
from tandem_gateway.http.listener import HttpListener, start_http_listener
from tandem_gateway.link import LinkTiming
from tandem_gateway.pool import WorkerPool
from tandem_gateway.routing import RoutingPolicy
from tandem_gateway.service import GatewayService

log = logging.getLogger(__name__)


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
    """Start a gateway; it turns ready when a worker (and its judge, if used) is."""
    name = settings.node_name or "gateway"
    channels = worker_channels(settings)
    judge_backend = None
    if settings.judge_in_use:
        backend = build_backend(settings, settings.production_model)
        judge_backend = BackendMonitor(
            name,
            backend,
            probe_interval_s=settings.probe_interval_s,
            liveness_interval_s=settings.liveness_interval_s,
            liveness_timeout_s=settings.idle_timeout_s,
        )
    guard = build_guard(settings, LlmJudge(judge_backend.backend) if judge_backend else None)

    def make_pool(on_change: Callable[[], Awaitable[None]]) -> WorkerPool:
        return WorkerPool(
            settings.workers,
            on_change,
            timing=LinkTiming(settings.link_probe_interval_s, settings.link_timeout_s),
            channels=channels,
            connect_timeout_s=settings.worker_connect_timeout_s,
        )

    cluster = ClusterView(name, judge_backend, make_pool, fail_open=settings.fail_open)
    service = GatewayService(
        guard,
        cluster,
        max_prompt_chars=settings.max_prompt_chars,
        max_tool_nesting=settings.max_tool_nesting,
        routing=RoutingPolicy.from_settings(settings),
    )
    node = NodeRole(
        role="gateway",
        node_name=name,
        service_name=GATEWAY_SERVICE,
        add_servicer=add_GatewayServiceServicer_to_server,
        servicer=service,
        monitor=cluster,
        work=service.routes,
        gauges=lambda: _live_gauges(cluster, service),
        observed_methods=("Route",),
    )
    # The gateway serves /metrics on its own HTTP listener, beside /health and /dashboard,
    # so run_node starts no plain /metrics server for it.
    node_settings = settings.model_copy(update={"metrics_listen": None})
    async with run_node(node, node_settings) as running, contextlib.AsyncExitStack() as stack:
        http = await start_http_listener(
            settings.metrics_listen,
            cluster=cluster,
            metrics=running.metrics,
            tokens=running.security.gate.policy.tokens,
            sample_s=settings.dashboard_sample_s,
        )
        if http is not None:
            stack.push_async_callback(http.close)
        log.info("gateway: workers reached over %s", channels.description)
        judge = (
            f"judge {judge_backend.backend.kind} {judge_backend.backend.model}"
            if judge_backend
            else "no judge"
        )
        log.info("guard tiers: %s (%s)", guard.mode, judge)
        if settings.fail_open:
            log.warning("gateway runs FAIL-OPEN: requests pass unscreened when the judge fails")
        log.info(
            "gateway listening on %s (%s; workers %s)",
            running.address,
            judge,
            ", ".join(settings.workers),
        )
        yield RunningGateway(
            running.server,
            cluster,
            guard,
            http,
            service,
            running.security.gate.limiter,
        )


def _live_gauges(cluster: ClusterView, service: GatewayService) -> list[GaugeMetricFamily]:
    def per_worker(name: str, help_text: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, help_text, labels=["worker"])

    up = per_worker("tandem_gateway_worker_up", "1 when the worker is SERVING")
    rtt = per_worker("tandem_gateway_link_rtt_seconds", "Health-check round trip per worker")
    failures = per_worker("tandem_gateway_link_failures", "Consecutive failed health checks")
    in_flight = per_worker("tandem_gateway_worker_in_flight", "Routes relayed per worker")
    for link in cluster.pool.links:
        up.add_metric([link.address], float(link.serving))
        failures.add_metric([link.address], link.consecutive_failures)
        in_flight.add_metric([link.address], cluster.pool.routes[link.address])
        if link.rtt_s is not None:
            rtt.add_metric([link.address], link.rtt_s)
    gauges = [
        up,
        rtt,
        failures,
        in_flight,
        GaugeMetricFamily(
            "tandem_gateway_ready", "1 when the gateway is ready", value=float(cluster.ready)
        ),
        GaugeMetricFamily(
            "tandem_gateway_routes_in_flight", "Route calls in flight", value=service.routes.count
        ),
    ]
    if cluster.judge_backend is not None:
        gauges.append(
            GaugeMetricFamily(
                "tandem_gateway_judge_backend_up",
                "1 when the judge's backend is ready",
                value=float(cluster.judge_ready),
            )
        )
    return gauges
