"""Run the worker: backend + WorkerService + health + reflection on one port."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from tandem.backends.factory import build_backend
from prometheus_client.core import GaugeMetricFamily

from tandem.metrics import GaugeCollector, MetricsServer, StreamMetrics, StreamMetricsInterceptor, start_metrics
from tandem.monitor import BackendMonitor
from tandem.security.server import ServerSecurity
from tandem.serving import RunningServer, start_server
from tandem.settings import WorkerSettings
from tandem.v1 import worker_pb2, worker_pb2_grpc
from tandem_worker.admission import Admission
from tandem_worker.service import WorkerService

log = logging.getLogger(__name__)

SERVICE_NAME = worker_pb2.DESCRIPTOR.services_by_name["WorkerService"].full_name


@dataclass
class RunningWorker:
    server: RunningServer
    monitor: BackendMonitor
    admission: Admission
    metrics: MetricsServer | None = None

    @property
    def address(self) -> str:
        return self.server.address


@contextlib.asynccontextmanager
async def running_worker(settings: WorkerSettings) -> AsyncIterator[RunningWorker]:
    """Start a worker; it answers health at once and turns ready when its model is."""
    security = ServerSecurity.from_settings(settings, role="worker", listen=settings.listen)
    backend = build_backend(settings, settings.production_model)
    monitor = BackendMonitor(
        settings.node_name or "worker",
        backend,
        probe_interval_s=settings.probe_interval_s,
        liveness_interval_s=settings.liveness_interval_s,
        liveness_timeout_s=settings.idle_timeout_s,
    )
    admission = Admission(
        settings.max_concurrent_generations,
        settings.max_queued_generations,
        settings.max_queue_bypass,
    )
    service = WorkerService(
        monitor,
        admission,
        max_prompt_chars=settings.max_prompt_chars,
        max_generation_s=settings.max_generation_s,
        coalesce_after_s=settings.coalesce_after_ms / 1000,
        served_models=settings.served_models if backend.kind == "ollama" else (),
    )
    metrics = StreamMetrics.create("tandem_worker")
    metrics.registry.register(GaugeCollector(lambda: _live_gauges(monitor, admission)))
    try:
        server = await start_server(
            settings.listen,
            lambda s: worker_pb2_grpc.add_WorkerServiceServicer_to_server(service, s),
            [SERVICE_NAME],
            interceptors=[StreamMetricsInterceptor(metrics, ["Generate"]), security.gate],
            credentials=security.credentials,
            options=security.options,
        )
    except BaseException:
        await backend.aclose()
        raise
    metrics_server = start_metrics(settings.metrics_listen, metrics.registry, "worker")

    async def on_readiness(ready: bool) -> None:
        await server.set_ready(SERVICE_NAME, ready)

    monitor.start(on_readiness)
    security.announce()
    log.info(
        "worker %s listening on %s (backend %s, model %s)",
        monitor.name, server.address, backend.kind, backend.model,
    )
    try:
        yield RunningWorker(server, monitor, admission, metrics_server)
    finally:
        await server.stop(monitor.calls)
        await monitor.stop()
        if metrics_server is not None:
            metrics_server.close()


def _live_gauges(monitor: BackendMonitor, admission: Admission) -> list[GaugeMetricFamily]:
    probe = monitor.last_probe
    return [
        GaugeMetricFamily("tandem_worker_generations_running", "Generations running now", value=admission.running),
        GaugeMetricFamily("tandem_worker_generations_queued", "Generations waiting for a slot", value=admission.queued),
        GaugeMetricFamily("tandem_worker_backend_up", "1 when the model backend is ready", value=float(monitor.ready)),
        GaugeMetricFamily("tandem_worker_model_loaded", "1 when the model is resident", value=float(probe.model_loaded)),
    ]
