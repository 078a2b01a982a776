"""Every client honours the client settings (TANDEM_CLIENT_*: gateway, token file,
TLS): the SDK's default constructors, the AutoGen client, `tandem openai` and
`tandem health`, against a gateway that wants TLS and a token."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tandem.integrations.autogen import TandemChatCompletionClient
from tandem.sdk import AsyncTandemClient, TandemClient
from tandem.sdk.errors import TandemError
from tandem_gateway.server import RunningGateway
from tests.conftest import Pki
from tests.fake_ollama import FakeOllama
from tests.helpers import GATEWAY_SERVICE
from tests.test_cli_security import secured_gateway  # noqa: F401, F811 - the fixture

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def client_env(
    secured_gateway: tuple[RunningGateway, Path],  # noqa: F811 - the fixture imported above
    pki: Pki,
) -> dict[str, str]:
    """The TANDEM_CLIENT_* settings that reach the secured gateway (TLS and a token)."""
    gateway, token_file = secured_gateway
    return {
        "TANDEM_CLIENT_GATEWAY": gateway.address,
        "TANDEM_CLIENT_TOKEN_FILE": str(token_file),
        "TANDEM_CLIENT_TLS_CA": str(pki.bundle.ca),
    }


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for variable in [v for v in os.environ if v.startswith("TANDEM_")]:
        monkeypatch.delenv(variable)
    yield monkeypatch


def _set(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]) -> None:
    for key, value in variables.items():
        monkeypatch.setenv(key, value)


async def test_sdk_default_constructors_read_the_client_settings(
    client_env: dict[str, str],
    clean_environment: pytest.MonkeyPatch,
    worker_ollama: FakeOllama,
) -> None:
    gateway = client_env["TANDEM_CLIENT_GATEWAY"]
    worker_ollama.reply = "secured answer"
    # Without the settings the default client speaks plaintext to the default address.
    with pytest.raises(TandemError):
        async with AsyncTandemClient(gateway, timeout_s=10) as bare:
            await bare.cluster_status()
    _set(clean_environment, client_env)
    async with AsyncTandemClient(timeout_s=30) as client:
        assert client.address == gateway
        answer = await client.ask("Reverse a string in Python")
    assert answer.text == "secured answer"

    def sync_ask() -> str:
        with TandemClient(timeout_s=30) as sync_client:
            return sync_client.ask("Reverse a string in Python").text

    assert await asyncio.to_thread(sync_ask) == "secured answer"


async def test_the_settings_may_come_from_the_env_file_setup_wrote(
    client_env: dict[str, str],
    clean_environment: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    env_file = tmp_path / "gateway.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in client_env.items()))
    clean_environment.setenv("TANDEM_ENV_FILE", str(env_file))
    async with AsyncTandemClient(timeout_s=30) as client:
        status = await client.cluster_status()  # needs the token and TLS from the file
    assert status.gateway.node == "gateway"


async def test_the_autogen_client_reads_the_client_settings(
    client_env: dict[str, str],
    clean_environment: pytest.MonkeyPatch,
    worker_ollama: FakeOllama,
) -> None:
    from autogen_core.models import UserMessage  # noqa: PLC0415

    _set(clean_environment, client_env)
    worker_ollama.reply = "from the agent"
    client = TandemChatCompletionClient()
    try:
        result = await client.create([UserMessage(content="Reverse a string", source="user")])
    finally:
        await client.close()
    assert result.content == "from the agent"


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")}
    return {**base, **extra}


async def test_tandem_openai_reaches_a_secured_gateway_with_the_client_settings(
    client_env: dict[str, str], worker_ollama: FakeOllama
) -> None:
    worker_ollama.reply = "over the OpenAI API"
    process = subprocess.Popen(
        [sys.executable, "-m", "tandem.cli.main", "openai", "--listen", "127.0.0.1:0"],
        cwd=ROOT,
        env=_child_env(client_env),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        base_url = await asyncio.to_thread(_announced_url, process.stderr)
        async with openai.AsyncOpenAI(base_url=base_url, api_key="unused") as client:
            completion = await client.chat.completions.create(
                model="tandem", messages=[{"role": "user", "content": "Reverse a string"}]
            )
        assert completion.choices[0].message.content == "over the OpenAI API"
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 60)


def _announced_url(stream: object) -> str:
    for line in stream:  # type: ignore[attr-defined]
        found = re.search(r"listening on (http://\S+/v1)", line)
        if found:
            return found.group(1)
    raise AssertionError("tandem openai exited without announcing its address")


async def test_tandem_health_defaults_to_the_client_gateway_over_tls(
    client_env: dict[str, str],
) -> None:
    env = _child_env({k: v for k, v in client_env.items() if k != "TANDEM_CLIENT_TOKEN_FILE"})
    checked = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tandem.cli.main", "health", "--service", GATEWAY_SERVICE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip().endswith("SERVING")
