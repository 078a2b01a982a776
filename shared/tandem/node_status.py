"""Build ``NodeStatus`` reports from a backend probe and this host's memory."""

from __future__ import annotations

from tandem.backends.base import BackendProbe, ChatBackend
from tandem.backends.ollama import gpu_residency_warning
from tandem.host_memory import host_memory
from tandem.protoutil import seconds_to_duration, timestamp
from tandem.v1 import worker_pb2

_BACKEND_KINDS = {
    "ollama": worker_pb2.BACKEND_KIND_OLLAMA,
    "embedded": worker_pb2.BACKEND_KIND_EMBEDDED,
}


def node_warnings(backend: ChatBackend, probe: BackendProbe) -> list[str]:
    """What the owner should fix on this node (NodeStatus.warnings)."""
    warnings = []
    if backend.kind == "ollama":
        warnings.append(gpu_residency_warning(backend.model, probe.loaded_models))
    return [w for w in warnings if w]


def node_status(
    node: str, backend: ChatBackend, probe: BackendProbe, *, in_flight: int = 0
) -> worker_pb2.NodeStatus:
    status = worker_pb2.NodeStatus(
        node=node,
        backend=_BACKEND_KINDS[backend.kind],
        backend_url=backend.location,
        model=backend.model,
        backend_reachable=probe.reachable,
        model_available=probe.model_available,
        model_loaded=probe.model_loaded,
        memory=host_memory(),
        generations_in_flight=in_flight,
        error=probe.error,
        probe_latency=seconds_to_duration(probe.latency_s),
        version=probe.version,
        available_models=list(probe.available_models),
        warnings=node_warnings(backend, probe),
    )
    if probe.model_expires_at is not None:
        status.model_expires_at.CopyFrom(timestamp(probe.model_expires_at))
    for model in probe.loaded_models:
        loaded = status.loaded_models.add(
            name=model.name, size_bytes=model.size_bytes, size_vram_bytes=model.size_vram_bytes
        )
        if model.expires_at is not None:
            loaded.expires_at.CopyFrom(timestamp(model.expires_at))
    return status
