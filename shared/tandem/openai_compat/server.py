"""Serve the OpenAI-compatible app with uvicorn on the caller's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn

from tandem.openai_compat.app import create_app
from tandem.sdk import AsyncTandemClient
from tandem.security import client as security_client
from tandem.settings import ClientSettings, OpenAISettings, parse_host_port


@dataclass(frozen=True, slots=True)
class RunningEndpoint:
    address: str  # host:port actually bound

    @property
    def base_url(self) -> str:
        """What OpenAI clients take as their base URL."""
        return f"http://{self.address}/v1"


@contextlib.asynccontextmanager
async def running_openai_endpoint(
    settings: OpenAISettings, client_settings: ClientSettings | None = None
) -> AsyncIterator[RunningEndpoint]:
    """Listen at once (connections queue until uvicorn accepts them), serve until exit.

    The gateway is reached with ``client_settings`` (address unless the endpoint's
    own ``gateway`` is set, token, TLS); None: the environment's, as the SDK reads
    them. On exit, answers in flight get ``shutdown_grace_s`` to finish.
    """
    client_settings = client_settings or security_client.client_settings()
    security = security_client.ClientSecurity.from_settings(client_settings)
    sock = _listen(settings.listen)
    host, port = sock.getsockname()[:2]
    client = AsyncTandemClient(
        settings.gateway or client_settings.gateway,
        timeout_s=settings.timeout_s,
        auth=security.auth_hook(),
        credentials=security.credentials,
    )
    app = create_app(
        client, model=settings.model, api_key=settings.api_key, timeout_s=settings.timeout_s
    )
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        http="h11",
        ws="none",
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_s)),
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="openai-endpoint")
    try:
        yield RunningEndpoint(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    finally:
        server.should_exit = True
        await serving
        await client.close()
        sock.close()


def _listen(listen: str) -> socket.socket:
    host, port = parse_host_port(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise OSError(f"cannot listen on {listen}: {exc.strerror or exc}") from exc
