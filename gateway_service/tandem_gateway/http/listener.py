"""Run the gateway's HTTP app with uvicorn as a task on the gateway's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from tandem.metrics import StreamMetrics
from tandem.security.server import is_loopback
from tandem.security.tokens import TokenTable
from tandem.settings import parse_host_port
from tandem_gateway.http.app import create_app
from tandem_gateway.http.auth import DashboardAuth
from tandem_gateway.http.feed import ClusterSource, DashboardFeed
from tandem_gateway.http.hosts import LoopbackHostOnly

log = logging.getLogger(__name__)
_SHUTDOWN_GRACE_S = 2


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own SIGINT/SIGTERM handlers: the gateway process owns them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpListener:
    """/metrics, /health and /dashboard on one loopback-by-default address."""

    def __init__(
        self,
        sock: socket.socket,
        feed: DashboardFeed,
        registry: CollectorRegistry,
        auth: DashboardAuth,
    ) -> None:
        self._sock = sock
        host, port = sock.getsockname()[:2]
        self.port = port
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.feed = feed
        self._closing = asyncio.Event()
        app: ASGIApp = create_app(feed, registry, auth, self._closing)
        if is_loopback(host):
            app = LoopbackHostOnly(app)
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            log_level="warning",  # the gateway logs the listener itself; no uvicorn chatter
            access_log=False,
            http="h11",
            ws="none",
            timeout_graceful_shutdown=_SHUTDOWN_GRACE_S,
        )
        self._server = _EmbeddedServer(config)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._server.serve(sockets=[self._sock]), name="gateway-http"),
            asyncio.create_task(self.feed.run_sampler(), name="dashboard-sampler"),
        ]

    async def close(self) -> None:
        self._closing.set()  # ends the event streams, so shutdown need not wait for them
        self._server.should_exit = True
        serving, sampler = self._tasks
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        await serving
        self._sock.close()


async def start_http_listener(
    listen: str | None,
    *,
    cluster: ClusterSource,
    metrics: StreamMetrics,
    tokens: TokenTable | None,
    sample_s: float,
) -> HttpListener | None:
    """Serve on ``listen``; None when unset. A port in use is logged, never fatal."""
    if not listen:
        return None
    host, port = parse_host_port(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        log.warning("gateway: HTTP listener disabled, cannot listen on %s: %s", listen, exc)
        return None
    feed = DashboardFeed(cluster, metrics, sample_s)
    listener = HttpListener(sock, feed, metrics.registry, DashboardAuth(tokens))
    listener.start()
    log.info(
        "gateway: dashboard on %s/dashboard%s, health on /health, metrics on /metrics",
        listener.url,
        " (token needed)" if tokens is not None else "",
    )
    return listener
