"""``tandem gateway``: the MacBook node that screens and routes (registered in pyproject.toml)."""

from __future__ import annotations

import argparse

from tandem.cli.options import add_settings_arguments, settings_from_args
from tandem.cli.roles import Subcommands, serve_until_signal
from tandem.settings import GatewaySettings


def add_command(commands: Subcommands) -> None:
    parser = commands.add_parser(
        "gateway",
        help="run the gateway (the MacBook node that screens and routes)",
        description="Serve tandem.v1.GatewayService. Without --ollama-url the classifier "
        "decides and no judge model is loaded.",
    )
    add_settings_arguments(parser, GatewaySettings)
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    from tandem_gateway.server import running_gateway  # noqa: PLC0415 - heavy, only when serving

    settings = settings_from_args(GatewaySettings, args, args.env_file)
    return await serve_until_signal("gateway", running_gateway(settings))
