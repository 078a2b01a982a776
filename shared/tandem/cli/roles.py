"""Commands a node role adds to ``tandem`` (``tandem worker``, ``tandem gateway``).

The shared CLI knows no role: each role package registers a function under the
entry-point group ``tandem.commands`` (see pyproject.toml) that adds its
subcommand and sets ``run``, the coroutine that serves it. A role that is not
installed simply has no command.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from typing import Any, Protocol

from pydantic_settings import BaseSettings

from tandem.cli.options import add_settings_arguments
from tandem.serving import wait_for_termination_signal

ENTRY_POINT_GROUP = "tandem.commands"

log = logging.getLogger("tandem")

# The coroutine a command runs with the parsed arguments; returns the exit status.
CommandRunner = Callable[[argparse.Namespace], Awaitable[int]]


class Subcommands(Protocol):
    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


def add_role_command(
    commands: Subcommands,
    name: str,
    settings: type[BaseSettings],
    run: CommandRunner,
    *,
    summary: str,
    description: str,
) -> None:
    """Add ``tandem NAME``: every field of ``settings`` as a flag, and ``run`` to serve it."""
    parser = commands.add_parser(name, help=summary, description=description)
    add_settings_arguments(parser, settings)
    parser.set_defaults(run=run)


def add_role_commands(commands: Subcommands) -> None:
    """Let every installed role add its command."""
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        entry.load()(commands)


async def serve_until_signal(
    role: str, node: contextlib.AbstractAsyncContextManager[object]
) -> int:
    """Run a node until SIGINT/SIGTERM; a node that cannot start exits 1."""
    try:
        async with node:
            await wait_for_termination_signal()
            log.info("%s stopping", role)
    except (OSError, ValueError) as exc:  # cannot bind, unreadable token file, ...
        log.error("%s: %s", role, exc)
        return 1
    log.info("%s stopped", role)
    return 0
