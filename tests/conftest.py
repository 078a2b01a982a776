"""Fixtures: a fake Ollama per node, and real worker/gateway servers on real ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tandem.settings import GatewaySettings, WorkerSettings
from tandem_gateway.server import RunningGateway, running_gateway
from tandem_worker.server import RunningWorker, running_worker
from tests.fake_ollama import FakeOllama, start_fake_ollama, stop_fake_ollama
from tests.helpers import GATEWAY_SERVICE, WORKER_SERVICE, judge_reply, wait_for_health

WORKER_MODEL = "qwen3-coder-next"
JUDGE_MODEL = "llama3.1:8b"


def scripted_judge(body: dict[str, Any]) -> str:
    """The gateway's fake llama3.1:8b: answers judge calls by markers in the prompt."""
    conversation = body["messages"][-1]["content"]
    if "JUDGE-SAYS-REFUSE" in conversation:
        return judge_reply("refuse", threats=["malicious_code"], difficulty="medium",
                           task_type="code_generation", reason="asks for malware")
    if "JUDGE-SAYS-GARBAGE" in conversation:
        return "I think this is fine!"
    if "JUDGE-SAYS-HIGH" in conversation:
        return judge_reply("allow", difficulty="high", task_type="code_generation")
    return judge_reply("allow")


@pytest.fixture
def worker_ollama() -> Iterator[FakeOllama]:
    fake = start_fake_ollama(FakeOllama(models=[f"{WORKER_MODEL}:latest"]))
    yield fake
    stop_fake_ollama(fake)


@pytest.fixture
def gateway_ollama() -> Iterator[FakeOllama]:
    fake = start_fake_ollama(FakeOllama(models=[JUDGE_MODEL], responder=scripted_judge))
    yield fake
    stop_fake_ollama(fake)


def worker_settings(ollama_url: str | None, **overrides: Any) -> WorkerSettings:
    values: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "ollama_url": ollama_url,
        "model": WORKER_MODEL if ollama_url else None,
        "probe_interval_s": 0.2,
        "num_ctx": 2048,
        "metrics_listen": None,
    }
    values.update(overrides)
    return WorkerSettings(_env_file=None, **values)  # type: ignore[call-arg]


def gateway_settings(ollama_url: str | None, workers: list[str], **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "ollama_url": ollama_url,
        "model": JUDGE_MODEL if ollama_url else None,
        "workers": workers,
        "probe_interval_s": 0.2,
        "worker_connect_timeout_s": 2.0,
        "num_ctx": 4096,
        "metrics_listen": None,
    }
    values.update(overrides)
    return GatewaySettings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def worker(worker_ollama: FakeOllama) -> AsyncIterator[RunningWorker]:
    async with running_worker(worker_settings(worker_ollama.url)) as running:
        await wait_for_health(running.address, WORKER_SERVICE)
        yield running


@pytest.fixture
async def gateway(gateway_ollama: FakeOllama, worker: RunningWorker) -> AsyncIterator[RunningGateway]:
    async with running_gateway(gateway_settings(gateway_ollama.url, [worker.address])) as running:
        await wait_for_health(running.address, GATEWAY_SERVICE)
        yield running
