"""Run the gateway: guard + GatewayService + health + reflection on one port."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from tandem.backends.factory import build_backend
from tandem.monitor import BackendMonitor
from tandem.serving import RunningServer, start_server
from tandem.settings import GatewaySettings
from tandem.v1 import gateway_pb2, gateway_pb2_grpc
from tandem_gateway.cluster import ClusterView
from tandem_gateway.guard.guard import Guard
from tandem_gateway.guard.judge import LlmJudge
from tandem_gateway.service import GatewayService

log = logging.getLogger(__name__)

SERVICE_NAME = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name


@dataclass
class RunningGateway:
    server: RunningServer
    cluster: ClusterView
    guard: Guard

    @property
    def address(self) -> str:
        return self.server.address


@contextlib.asynccontextmanager
async def running_gateway(settings: GatewaySettings) -> AsyncIterator[RunningGateway]:
    """Start a gateway; it turns ready when its classifier and a worker are."""
    backend = build_backend(settings, settings.production_model)
    monitor = BackendMonitor(
        settings.node_name or "gateway",
        backend,
        probe_interval_s=settings.probe_interval_s,
        liveness_interval_s=settings.liveness_interval_s,
        liveness_timeout_s=settings.idle_timeout_s,
    )
    guard = Guard(
        LlmJudge(backend),
        judge_timeout_s=settings.judge_timeout_s,
        fail_open=settings.fail_open,
        enforce_judge=settings.enforce_judge,
    )
    cluster = ClusterView(monitor, settings.workers, fail_open=settings.fail_open)
    service = GatewayService(
        guard,
        cluster,
        max_prompt_chars=settings.max_prompt_chars,
        max_route_s=settings.max_route_s,
        worker_connect_timeout_s=settings.worker_connect_timeout_s,
    )
    try:
        server = await start_server(
            settings.listen,
            lambda s: gateway_pb2_grpc.add_GatewayServiceServicer_to_server(service, s),
            [SERVICE_NAME],
        )
    except BaseException:
        await cluster.close()
        raise

    async def on_readiness(ready: bool) -> None:
        log.log(logging.INFO if ready else logging.WARNING, "gateway ready=%s", ready)
        await server.set_ready(SERVICE_NAME, ready)

    cluster.start(on_readiness)
    if not settings.enforce_judge:
        log.warning(
            "judge verdicts are ADVISORY (model %s): only the rules tier refuses requests",
            backend.model,
        )
    if settings.fail_open:
        log.warning("gateway runs FAIL-OPEN: requests pass unscreened when the judge fails")
    log.info(
        "gateway listening on %s (classifier %s %s; workers %s)",
        server.address, backend.kind, backend.model, ", ".join(settings.workers),
    )
    try:
        yield RunningGateway(server, cluster, guard)
    finally:
        await server.stop(service.routes)
        await cluster.close()
