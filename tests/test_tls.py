"""TLS on both services and mutual TLS between gateway and worker: real handshakes.

The right certificates work (client → gateway over TLS, gateway → worker over
mutual TLS); a wrong CA, an expired certificate, a client without a
certificate, a certificate for another name and a plaintext client are refused.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tandem.security.certs import CertificateAuthority
from tandem.security.client import ClientSecurity
from tandem.security.tls import channel_credentials
from tandem.settings import ClientSettings, GatewaySettings
from tandem.v1 import gateway_pb2
from tandem_gateway.server import RunningGateway, running_gateway
from tandem_worker.server import RunningWorker, running_worker
from tests.conftest import Minted, Pki, _write_node, gateway_settings, wait_serving, worker_settings
from tests.fake_ollama import FakeOllama
from tests.helpers import GATEWAY_SERVICE, GUARD_S, SERVING, WORKER_SERVICE, gateway_stub, user


def tls_channel(
    address: str,
    ca: Path,
    cert: Path | None = None,
    key: Path | None = None,
    server_name: str | None = None,
) -> grpc.aio.Channel:
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    return grpc.aio.secure_channel(address, channel_credentials(ca, cert, key), options=options)


async def health_check(channel: grpc.aio.Channel, service: str = "") -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=10
    )
    return reply.status


async def refused(channel: grpc.aio.Channel) -> grpc.StatusCode:
    """The code a health check gets over ``channel``, which must fail."""
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health_check(channel)
    return caught.value.code()


def mtls_worker_settings(pki: Pki, ollama_url: str, **overrides: object) -> dict[str, object]:
    worker = pki.bundle.worker
    values: dict[str, object] = {
        "tls_cert": worker.cert,
        "tls_key": worker.key,
        "tls_client_ca": pki.bundle.ca,
    }
    values.update(overrides)
    return values


@pytest.fixture
async def mtls_worker(pki: Pki, worker_ollama: FakeOllama) -> AsyncIterator[RunningWorker]:
    settings = worker_settings(worker_ollama.url, **mtls_worker_settings(pki, worker_ollama.url))
    async with running_worker(settings) as running:
        gateway = pki.bundle.gateway
        async with tls_channel(
            running.address, pki.bundle.ca, gateway.cert, gateway.key
        ) as channel:
            await wait_serving(channel, WORKER_SERVICE)
        yield running


def tls_gateway_settings(
    pki: Pki, ollama_url: str, worker: str, **overrides: object
) -> GatewaySettings:
    gateway = pki.bundle.gateway
    values: dict[str, object] = {
        "tls_cert": gateway.cert,
        "tls_key": gateway.key,
        "worker_tls_ca": pki.bundle.ca,
        "worker_tls_cert": gateway.cert,
        "worker_tls_key": gateway.key,
    }
    values.update(overrides)
    return gateway_settings(ollama_url, [worker], **values)


@pytest.fixture
async def tls_gateway(
    pki: Pki, gateway_ollama: FakeOllama, mtls_worker: RunningWorker
) -> AsyncIterator[RunningGateway]:
    async with running_gateway(
        tls_gateway_settings(pki, gateway_ollama.url, mtls_worker.address)
    ) as running:
        async with tls_channel(running.address, pki.bundle.ca) as channel:
            await wait_serving(channel, GATEWAY_SERVICE)
        yield running


async def route_text(
    channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...] = ()
) -> gateway_pb2.RouteSummary:
    events = [
        event
        async for event in gateway_stub(channel).Route(
            gateway_pb2.RouteRequest(
                messages=[user("Write a Python function that reverses a string")]
            ),
            timeout=GUARD_S,
            metadata=metadata,
        )
    ]
    assert events[0].HasField("decision") and events[-1].HasField("summary")
    return events[-1].summary


async def test_client_to_gateway_over_tls_and_gateway_to_worker_over_mutual_tls(
    pki: Pki, tls_gateway: RunningGateway, mtls_worker: RunningWorker
) -> None:
    async with tls_channel(tls_gateway.address, pki.bundle.ca) as channel:
        summary = await route_text(channel)
    assert summary.worker == mtls_worker.address
    assert summary.usage.completion_tokens > 0
    # The name the certificates carry works as well as the address.
    async with tls_channel(tls_gateway.address, pki.bundle.ca, server_name="localhost") as channel:
        assert await health_check(channel, GATEWAY_SERVICE) == SERVING


async def test_a_client_trusting_another_ca_is_refused(
    pki: Pki, tls_gateway: RunningGateway
) -> None:
    assert (
        await refused(tls_channel(tls_gateway.address, pki.other_ca)) == grpc.StatusCode.UNAVAILABLE
    )


async def test_a_plaintext_client_is_refused_by_a_tls_port(tls_gateway: RunningGateway) -> None:
    assert (
        await refused(grpc.aio.insecure_channel(tls_gateway.address)) == grpc.StatusCode.UNAVAILABLE
    )


async def test_the_worker_refuses_a_client_without_a_certificate(
    pki: Pki, mtls_worker: RunningWorker
) -> None:
    assert (
        await refused(tls_channel(mtls_worker.address, pki.bundle.ca))
        == grpc.StatusCode.UNAVAILABLE
    )


async def test_the_worker_refuses_a_certificate_from_another_ca(
    pki: Pki, mtls_worker: RunningWorker
) -> None:
    rogue = pki.rogue_client
    channel = tls_channel(mtls_worker.address, pki.bundle.ca, rogue.cert, rogue.key)
    assert await refused(channel) == grpc.StatusCode.UNAVAILABLE


async def test_the_worker_refuses_an_expired_client_certificate(
    pki: Pki, mtls_worker: RunningWorker
) -> None:
    expired = pki.expired_client
    channel = tls_channel(mtls_worker.address, pki.bundle.ca, expired.cert, expired.key)
    assert await refused(channel) == grpc.StatusCode.UNAVAILABLE
    # The same CA's valid certificate is accepted: the refusal was the expiry.
    gateway = pki.bundle.gateway
    async with tls_channel(
        mtls_worker.address, pki.bundle.ca, gateway.cert, gateway.key
    ) as channel:
        assert await health_check(channel) == SERVING


async def test_an_expired_server_certificate_is_refused(
    pki: Pki, worker_ollama: FakeOllama
) -> None:
    expired = pki.expired_worker
    settings = worker_settings(worker_ollama.url, tls_cert=expired.cert, tls_key=expired.key)
    async with running_worker(settings) as running:
        assert (
            await refused(tls_channel(running.address, pki.bundle.ca))
            == grpc.StatusCode.UNAVAILABLE
        )


async def test_a_certificate_for_another_name_is_refused_unless_that_name_is_expected(
    pki: Pki, worker_ollama: FakeOllama, tmp_path: Path
) -> None:
    ca = CertificateAuthority.load(pki.bundle.ca, pki.bundle.ca_key)
    elsewhere = _write_node(tmp_path, "elsewhere", ca.issue("tandem-worker", ["worker.example"]))
    settings = worker_settings(worker_ollama.url, tls_cert=elsewhere.cert, tls_key=elsewhere.key)
    async with running_worker(settings) as running:
        assert (
            await refused(tls_channel(running.address, pki.bundle.ca))
            == grpc.StatusCode.UNAVAILABLE
        )
        async with tls_channel(
            running.address, pki.bundle.ca, server_name="worker.example"
        ) as channel:
            assert await health_check(channel) == SERVING


async def test_a_gateway_without_its_client_certificate_cannot_use_an_mtls_worker(
    pki: Pki, gateway_ollama: FakeOllama, mtls_worker: RunningWorker
) -> None:
    settings = tls_gateway_settings(
        pki, gateway_ollama.url, mtls_worker.address, worker_tls_cert=None, worker_tls_key=None
    )
    async with running_gateway(settings) as running:
        async with tls_channel(running.address, pki.bundle.ca) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await route_text(channel)
            assert await health_check(channel, GATEWAY_SERVICE) != SERVING
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert mtls_worker.address in (caught.value.details() or "")


async def test_tokens_and_mutual_tls_together_as_on_the_macs(
    pki: Pki, gateway_ollama: FakeOllama, worker_ollama: FakeOllama, tmp_path: Path
) -> None:
    agent = Minted.new("agent-1", "gateway")
    link = Minted.new("gateway", "worker")
    token_file = tmp_path / "gateway.token"
    token_file.write_text(link.token + "\n")
    tokens_file = tmp_path / "worker-tokens"
    tokens_file.write_text(f"# the worker accepts only its gateway\n{link.line}\n")
    worker = worker_settings(
        worker_ollama.url,
        auth_tokens_file=tokens_file,
        **mtls_worker_settings(pki, worker_ollama.url),
    )
    async with running_worker(worker) as running_w:
        settings = tls_gateway_settings(
            pki,
            gateway_ollama.url,
            running_w.address,
            auth_tokens=[agent.line],
            worker_token_file=token_file,
        )
        agent_file = tmp_path / "agent.token"
        agent_file.write_text(agent.token)
        client = ClientSecurity.from_settings(
            ClientSettings(  # type: ignore[call-arg]
                _env_file=None, token_file=agent_file, tls_ca=pki.bundle.ca
            )
        )
        assert client.credentials is not None
        async with running_gateway(settings) as running_g:
            async with grpc.aio.secure_channel(running_g.address, client.credentials) as channel:
                await wait_serving(channel, GATEWAY_SERVICE)
                summary = await route_text(channel, client.metadata)
                assert summary.worker == running_w.address
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await route_text(channel)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_tandem_certs_writes_the_mac_bundle_and_keeps_keys_private(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    command = [sys.executable, "-m", "tandem.cli.main", "certs", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=GUARD_S, check=False)
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        ["ca.pem", "ca-key.pem", "gateway.pem", "gateway-key.pem", "worker.pem", "worker-key.pem"]
    )
    for key in ("ca-key.pem", "gateway-key.pem", "worker-key.pem"):
        assert (out / key).stat().st_mode & 0o077 == 0, f"{key} is readable by others"
    worker = x509.load_pem_x509_certificate((out / "worker.pem").read_bytes())
    sans = worker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "169.254.19.104" in [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    again = subprocess.run(command, capture_output=True, text=True, timeout=GUARD_S, check=False)
    assert again.returncode == 1 and "--force" in again.stderr
