"""Done-when for the Mac deployment, walked as a new user on Linux: `tandem setup` both
roles into temporary homes, copy the worker's part as the printed command says, start
both nodes from the generated env files, then `tandem ask` and the `openai` package get
answers with mutual TLS and tokens on the worker link and a token on the gateway."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import openai
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.fake_ollama import FakeOllama
from tests.helpers import GATEWAY_SERVICE, GUARD_S, WORKER_SERVICE, wait_for_health

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tandem(*argv: str, timeout: float = GUARD_S) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: a fresh process with no TANDEM_* in its environment."""
    return subprocess.run(
        [sys.executable, "-m", "tandem.cli.main", *argv],
        cwd=ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")}


class Nodes:
    """The two long-running services, stopped (SIGTERM, then kill) at the end."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, env_file: Path, role: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "tandem.cli.main", "--env-file", str(env_file), role],
            cwd=ROOT,
            env=_clean_env(),
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def nodes() -> Iterator[Nodes]:
    running = Nodes()
    yield running
    running.stop()


async def _health(
    address: str, service: str, credentials: grpc.ChannelCredentials | None = None
) -> grpc.aio.AioRpcError | None:
    channel = (
        grpc.aio.secure_channel(address, credentials)
        if credentials
        else grpc.aio.insecure_channel(address)
    )
    async with channel:
        try:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=5
            )
        except grpc.aio.AioRpcError as exc:
            return exc
    return None


async def test_a_new_user_sets_up_both_macs_and_gets_answers(
    tmp_path: Path,
    nodes: Nodes,
    worker_ollama: FakeOllama,
    gateway_ollama: FakeOllama,
) -> None:
    macbook, macmini = tmp_path / "macbook" / ".tandem", tmp_path / "macmini" / ".tandem"
    worker, gateway, openai_port = free_port(), free_port(), free_port()
    worker_address, gateway_address = f"127.0.0.1:{worker}", f"127.0.0.1:{gateway}"
    worker_ollama.reply = "def reverse(s): return s[::-1]"

    # 1. The MacBook.
    made = await asyncio.to_thread(
        tandem,
        "setup",
        "gateway",
        "--home",
        str(macbook),
        "--worker",
        worker_address,
        "--listen",
        gateway_address,
        "--openai-listen",
        f"127.0.0.1:{openai_port}",
        "--ollama-url",
        gateway_ollama.url,
        "--metrics-listen",
        "",
    )
    assert made.returncode == 0, made.stderr
    copy = next(line.split() for line in made.stdout.splitlines() if "rsync" in line)
    assert copy[:2] == ["rsync", "-a"] and copy[2] == f"{macbook}/worker-part/"

    # 2. Copy the worker's part as the printed rsync would (no SSH here).
    shutil.copytree(shlex.split(copy[2])[0], macmini, dirs_exist_ok=True)

    # 3. The Mac Mini.
    made = await asyncio.to_thread(
        tandem,
        "setup",
        "worker",
        "--home",
        str(macmini),
        "--listen",
        worker_address,
        "--ollama-url",
        worker_ollama.url,
        "--metrics-listen",
        "",
    )
    assert made.returncode == 0, made.stderr

    # 4. Start both from the generated env files.
    nodes.start(macmini / "worker.env", "worker")
    nodes.start(macbook / "gateway.env", "gateway")
    await wait_for_health(gateway_address, GATEWAY_SERVICE)

    # 5. tandem ask, with the client settings of the gateway's env file.
    asked = await asyncio.to_thread(
        tandem, "--env-file", str(macbook / "gateway.env"), "ask", "Reverse a string in Python"
    )
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.strip() == "def reverse(s): return s[::-1]"

    # 6. The OpenAI endpoint the gateway process serves, with the openai package.
    async with openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{openai_port}/v1", api_key="unused"
    ) as client:
        completion = await client.chat.completions.create(
            model="tandem", messages=[{"role": "user", "content": "Reverse a string"}]
        )
    assert completion.choices[0].message.content == "def reverse(s): return s[::-1]"

    # 7. It was secured: the worker speaks TLS only, and the gateway wants a token.
    plaintext = await _health(worker_address, WORKER_SERVICE)
    assert plaintext is not None and plaintext.code() == grpc.StatusCode.UNAVAILABLE
    trusting = grpc.ssl_channel_credentials((macmini / "pki" / "ca.pem").read_bytes())
    no_client_cert = await _health(worker_address, WORKER_SERVICE, trusting)
    assert no_client_cert is not None and no_client_cert.code() == grpc.StatusCode.UNAVAILABLE
    anonymous = await asyncio.to_thread(
        tandem, "ask", "--gateway", gateway_address, "Reverse a string"
    )
    assert anonymous.returncode == 1 and "UNAUTHENTICATED" in anonymous.stderr
    assert worker_ollama.generation_requests()  # the answers came from the worker's model
    assert re.search(r"TANDEM_WORKER_TLS_CLIENT_CA=/\S+", (macmini / "worker.env").read_text())
