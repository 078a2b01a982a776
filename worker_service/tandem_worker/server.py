"""Run the worker: backend + WorkerService + health + reflection on one port."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from tandem.backends.factory import build_backend
from tandem.monitor import BackendMonitor
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
    admission = Admission(settings.max_concurrent_generations, settings.max_queued_generations)
    service = WorkerService(
        monitor,
        admission,
        max_prompt_chars=settings.max_prompt_chars,
        max_generation_s=settings.max_generation_s,
    )
    try:
        server = await start_server(
            settings.listen,
            lambda s: worker_pb2_grpc.add_WorkerServiceServicer_to_server(service, s),
            [SERVICE_NAME],
        )
    except BaseException:
        await backend.aclose()
        raise

    async def on_readiness(ready: bool) -> None:
        await server.set_ready(SERVICE_NAME, ready)

    monitor.start(on_readiness)
    log.info(
        "worker %s listening on %s (backend %s, model %s)",
        monitor.name, server.address, backend.kind, backend.model,
    )
    try:
        yield RunningWorker(server, monitor, admission)
    finally:
        await server.stop(monitor.calls)
        await monitor.stop()
