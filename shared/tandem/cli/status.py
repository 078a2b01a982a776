"""``tandem status``: a readable table of the gateway and its workers."""

from __future__ import annotations

import grpc
from rich.console import Console
from rich.live import Live
from rich.table import Table

from tandem.client import GatewayClient
from tandem.sdk.channel import ChannelConfig, async_channel
from tandem.sdk.convert import enum_name
from tandem.security.client import ClientSecurity
from tandem.v1 import gateway_pb2, gateway_pb2_grpc, worker_pb2

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
    observed = status.observed_at.ToDatetime().strftime("%H:%M:%S")
    table = Table(
        title=f"Tandem cluster — gateway {'READY' if status.ready else 'NOT READY'} at {observed} UTC",
        caption="\n".join(f"[yellow]warning:[/] {w}" for w in status.warnings) or None,
    )
    for column in ("node", "role", "state", "backend", "model", "memory", "in flight", "link rtt", "note"):
        table.add_column(column)
    gateway = status.gateway
    table.add_row(
        gateway.node or "gateway",
        "gateway",
        "[green]ok[/]" if gateway.backend_reachable and gateway.model_available else "[red]down[/]",
        enum_name(worker_pb2.BackendKind, gateway.backend, "BACKEND_KIND_"),
        _model(gateway),
        _memory(gateway),
        str(gateway.generations_in_flight),
        "-",
        gateway.error,
    )
    for worker in status.workers:
        state = enum_name(gateway_pb2.WorkerState, worker.state, "WORKER_STATE_")
        colour = "green" if worker.state == gateway_pb2.WORKER_STATE_SERVING else "red"
        node = worker.node
        table.add_row(
            worker.address,
            "worker",
            f"[{colour}]{state}[/]",
            enum_name(worker_pb2.BackendKind, node.backend, "BACKEND_KIND_")
            if worker.HasField("node") else "-",
            _model(node) if worker.HasField("node") else "-",
            _memory(node) if worker.HasField("node") else "-",
            f"{node.generations_in_flight} (+{node.generations_queued} queued)" if worker.HasField("node") else "-",
            f"{worker.link_rtt.ToMicroseconds() / 1000:.1f} ms" if worker.HasField("link_rtt") else "-",
            worker.error,
        )
    return table


def _console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=200)  # piped: one line per row


async def watch_status(gateway: str, security: ClientSecurity) -> int:
    """Follow WatchClusterStatus: redraw in place on a terminal, one table per update otherwise."""
    console = _console()
    request = gateway_pb2.WatchClusterStatusRequest()
    try:
        async with async_channel(gateway, ChannelConfig(), security.credentials) as channel:
            stream = gateway_pb2_grpc.GatewayServiceStub(channel).WatchClusterStatus(
                request, metadata=security.metadata
            )
            if console.is_terminal:
                with Live(console=console, auto_refresh=False) as live:
                    async for status in stream:
                        live.update(render(status), refresh=True)
            else:
                async for status in stream:
                    console.print(render(status))
    except grpc.aio.AioRpcError as exc:
        Console(stderr=True).print(
            f"tandem: status stream from {gateway} ended: {exc.code().name}: {exc.details()}",
            style="bold red",
            markup=False,
        )
        return 1
    return 0


async def show_status(gateway: str, security: ClientSecurity) -> int:
    console = _console()
    try:
        async with GatewayClient(
            gateway, auth=security.auth_hook(), credentials=security.credentials
        ) as client:
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
