"""``tandem gateway``: the MacBook node that screens and routes (registered in pyproject.toml)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator

from tandem.cli.options import settings_from_args
from tandem.cli.roles import Subcommands, add_role_command, serve_until_signal
from tandem.settings import GatewaySettings


def add_command(commands: Subcommands) -> None:
    add_role_command(
        commands,
        "gateway",
        GatewaySettings,
        run,
        summary="run the gateway (the MacBook node that screens and routes)",
        description="Serve tandem.v1.GatewayService (and, with --openai-listen, the "
        "OpenAI-compatible endpoint). Without --ollama-url the classifier decides and no "
        "judge model is loaded.",
    )


async def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(GatewaySettings, args, args.env_file)
    return await serve_until_signal("gateway", _gateway_node(settings, args.env_file))


@contextlib.asynccontextmanager
async def _gateway_node(settings: GatewaySettings, env_file: str | None) -> AsyncIterator[object]:
    """The gateway, and the OpenAI-compatible endpoint in front of it when ``openai_listen``
    is set: everything the MacBook serves, from one env file."""
    from tandem.cli.openai_cmd import openai_beside_gateway  # noqa: PLC0415
    from tandem_gateway.server import running_gateway  # noqa: PLC0415 - heavy, only when serving

    async with (
        running_gateway(settings) as gateway,
        openai_beside_gateway(settings.openai_listen, gateway.address, env_file),
    ):
        yield gateway
