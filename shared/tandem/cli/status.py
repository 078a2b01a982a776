"""``tandem status``: a readable table of the gateway and its workers (on tandem.sdk)."""

from __future__ import annotations

from rich.console import Console
from rich.live import Live
from rich.table import Table

from tandem.sdk import AsyncTandemClient, TandemError
from tandem.sdk.models import ClusterStatus, NodeInfo
from tandem.security.client import ClientSecurity

_GIB = 1024**3


def _memory(node: NodeInfo | None) -> str:
    if node is None or not node.memory_total_bytes:
        return "-"
    return (
        f"{node.memory_available_bytes / _GIB:.1f} / {node.memory_total_bytes / _GIB:.1f} GiB free"
    )


def _model(node: NodeInfo | None) -> str:
    if node is None or not node.model:
        return "-"
    state = "loaded" if node.model_loaded else ("available" if node.model_available else "MISSING")
    others = [name for name in node.served_models if name != node.model]
    also = f"\n+ {', '.join(others)}" if others else ""  # other models requests may name
    return f"{node.model} ({state}){also}"


def render(status: ClusterStatus) -> Table:
    observed = status.observed_at.strftime("%H:%M:%S") if status.observed_at else "?"
    readiness = "READY" if status.ready else "NOT READY"
    table = Table(
        title=f"Tandem cluster — gateway {readiness} at {observed} UTC",
        caption="\n".join(f"[yellow]warning:[/] {w}" for w in status.warnings) or None,
    )
    for column in (
        "node",
        "role",
        "state",
        "backend",
        "model",
        "memory",
        "in flight",
        "link rtt",
        "note",
    ):
        table.add_column(column)
    gateway = status.gateway
    # A gateway without a judge (the embedded default: the classifier decides) has
    # no backend to be down.
    judge_ok = not gateway.model or (gateway.backend_reachable and gateway.model_available)
    table.add_row(
        gateway.node or "gateway",
        "gateway",
        "[green]ok[/]" if judge_ok else "[red]down[/]",
        gateway.backend if gateway.model else "no judge",
        _model(gateway),
        _memory(gateway),
        str(gateway.generations_in_flight),
        "-",
        gateway.error,
    )
    for worker in status.workers:
        colour = "green" if worker.state == "serving" else "red"
        node = worker.node
        table.add_row(
            worker.address,
            "worker",
            f"[{colour}]{worker.state}[/]",
            node.backend if node else "-",
            _model(node),
            _memory(node),
            f"{node.generations_in_flight} (+{node.generations_queued} queued)" if node else "-",
            f"{worker.link_rtt_s * 1000:.1f} ms" if worker.link_rtt_s is not None else "-",
            worker.error,
        )
    return table


def _console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=200)  # piped: one line per row


def _client(gateway: str, security: ClientSecurity) -> AsyncTandemClient:
    return AsyncTandemClient(gateway, auth=security.auth_hook(), credentials=security.credentials)


def _complain(message: str) -> None:
    Console(stderr=True).print(message, style="bold red", markup=False, soft_wrap=True)


async def watch_status(gateway: str, security: ClientSecurity) -> int:
    """Follow WatchClusterStatus: redraw in place on a terminal, one table per update otherwise."""
    console = _console()
    try:
        async with _client(gateway, security) as client:
            updates = client.watch_cluster_status()
            if console.is_terminal:
                with Live(console=console, auto_refresh=False) as live:
                    async for status in updates:
                        live.update(render(status), refresh=True)
            else:
                async for status in updates:
                    console.print(render(status))
    except TandemError as exc:
        _complain(f"tandem: status stream from {gateway} ended: {exc}")
        return 1
    return 0


async def show_status(gateway: str, security: ClientSecurity) -> int:
    console = _console()
    try:
        async with _client(gateway, security) as client:
            status = await client.cluster_status()
    except TandemError as exc:
        _complain(f"tandem: cannot reach the gateway at {gateway}: {exc}")
        return 1
    console.print(render(status))
    return 0 if status.ready else 2
