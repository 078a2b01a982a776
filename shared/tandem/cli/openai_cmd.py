"""``tandem openai``: serve the OpenAI-compatible endpoint until SIGINT/SIGTERM; and the
same endpoint inside ``tandem gateway`` when the gateway sets ``openai_listen``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from tandem.security.client import client_settings
from tandem.serving import wait_for_termination_signal
from tandem.settings import ClientSettings, OpenAISettings, parse_host_port

if TYPE_CHECKING:
    from tandem.openai_compat.server import RunningEndpoint

log = logging.getLogger("tandem")


@contextlib.asynccontextmanager
async def _endpoint(
    settings: OpenAISettings, client: ClientSettings
) -> AsyncIterator[RunningEndpoint]:
    from tandem.openai_compat.server import running_openai_endpoint  # noqa: PLC0415

    async with running_openai_endpoint(settings, client) as endpoint:
        log.info(
            "OpenAI-compatible endpoint listening on %s (gateway %s, model id %r%s)",
            endpoint.base_url,
            settings.gateway or client.gateway,
            settings.model,
            ", API key required" if settings.api_key else "",
        )
        yield endpoint


async def serve_openai(settings: OpenAISettings, client: ClientSettings) -> int:
    try:
        import tandem.openai_compat.server  # noqa: F401, PLC0415
    except ImportError as exc:
        log.error("tandem openai needs %s: pip install 'tandem-router[openai-server]'", exc.name)
        return 1
    try:
        async with _endpoint(settings, client):
            await wait_for_termination_signal()
            log.info("OpenAI-compatible endpoint stopping")
    except OSError as exc:
        log.error("%s", exc)
        return 1
    return 0


def _dialable(address: str) -> str:
    """The address to call a server on that listens on ``address`` (any-address: loopback)."""
    host, port = parse_host_port(address)
    if host in ("0.0.0.0", ""):
        return f"127.0.0.1:{port}"
    if host == "::":
        return f"[::1]:{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@contextlib.asynccontextmanager
async def openai_beside_gateway(
    listen: str | None, gateway_address: str, env_file: str | Path | None
) -> AsyncIterator[RunningEndpoint | None]:
    """The OpenAI-compatible endpoint in the gateway's process (``openai_listen``), pointed
    at that gateway with the client settings of ``env_file``; nothing when ``listen`` is
    unset. Its other settings (API key, model id, timeouts) are ``TANDEM_OPENAI_*``."""
    if not listen:
        yield None
        return
    try:
        import tandem.openai_compat.server  # noqa: F401, PLC0415
    except ImportError as exc:
        raise ValueError(
            f"openai_listen needs {exc.name}: pip install 'tandem-router[openai-server]'"
        ) from exc
    try:
        settings = OpenAISettings(  # type: ignore[call-arg]
            _env_file=env_file, listen=listen, gateway=_dialable(gateway_address)
        )
        client = client_settings(env_file)
    except ValidationError as exc:
        raise ValueError(f"the OpenAI endpoint's settings: {exc}") from None
    async with _endpoint(settings, client) as endpoint:
        yield endpoint
