"""``tandem worker``: the Mac Mini node that generates (registered in pyproject.toml)."""

from __future__ import annotations

import argparse

from tandem.cli.options import settings_from_args
from tandem.cli.roles import Subcommands, add_role_command, serve_until_signal
from tandem.serving import wait_for_listen_address
from tandem.settings import WorkerSettings


def add_command(commands: Subcommands) -> None:
    add_role_command(
        commands,
        "worker",
        WorkerSettings,
        run,
        summary="run the worker (the Mac Mini node that generates)",
        description="Serve tandem.v1.WorkerService. Without --ollama-url it runs the "
        "embedded model.",
    )


async def run(args: argparse.Namespace) -> int:
    from tandem_worker.server import running_worker  # noqa: PLC0415 - heavy, only when serving

    settings = settings_from_args(WorkerSettings, args, args.env_file)
    # On the Mac Mini the listen address is the Thunderbolt bridge's, which may come up
    # after the service starts at boot: wait for it rather than exit.
    await wait_for_listen_address(settings.listen)
    return await serve_until_signal("worker", running_worker(settings))
