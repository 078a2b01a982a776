"""The worker node: backend monitor + admission + WorkerService, started by ``run_node``."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily

from tandem.backends.factory import build_backend
from tandem.metrics import MetricsServer
from tandem.monitor import BackendMonitor
from tandem.node import NodeRole, run_node
from tandem.services import WORKER_SERVICE
from tandem.serving import RunningServer
from tandem.settings import WorkerSettings
from tandem.v1.worker_pb2_grpc import add_WorkerServiceServicer_to_server
from tandem_worker.admission import Admission
from tandem_worker.service import WorkerService

log = logging.getLogger(__name__)


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
    if settings.served_models and backend.kind != "ollama":
        log.warning(
            "--served-model is ignored: the %s backend serves only %s", backend.kind, backend.model
        )
    service = WorkerService(
        monitor,
        admission,
        max_prompt_chars=settings.max_prompt_chars,
        max_generation_s=settings.max_generation_s,
        coalesce_after_s=settings.coalesce_after_ms / 1000,
        served_models=settings.served_models if backend.kind == "ollama" else (),
    )
    gauges = functools.partial(_live_gauges, monitor, admission)
    node = NodeRole(
        "worker",
        monitor.name,
        WORKER_SERVICE,
        add_WorkerServiceServicer_to_server,
        service,
        monitor,
        monitor.calls,
        gauges,
        observed_methods=("Generate",),
    )
    async with run_node(node, settings) as running:
        log.info(
            "worker %s listening on %s (backend %s, model %s)",
            monitor.name,
            running.address,
            backend.kind,
            backend.model,
        )
        yield RunningWorker(running.server, monitor, admission, running.metrics_server)


def _live_gauges(monitor: BackendMonitor, admission: Admission) -> list[GaugeMetricFamily]:
    probe = monitor.last_probe
    return [
        GaugeMetricFamily(
            "tandem_worker_generations_running", "Generations running now", value=admission.running
        ),
        GaugeMetricFamily(
            "tandem_worker_generations_queued",
            "Generations waiting for a slot",
            value=admission.queued,
        ),
        GaugeMetricFamily(
            "tandem_worker_backend_up",
            "1 when the model backend is ready",
            value=float(monitor.ready),
        ),
        GaugeMetricFamily(
            "tandem_worker_model_loaded",
            "1 when the model is resident",
            value=float(probe.model_loaded),
        ),
    ]
