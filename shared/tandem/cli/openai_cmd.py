"""``tandem openai``: serve the OpenAI-compatible endpoint until SIGINT/SIGTERM."""

from __future__ import annotations

import logging

from tandem.serving import wait_for_termination_signal
from tandem.settings import OpenAISettings

log = logging.getLogger("tandem")


async def serve_openai(settings: OpenAISettings) -> int:
    try:
        from tandem.openai_compat.server import running_openai_endpoint  # noqa: PLC0415
    except ImportError as exc:
        log.error("tandem openai needs %s: pip install 'tandem-router[openai-server]'", exc.name)
        return 1
    try:
        async with running_openai_endpoint(settings) as endpoint:
            log.info(
                "OpenAI-compatible endpoint listening on %s (gateway %s, model id %r%s)",
                endpoint.base_url,
                settings.gateway,
                settings.model,
                ", API key required" if settings.api_key else "",
            )
            await wait_for_termination_signal()
            log.info("OpenAI-compatible endpoint stopping")
    except OSError as exc:
        log.error("%s", exc)
        return 1
    return 0
