"""The cluster snapshot (gateway_pb2.ClusterStatus) as JSON: the dashboard's node rows
and the /health body. Words match ``tandem status``: READY / NOT READY, the gateway
``ok`` / ``down``, a worker ``serving`` / ``not_serving`` / ``unreachable``."""

from __future__ import annotations

from typing import Any

from google.protobuf import timestamp_pb2

from tandem.protoutil import enum_name
from tandem.v1 import gateway_pb2, worker_pb2

READY_WORDS = {True: "READY", False: "NOT READY"}


def _iso(stamp: timestamp_pb2.Timestamp) -> str:
    return stamp.ToJsonString()


def gateway_state(node: worker_pb2.NodeStatus) -> str:
    """``tandem status``'s word for the gateway node; a gateway without a judge model
    (no backend to reach) is ``ok``."""
    usable = node.model_available or not node.model
    return "ok" if node.backend_reachable and usable else "down"


def worker_state(worker: gateway_pb2.WorkerStatus) -> str:
    return enum_name(gateway_pb2.WorkerState, worker.state, "WORKER_STATE_")


def model_state(node: worker_pb2.NodeStatus) -> str:
    if not node.model:
        return "none"
    if node.model_loaded:
        return "loaded"
    return "available" if node.model_available else "MISSING"


def memory_json(memory: worker_pb2.MemoryInfo) -> dict[str, Any] | None:
    """Pressure when the node reports it (macOS), used/total always; None when unknown."""
    if not memory.total_bytes:
        return None
    used = memory.used_bytes or max(memory.total_bytes - memory.available_bytes, 0)
    pressure = (
        enum_name(worker_pb2.MemoryPressure, memory.pressure, "MEMORY_PRESSURE_")
        if memory.pressure
        else None
    )
    return {
        "total_bytes": memory.total_bytes,
        "used_bytes": used,
        "available_bytes": memory.available_bytes,
        "pressure": pressure,
        "swap_total_bytes": memory.swap_total_bytes,
        "swap_used_bytes": memory.swap_used_bytes,
    }


def loaded_model_json(model: worker_pb2.LoadedModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "size_bytes": model.size_bytes,
        "vram_bytes": model.size_vram_bytes,
        "on_gpu": model.size_bytes > 0 and model.size_vram_bytes == model.size_bytes,
        "expires_at": _iso(model.expires_at) if model.HasField("expires_at") else None,
    }


def node_json(node: worker_pb2.NodeStatus) -> dict[str, Any]:
    """What one node reports about itself and its model backend."""
    return {
        "name": node.node,
        "backend": enum_name(worker_pb2.BackendKind, node.backend, "BACKEND_KIND_"),
        "version": node.version,
        "model": node.model,
        "model_state": model_state(node),
        "model_expires_at": (
            _iso(node.model_expires_at) if node.HasField("model_expires_at") else None
        ),
        "loaded_models": [loaded_model_json(model) for model in node.loaded_models],
        "memory": memory_json(node.memory),
        "running": node.generations_in_flight,
        "queued": node.generations_queued,
        "error": node.error,
        "warnings": list(node.warnings),
    }


def link_json(worker: gateway_pb2.WorkerStatus) -> dict[str, Any]:
    return {
        "rtt_ms": (
            round(worker.link_rtt.ToNanoseconds() / 1e6, 3) if worker.HasField("link_rtt") else None
        ),
        "consecutive_failures": worker.consecutive_failures,
        "last_seen": _iso(worker.last_seen) if worker.HasField("last_seen") else None,
    }


def node_rows(status: gateway_pb2.ClusterStatus) -> list[dict[str, Any]]:
    """The gateway (its judge model) first, then each worker by address."""
    gateway = status.gateway
    rows: list[dict[str, Any]] = [
        {
            "id": gateway.node or "gateway",
            "role": "gateway",
            "state": gateway_state(gateway),
            "error": gateway.error,
            "node": node_json(gateway),
            "link": None,
        }
    ]
    for worker in status.workers:
        rows.append(
            {
                "id": worker.address,
                "role": "worker",
                "state": worker_state(worker),
                "error": worker.error,
                "node": node_json(worker.node) if worker.HasField("node") else None,
                "link": link_json(worker),
            }
        )
    return rows


def health_json(status: gateway_pb2.ClusterStatus) -> dict[str, Any]:
    """``GET /health``: the design note's ``{"nodes": {name: "connected"}}``, each node
    extended with its state and memory (the gateway by node name, workers by address)."""
    nodes: dict[str, dict[str, Any]] = {}
    for row in node_rows(status):
        node = row["node"]
        # Connected: the gateway reaches its judge's backend; the gateway reaches the worker.
        if row["role"] == "gateway":
            connected = status.gateway.backend_reachable
        else:
            connected = row["state"] != "unreachable"
        nodes[row["id"]] = {
            "role": row["role"],
            "connection": "connected" if connected else "disconnected",
            "state": row["state"],
            "node": node["name"] if node else None,
            "model": node["model"] if node else None,
            "memory": node["memory"] if node else None,
            "error": row["error"],
        }
    return {
        "ready": status.ready,
        "status": READY_WORDS[status.ready],
        "observed_at": _iso(status.observed_at),
        "nodes": nodes,
        "warnings": list(status.warnings),
    }
