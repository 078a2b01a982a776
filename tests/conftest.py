"""Fixtures: a fake Ollama per node, and real worker/gateway servers on real ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tandem.security.certs import (
    Bundle,
    CertificateAuthority,
    Issued,
    NodeFiles,
    generate_bundle,
    write_file,
)
from tandem.security.tokens import mint_token, token_line
from tandem.settings import GatewaySettings, WorkerSettings
from tandem_gateway.server import RunningGateway, running_gateway
from tandem_worker.server import RunningWorker, running_worker
from tests.fake_ollama import FakeOllama, start_fake_ollama, stop_fake_ollama
from tests.helpers import (
    GATEWAY_SERVICE,
    GUARD_S,
    SERVING,
    WORKER_SERVICE,
    judge_reply,
    wait_for_health,
)

# Set by .ci/run: a skipped test fails instead, so a module skipped for want of root,
# network namespaces or ../shared/evals cannot silently drop its claims from CI.
REQUIRE_ALL_ENV = "TANDEM_REQUIRE_ALL"

WORKER_MODEL = "qwen3-coder-next"
JUDGE_MODEL = "llama3.1:8b"


def scripted_judge(body: dict[str, Any]) -> str:
    """The gateway's fake llama3.1:8b: answers judge calls by markers in the prompt."""
    conversation = body["messages"][-1]["content"]
    if "JUDGE-SAYS-REFUSE" in conversation:
        return judge_reply(
            "refuse",
            threats=["malicious_code"],
            difficulty="medium",
            task_type="code_generation",
            reason="asks for malware",
        )
    if "JUDGE-SAYS-GARBAGE" in conversation:
        return "I think this is fine!"
    if "JUDGE-SAYS-HIGH" in conversation:
        return judge_reply("allow", difficulty="high", task_type="code_generation")
    return judge_reply("allow")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    required = os.environ.get(REQUIRE_ALL_ENV) == "1"
    if report.skipped and not hasattr(report, "wasxfail") and required:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but {REQUIRE_ALL_ENV}=1 requires every test to run: {reason}"


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


def gateway_settings(
    ollama_url: str | None, workers: list[str], **overrides: Any
) -> GatewaySettings:
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
async def gateway(
    gateway_ollama: FakeOllama, worker: RunningWorker
) -> AsyncIterator[RunningGateway]:
    async with running_gateway(gateway_settings(gateway_ollama.url, [worker.address])) as running:
        await wait_for_health(running.address, GATEWAY_SERVICE)
        yield running


# --- Security: certificates, tokens and channels for tests/test_auth*, test_tls*,
# test_limits* and test_hostile* (real TLS, real tokens, real servers).


@dataclass(frozen=True)
class Pki:
    """A CA with gateway/worker certificates (tandem certs' layout), and the bad
    certificates the TLS tests present: another CA's, and expired ones."""

    bundle: Bundle
    other_ca: Path
    rogue_client: NodeFiles  # signed by the other CA
    expired_worker: NodeFiles  # signed by the right CA, expired
    expired_client: NodeFiles


def _write_node(directory: Path, name: str, issued: Issued) -> NodeFiles:
    files = NodeFiles(directory / f"{name}.pem", directory / f"{name}-key.pem")
    write_file(files.cert, issued.cert_pem)
    write_file(files.key, issued.key_pem, private=True)
    return files


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    bundle = generate_bundle(directory)
    ca = CertificateAuthority.load(bundle.ca, bundle.ca_key)
    other = CertificateAuthority.create("Someone else's CA")
    write_file(directory / "other-ca.pem", other.cert_pem)
    long_ago = datetime.now(UTC) - timedelta(days=30)
    return Pki(
        bundle=bundle,
        other_ca=directory / "other-ca.pem",
        rogue_client=_write_node(directory, "rogue", other.issue("tandem-gateway")),
        expired_worker=_write_node(
            directory, "expired-worker", ca.issue("tandem-worker", days=1, not_before=long_ago)
        ),
        expired_client=_write_node(
            directory, "expired-client", ca.issue("tandem-gateway", days=1, not_before=long_ago)
        ),
    )


@dataclass(frozen=True)
class Minted:
    """A token and the tokens-file line that accepts it."""

    name: str
    token: str
    line: str

    @classmethod
    def new(cls, name: str, *scopes: str) -> Minted:
        token = mint_token()
        return cls(name, token, token_line(name, token, scopes))

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)


async def wait_serving(channel: grpc.aio.Channel, service: str) -> None:
    """Follow Health/Watch on ``channel`` until ``service`` is SERVING (any credentials)."""
    stub = health_pb2_grpc.HealthStub(channel)
    async with asyncio.timeout(GUARD_S):
        call = stub.Watch(health_pb2.HealthCheckRequest(service=service), wait_for_ready=True)
        try:
            async for reply in call:
                if reply.status == SERVING:
                    return
        finally:
            call.cancel()  # closing the channel alone would leave the server's watch open


@pytest.fixture(scope="module")
def module_ollamas() -> Iterator[tuple[FakeOllama, FakeOllama]]:
    """A judge and a worker fake Ollama shared by one module's long-lived servers."""
    judge = start_fake_ollama(FakeOllama(models=[JUDGE_MODEL], responder=scripted_judge))
    model = start_fake_ollama(FakeOllama(models=[f"{WORKER_MODEL}:latest"]))
    yield judge, model
    stop_fake_ollama(judge)
    stop_fake_ollama(model)


async def nothing_left_running(
    gateway: RunningGateway, worker: RunningWorker, fake: FakeOllama
) -> None:
    """No route at the gateway, no generation at the worker, no stream on the fake Ollama."""
    assert gateway.service is not None
    assert await gateway.service.routes.wait_idle(GUARD_S), "a route is still running"
    assert await worker.monitor.calls.wait_idle(GUARD_S), "a generation is still running"
    assert await asyncio.to_thread(fake.no_generation_running.wait, GUARD_S), "Ollama still streams"


@contextlib.contextmanager
def bounded_memory_growth(limit_bytes: int) -> Iterator[None]:
    """Fail when this process's RSS grew by ``limit_bytes`` or more over the block."""
    baseline = psutil.Process().memory_info().rss
    yield
    growth = psutil.Process().memory_info().rss - baseline
    assert growth < limit_bytes, f"memory grew by {growth / 2**20:.0f} MiB"
