"""The CLI clients (ask, status, health) speak to a gateway with tokens and TLS on."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tandem_gateway.server import RunningGateway, running_gateway
from tandem_worker.server import RunningWorker
from tests.conftest import Minted, Pki, gateway_settings
from tests.fake_ollama import FakeOllama
from tests.helpers import GATEWAY_SERVICE


@pytest.fixture
async def secured_gateway(
    gateway_ollama: FakeOllama, worker: RunningWorker, pki: Pki, tmp_path: Path
) -> AsyncIterator[tuple[RunningGateway, Path]]:
    agent = Minted.new("agent", "gateway")
    token_file = tmp_path / "agent.token"
    token_file.write_text(agent.token)
    settings = gateway_settings(
        gateway_ollama.url,
        [worker.address],
        auth_tokens=[agent.line],
        tls_cert=pki.bundle.gateway.cert,
        tls_key=pki.bundle.gateway.key,
    )
    async with running_gateway(settings) as running:
        yield running, token_file


def _tandem(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")}
    return subprocess.run(
        [sys.executable, "-m", "tandem.cli.main", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, **env},
    )


async def test_ask_status_and_health_with_token_and_tls(
    secured_gateway: tuple[RunningGateway, Path], pki: Pki, worker_ollama: FakeOllama
) -> None:
    gateway, token_file = secured_gateway
    worker_ollama.reply = "secured answer"
    tls = {"TANDEM_CLIENT_TLS_CA": str(pki.bundle.ca)}
    healthy = await asyncio.to_thread(
        _tandem, "health", "--address", gateway.address, "--service", GATEWAY_SERVICE, env=tls
    )
    assert healthy.returncode == 0, healthy.stderr
    no_token = await asyncio.to_thread(_tandem, "ask", "--gateway", gateway.address, "hi", env=tls)
    assert no_token.returncode == 1 and "UNAUTHENTICATED" in no_token.stderr
    with_token = {**tls, "TANDEM_CLIENT_TOKEN_FILE": str(token_file)}
    answered = await asyncio.to_thread(
        _tandem, "ask", "--gateway", gateway.address, "hi", env=with_token
    )
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.strip() == "secured answer"
    status = await asyncio.to_thread(
        _tandem, "status", "--gateway", gateway.address, env=with_token
    )
    assert status.returncode == 0, status.stderr
    plaintext = await asyncio.to_thread(_tandem, "ask", "--gateway", gateway.address, "hi", env={})
    assert plaintext.returncode == 1
