"""Start one Tandem node the same way for every role: ``run_node(spec)``.

A role (``tandem_gateway.server``, ``tandem_worker.server``) builds its parts
(backend, service, monitors) as a ``NodeRole``; this module
wires what every node has: security (tokens, TLS, per-client limits, the
error model), the gRPC server with health and reflection, Prometheus metrics,
readiness, and a drain on shutdown.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from prometheus_client.core import GaugeMetricFamily

from tandem.inflight import InFlight
from tandem.metrics import (
    GaugeCollector,
    MetricsServer,
    StreamMetrics,
    StreamMetricsInterceptor,
    start_metrics,
)
from tandem.security.server import ServerSecurity
from tandem.serving import RunningServer, start_server
from tandem.settings import NodeSettings

log = logging.getLogger(__name__)

ReadinessSink = Callable[[bool], Awaitable[None]]


class Monitor(Protocol):
    """Whatever watches a role's backends and reports readiness."""

    def start(self, on_readiness: ReadinessSink) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class NodeRole:
    """The parts one role (gateway, worker) brings to ``run_node``."""

    role: str  # "gateway" or "worker": metric prefix, log wording
    node_name: str
    service_name: str  # the readiness name in grpc.health.v1 (tandem.v1.GatewayService, ...)
    add_servicer: Callable[[Any, grpc.aio.Server], None]  # the generated add_*_to_server
    servicer: object
    monitor: Monitor  # started with the server, closed after the drain
    work: InFlight  # the calls a shutdown lets finish
    gauges: Callable[[], Iterable[GaugeMetricFamily]]  # live gauges, read at scrape time
    observed_methods: Sequence[str] = ()  # the streaming methods metrics watch


@dataclass(frozen=True)
class RunningNode:
    server: RunningServer
    security: ServerSecurity
    metrics: StreamMetrics
    metrics_server: MetricsServer | None

    @property
    def address(self) -> str:
        return self.server.address


@contextlib.asynccontextmanager
async def run_node(node: NodeRole, settings: NodeSettings) -> AsyncIterator[RunningNode]:
    """Serve ``node`` until the block ends, then drain and stop.

    Health answers at once (liveness ``""`` SERVING); ``node.service_name``
    turns SERVING when the role's monitors report ready. If the node cannot
    start (bad security settings, address in use), its parts are closed.
    """
    try:
        security = ServerSecurity.from_settings(
            settings, role=node.role, listen=settings.listen, node=node.node_name
        )
        metrics = StreamMetrics.create(f"tandem_{node.role}")
        metrics.registry.register(GaugeCollector(node.gauges))
        server = await start_server(
            settings.listen,
            lambda grpc_server: node.add_servicer(node.servicer, grpc_server),
            [node.service_name],
            interceptors=[StreamMetricsInterceptor(metrics, node.observed_methods), security.gate],
            credentials=security.credentials,
            options=security.options,
        )
    except BaseException:
        await node.monitor.close()
        raise
    metrics_server = start_metrics(settings.metrics_listen, metrics.registry, node.role)

    async def on_readiness(ready: bool) -> None:
        log.log(logging.INFO if ready else logging.WARNING, "%s ready=%s", node.role, ready)
        await server.set_ready(node.service_name, ready)

    node.monitor.start(on_readiness)
    security.announce()
    try:
        yield RunningNode(server, security, metrics, metrics_server)
    finally:
        await server.stop(node.work)
        await node.monitor.close()
        if metrics_server is not None:
            metrics_server.close()
