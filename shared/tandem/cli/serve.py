"""``tandem worker`` and ``tandem gateway``: run a service until SIGINT/SIGTERM."""

from __future__ import annotations

import logging

from tandem.serving import wait_for_listen_address, wait_for_termination_signal
from tandem.settings import GatewaySettings, WorkerSettings

log = logging.getLogger("tandem")


async def run_worker(settings: WorkerSettings) -> None:
    from tandem_worker.server import running_worker  # noqa: PLC0415 - only this role needs it

    # On the Mac Mini the listen address is the Thunderbolt bridge's, which may come up
    # after the service starts at boot.
    await wait_for_listen_address(settings.listen)
    async with running_worker(settings):
        await wait_for_termination_signal()
        log.info("worker stopping")
    log.info("worker stopped")


async def run_gateway(settings: GatewaySettings, env_file: str | None = None) -> None:
    from tandem_gateway.server import running_gateway  # noqa: PLC0415

    from tandem.cli.openai_cmd import openai_beside_gateway  # noqa: PLC0415

    async with (
        running_gateway(settings) as gateway,
        openai_beside_gateway(settings.openai_listen, gateway.address, env_file),
    ):
        await wait_for_termination_signal()
        log.info("gateway stopping")
    log.info("gateway stopped")
