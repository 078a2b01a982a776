"""Bearer tokens through real channels: who may call what, and what the logs never say."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tandem.security.server import exposure_warnings
from tandem.v1 import gateway_pb2, worker_pb2
from tandem_gateway.server import RunningGateway, running_gateway
from tandem_worker.server import RunningWorker, running_worker
from tests.conftest import Minted, gateway_settings, worker_settings
from tests.fake_ollama import FakeOllama
from tests.helpers import (
    GATEWAY_SERVICE,
    GUARD_S,
    SERVING,
    WORKER_SERVICE,
    gateway_stub,
    user,
    wait_for_health,
    worker_stub,
)

HELLO = gateway_pb2.RouteRequest(messages=[user("Write a Python function that reverses a string")])
GENERATE = worker_pb2.GenerateRequest(messages=[user("hello")])


@dataclass(frozen=True)
class Clients:
    agent: Minted  # may call the gateway
    dashboard: Minted  # status only
    gateway: Minted  # the gateway's own token, for the worker


@pytest.fixture
def clients() -> Clients:
    return Clients(
        Minted.new("agent-1", "gateway"),
        Minted.new("dashboard", "status"),
        Minted.new("gateway", "worker"),
    )


@pytest.fixture
async def auth_worker(worker_ollama: FakeOllama, clients: Clients) -> AsyncIterator[RunningWorker]:
    async with running_worker(
        worker_settings(worker_ollama.url, auth_tokens=[clients.gateway.line])
    ) as running:
        await wait_for_health(running.address, WORKER_SERVICE)
        yield running


@pytest.fixture
async def auth_gateway(
    gateway_ollama: FakeOllama, auth_worker: RunningWorker, clients: Clients
) -> AsyncIterator[RunningGateway]:
    settings = gateway_settings(
        gateway_ollama.url,
        [auth_worker.address],
        auth_tokens=[clients.agent.line, clients.dashboard.line],
        worker_token=clients.gateway.token,
    )
    async with running_gateway(settings) as running:
        await wait_for_health(running.address, GATEWAY_SERVICE)
        yield running


async def route(
    address: str,
    metadata: tuple[tuple[str, str], ...] = (),
    request: gateway_pb2.RouteRequest = HELLO,
) -> str:
    async with grpc.aio.insecure_channel(address) as channel:
        events = [
            e
            async for e in gateway_stub(channel).Route(request, timeout=GUARD_S, metadata=metadata)
        ]
    return "".join(e.delta.text for e in events if e.HasField("delta"))


async def route_error(
    address: str, metadata: tuple[tuple[str, str], ...] = ()
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await route(address, metadata)
    return caught.value


async def test_a_listed_token_routes_end_to_end(
    auth_gateway: RunningGateway, clients: Clients, worker_ollama: FakeOllama
) -> None:
    assert await route(auth_gateway.address, clients.agent.metadata) == worker_ollama.reply


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Bearer tdm_not-a-token-anyone-was-given"),),
        (("authorization", "Basic YWdlbnQ6cGFzc3dvcmQ="),),
        (("authorization", "Bearer"),),
        (("authorization", "bearer  " + "x" * 4000),),
    ],
    ids=["none", "unknown", "basic-scheme", "empty", "huge"],
)
async def test_a_missing_or_bad_token_is_unauthenticated(
    auth_gateway: RunningGateway, worker_ollama: FakeOllama, metadata: tuple[tuple[str, str], ...]
) -> None:
    before = len(worker_ollama.generation_requests())
    error = await route_error(auth_gateway.address, metadata)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "Bearer <token>" in (error.details() or "")
    assert len(worker_ollama.generation_requests()) == before


async def test_a_token_not_allowed_the_method_is_permission_denied(
    auth_gateway: RunningGateway, clients: Clients
) -> None:
    error = await route_error(auth_gateway.address, clients.dashboard.metadata)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "dashboard" in (error.details() or "") and "Route" in (error.details() or "")
    async with grpc.aio.insecure_channel(auth_gateway.address) as channel:
        status = await gateway_stub(channel).GetClusterStatus(
            gateway_pb2.GetClusterStatusRequest(),
            timeout=GUARD_S,
            metadata=clients.dashboard.metadata,
        )
    assert status.ready


async def test_health_stays_open_without_a_token(
    auth_gateway: RunningGateway, auth_worker: RunningWorker
) -> None:
    for address, service in (
        (auth_gateway.address, GATEWAY_SERVICE),
        (auth_worker.address, WORKER_SERVICE),
    ):
        async with grpc.aio.insecure_channel(address) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=GUARD_S
            )
        assert reply.status == SERVING


async def list_services(address: str, metadata: tuple[tuple[str, str], ...] = ()) -> list[str]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        replies = [
            r
            async for r in stub.ServerReflectionInfo(
                iter([request]), timeout=GUARD_S, metadata=metadata
            )
        ]
    return [s.name for s in replies[0].list_services_response.service]


async def test_reflection_is_open_by_default_and_closable(
    auth_gateway: RunningGateway,
    gateway_ollama: FakeOllama,
    auth_worker: RunningWorker,
    clients: Clients,
) -> None:
    assert GATEWAY_SERVICE in await list_services(auth_gateway.address)
    settings = gateway_settings(
        gateway_ollama.url,
        [auth_worker.address],
        auth_tokens=[clients.agent.line],
        open_reflection=False,
    )
    async with running_gateway(settings) as closed:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await list_services(closed.address)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # An agent token is not a reflection token either.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await list_services(closed.address, clients.agent.metadata)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_the_worker_accepts_only_the_gateways_token(
    auth_worker: RunningWorker, clients: Clients
) -> None:
    async with grpc.aio.insecure_channel(auth_worker.address) as channel:
        stub = worker_stub(channel)
        for metadata in ((), clients.agent.metadata, clients.dashboard.metadata):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in stub.Generate(GENERATE, timeout=GUARD_S, metadata=metadata):
                    pass
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        events = [
            e
            async for e in stub.Generate(
                GENERATE, timeout=GUARD_S, metadata=clients.gateway.metadata
            )
        ]
    assert events[-1].HasField("summary")


async def test_a_gateway_with_the_wrong_worker_token_says_so(
    gateway_ollama: FakeOllama, auth_worker: RunningWorker, clients: Clients
) -> None:
    settings = gateway_settings(
        gateway_ollama.url,
        [auth_worker.address],
        auth_tokens=[clients.agent.line],
        worker_token=clients.agent.token,
    )
    async with running_gateway(settings) as running:
        link = running.cluster.pool.links[0]
        await running.cluster.pool.changes.wait_until(lambda: bool(link.credentials_error), GUARD_S)
        error = await route_error(running.address, clients.agent.metadata)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "refuses the gateway's credentials" in (error.details() or "")


async def test_tokens_minted_by_the_cli_are_accepted_from_a_tokens_file(
    gateway_ollama: FakeOllama, worker_ollama: FakeOllama, tmp_path: Path
) -> None:
    def mint(name: str, scope: str, token_out: Path) -> str:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "tandem.cli.main",
                "token",
                name,
                "--scope",
                scope,
                "--token-out",
                str(token_out),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=GUARD_S,
        )
        return result.stdout.strip()

    link_token = tmp_path / "gateway.token"
    agent_token = tmp_path / "agent.token"
    (tmp_path / "worker-tokens").write_text(mint("gateway", "worker", link_token) + "\n")
    (tmp_path / "gateway-tokens").write_text(mint("agent-7", "route", agent_token) + "\n")
    assert oct(link_token.stat().st_mode & 0o777) == "0o600"
    worker = worker_settings(worker_ollama.url, auth_tokens_file=tmp_path / "worker-tokens")
    async with running_worker(worker) as running_w:
        settings = gateway_settings(
            gateway_ollama.url,
            [running_w.address],
            auth_tokens_file=tmp_path / "gateway-tokens",
            worker_token_file=link_token,
        )
        async with running_gateway(settings) as running_g:
            await wait_for_health(running_g.address, GATEWAY_SERVICE)
            metadata = (("authorization", f"Bearer {agent_token.read_text().strip()}"),)
            assert await route(running_g.address, metadata) == worker_ollama.reply


async def test_logs_carry_neither_prompt_text_nor_tokens(
    auth_gateway: RunningGateway, clients: Clients, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    prompt = "Refactor the function quokka_marmalade_7731 to be iterative"
    request = gateway_pb2.RouteRequest(messages=[user(prompt)])
    await route(auth_gateway.address, clients.agent.metadata, request)
    await route_error(
        auth_gateway.address, (("authorization", "Bearer tdm_wrong_token_value_123456"),)
    )
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert caplog.records, "nothing was logged at all"
    for secret in (
        "quokka_marmalade_7731",
        clients.agent.token,
        clients.gateway.token,
        "tdm_wrong_token_value",
    ):
        assert secret not in text


async def test_log_prompts_is_a_debug_switch_that_still_redacts_secrets(
    gateway_ollama: FakeOllama, worker: RunningWorker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    secret = "AKIAIOSFODNN7EXAMPLE"
    request = gateway_pb2.RouteRequest(
        messages=[user(f"Why does boto reject the key {secret} in my script?")]
    )
    settings = gateway_settings(gateway_ollama.url, [worker.address], log_prompts=True)
    async with running_gateway(settings) as running:
        await wait_for_health(running.address, GATEWAY_SERVICE)
        await route(running.address, request=request)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "Why does boto reject the key [REDACTED]" in text
    assert secret not in text
    assert "--log-prompts is ON" in text


def test_listening_beyond_loopback_without_authentication_is_flagged() -> None:
    assert exposure_warnings("127.0.0.1:50051", auth=False, tls=False, role="gateway") == []
    assert exposure_warnings("localhost:50051", auth=False, tls=False, role="gateway") == []
    exposed = exposure_warnings("169.254.19.104:50052", auth=False, tls=False, role="worker")
    assert any("WITHOUT AUTHENTICATION" in w for w in exposed)
    assert any("WITHOUT TLS" in w for w in exposed)
    everywhere = exposure_warnings("0.0.0.0:50051", auth=True, tls=False, role="gateway")
    assert (
        len(everywhere) == 1
        and "ALL INTERFACES" in everywhere[0]
        and "bearer tokens" in everywhere[0]
    )
    assert exposure_warnings("169.254.19.104:50052", auth=True, tls=True, role="worker") == []


async def test_a_server_on_all_interfaces_without_auth_warns_loudly(
    worker_ollama: FakeOllama, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with running_worker(worker_settings(worker_ollama.url, listen="0.0.0.0:0")):
        pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("ALL INTERFACES WITHOUT AUTHENTICATION" in w for w in warnings)
