"""docs/security.md's grpcurl recipes with TLS, mutual TLS and tokens, run exactly as
written (home folder, addresses aside) against nodes set up by `tandem setup`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from pathlib import Path

import grpc
import pytest

from tandem.cli.main import build_parser
from tandem.cli.setup import run_setup
from tandem.settings import GatewaySettings, WorkerSettings
from tandem_gateway.server import running_gateway
from tandem_worker.server import running_worker
from tests.conftest import wait_serving
from tests.fake_ollama import FakeOllama
from tests.helpers import GATEWAY_SERVICE
from tests.test_grpcurl import GRPCURL, NO_GRPCURL

SECURITY = Path(__file__).resolve().parents[1] / "docs" / "security.md"
pytestmark = pytest.mark.skipif(NO_GRPCURL is not None, reason=NO_GRPCURL or "")


def recipes() -> list[str]:
    text = SECURITY.read_text()
    block = re.search(r"<!-- grpcurl-tls-examples -->\s*```sh\n(.*?)```", text, re.DOTALL)
    assert block, "docs/security.md lost its grpcurl TLS examples"
    return [line for line in block.group(1).splitlines() if line.startswith("grpcurl ")]


def _setup(*argv: str) -> None:
    assert run_setup(build_parser().parse_args(["setup", *argv])) == 0


async def test_the_tls_and_token_recipes_work(
    tmp_path: Path,
    worker_ollama: FakeOllama,
    gateway_ollama: FakeOllama,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in [v for v in os.environ if v.startswith("TANDEM_")]:
        monkeypatch.delenv(variable)
    home = tmp_path / ".tandem"
    _setup("gateway", "--home", str(home))
    _setup("worker", "--home", str(home / "worker-part"))
    worker_settings = WorkerSettings(  # type: ignore[call-arg]
        _env_file=home / "worker-part" / "worker.env",
        listen="127.0.0.1:0",
        ollama_url=worker_ollama.url,
        metrics_listen="",
    )
    async with running_worker(worker_settings) as worker:
        gateway_settings = GatewaySettings(  # type: ignore[call-arg]
            _env_file=home / "gateway.env",
            listen="127.0.0.1:0",
            workers=[worker.address],
            ollama_url=gateway_ollama.url,
            metrics_listen="",
            openai_listen="",
            tls_cert=home / "pki" / "gateway.pem",
            tls_key=home / "pki" / "gateway-key.pem",
        )
        async with running_gateway(gateway_settings) as gateway:
            trust = grpc.ssl_channel_credentials((home / "pki" / "ca.pem").read_bytes())
            async with grpc.aio.secure_channel(gateway.address, trust) as channel:
                await wait_serving(channel, GATEWAY_SERVICE)
            outputs = []
            for recipe in recipes():
                command = (
                    recipe.replace("127.0.0.1:50051", gateway.address)
                    .replace("169.254.19.104:50052", worker.address)
                    .replace("grpcurl ", f"{GRPCURL} ", 1)
                )
                ran = await asyncio.to_thread(
                    subprocess.run,
                    command,
                    shell=True,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    env={**os.environ, "HOME": str(tmp_path)},
                )
                assert ran.returncode == 0, f"{recipe}\n{ran.stderr}"
                outputs.append(ran.stdout)
    listed, routed, node = outputs
    assert "tandem.v1.GatewayService" in listed.split()
    assert '"decision"' in routed and '"summary"' in routed
    assert json.loads(node)["model"] == "qwen3-coder-next"
