"""``tandem status``: a readable table of the gateway and its workers."""

from __future__ import annotations

import grpc
from rich.console import Console
from rich.table import Table

from tandem.client import GatewayClient
from tandem.v1 import gateway_pb2, worker_pb2

_GIB = 1024**3


def _memory(node: worker_pb2.NodeStatus) -> str:
    if not node.HasField("memory") or not node.memory.total_bytes:
        return "-"
    return f"{node.memory.available_bytes / _GIB:.1f} / {node.memory.total_bytes / _GIB:.1f} GiB free"


def _model(node: worker_pb2.NodeStatus) -> str:
    if not node.model:
        return "-"
    state = "loaded" if node.model_loaded else ("available" if node.model_available else "MISSING")
    return f"{node.model} ({state})"


def render(status: gateway_pb2.ClusterStatus) -> Table:
    table = Table(title=f"Tandem cluster — gateway {'READY' if status.ready else 'NOT READY'}")
    for column in ("node", "role", "state", "backend", "model", "memory", "in flight", "note"):
        table.add_column(column)
    gateway = status.gateway
    table.add_row(
        gateway.node or "gateway",
        "gateway",
        "[green]ok[/]" if gateway.backend_reachable and gateway.model_available else "[red]down[/]",
        worker_pb2.BackendKind.Name(gateway.backend).removeprefix("BACKEND_KIND_").lower(),
        _model(gateway),
        _memory(gateway),
        str(gateway.generations_in_flight),
        gateway.error,
    )
    for worker in status.workers:
        state = gateway_pb2.WorkerState.Name(worker.state).removeprefix("WORKER_STATE_").lower()
        colour = "green" if worker.state == gateway_pb2.WORKER_STATE_SERVING else "red"
        node = worker.node
        table.add_row(
            worker.address,
            "worker",
            f"[{colour}]{state}[/]",
            worker_pb2.BackendKind.Name(node.backend).removeprefix("BACKEND_KIND_").lower()
            if worker.HasField("node") else "-",
            _model(node) if worker.HasField("node") else "-",
            _memory(node) if worker.HasField("node") else "-",
            str(node.generations_in_flight) if worker.HasField("node") else "-",
            worker.error,
        )
    return table


async def show_status(gateway: str) -> int:
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # piped: keep each row on one line for grep
    try:
        async with GatewayClient(gateway) as client:
            status = await client.cluster_status()
    except grpc.aio.AioRpcError as exc:
        Console(stderr=True).print(
            f"tandem: cannot reach the gateway at {gateway}: {exc.code().name}: {exc.details()}",
            style="bold red",
            markup=False,
        )
        return 1
    console.print(render(status))
    return 0 if status.ready else 2
