"""Hostile bytes and hostile clients on the gRPC ports, over raw sockets and real channels.

Random bytes, HTTP/1.1, TLS records on a plaintext port, plaintext HTTP/2 on a
TLS port, broken HTTP/2 frames, a ping flood, a silent connection, a client
opening many streams and never reading. After each: health SERVING, a normal
request succeeds, nothing is left running, memory has not run away.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tandem.security.tls import channel_credentials
from tandem.v1 import common_pb2, gateway_pb2, worker_pb2
from tandem_gateway.server import RunningGateway, running_gateway
from tandem_worker.server import RunningWorker, running_worker
from tests.conftest import (
    Minted,
    Pki,
    bounded_memory_growth,
    gateway_settings,
    nothing_left_running,
    worker_settings,
)
from tests.fake_ollama import FakeOllama
from tests.helpers import (
    GATEWAY_SERVICE,
    GUARD_S,
    SERVING,
    WORKER_SERVICE,
    gateway_stub,
    health_status,
    user,
    wait_for_health,
    worker_stub,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_NAMES = {
    0: "DATA",
    1: "HEADERS",
    3: "RST_STREAM",
    4: "SETTINGS",
    6: "PING",
    7: "GOAWAY",
    8: "WINDOW_UPDATE",
}
ENHANCE_YOUR_CALM = 0xB
# What a gRPC server writes on every new plaintext connection before reading a byte.
SERVER_PREFACE = ["SETTINGS", "WINDOW_UPDATE"]
SETTINGS_ACK = "SETTINGS"
RSS_GROWTH_LIMIT = 400 * 1024 * 1024
IDLE_S = 2.0


def frame(
    kind: int, payload: bytes = b"", *, flags: int = 0, stream: int = 0, length: int | None = None
) -> bytes:
    size = len(payload) if length is None else length
    return struct.pack(">I", size)[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


SETTINGS = frame(4)
HOSTILE: dict[str, bytes] = {
    "random bytes (64 KiB)": os.urandom(64 * 1024),
    "random bytes (7)": os.urandom(7),
    "HTTP/1.1 GET": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "HTTP/1.1 h2c upgrade": b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
    b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    "HTTP/1.1 with 200 KiB of headers": b"POST /tandem.v1.GatewayService/Route HTTP/1.1\r\n"
    + b"X-A: "
    + b"a" * 200_000
    + b"\r\n\r\n",
    "TLS ClientHello on a plaintext port": bytes.fromhex("16030100a5010000a10303")
    + os.urandom(160),
    "HTTP/2 preface, then random bytes": PREFACE + os.urandom(4096),
    "HTTP/2 HEADERS with garbage HPACK": PREFACE
    + SETTINGS
    + frame(1, os.urandom(64), flags=0x4 | 0x1, stream=1),
    "HTTP/2 frame claiming 16 MiB, truncated": PREFACE
    + SETTINGS
    + frame(0, b"x" * 10, stream=1, length=(1 << 24) - 1),
    "HTTP/2 DATA on stream 0": PREFACE + SETTINGS + frame(0, b"hello", stream=0),
    "HTTP/2 SETTINGS with a bad window size": PREFACE + frame(4, struct.pack(">HI", 4, 0xFFFFFFFF)),
}
# What comes back after the server's preface, then the server closes the connection.
# Bytes that are not HTTP/2 (or an invalid SETTINGS) get nothing more. A well-formed
# client preface gets its SETTINGS acknowledged; undecodable HPACK gets an error
# status for stream 1 (HEADERS, trailers only) and RST_STREAM; DATA on stream 0 gets
# a GOAWAY. No DATA frame ever: no call was answered.
HOSTILE_REPLY: dict[str, list[str]] = {
    "HTTP/2 HEADERS with garbage HPACK": [SETTINGS_ACK, "HEADERS", "RST_STREAM"],
    "HTTP/2 frame claiming 16 MiB, truncated": [SETTINGS_ACK],
    "HTTP/2 DATA on stream 0": [SETTINGS_ACK, "WINDOW_UPDATE", "PING", "GOAWAY"],
}


@dataclass
class Answer:
    """What the server sent back, and whether it closed the connection."""

    frames: list[tuple[str, int]] = field(default_factory=list)
    closed: bool = False
    raw: bytes = b""

    @property
    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.frames]

    @property
    def goaway_code(self) -> int | None:
        for offset in _frame_offsets(self.raw):
            if self.raw[offset + 3] == 7 and len(self.raw) >= offset + 17:
                return struct.unpack(">I", self.raw[offset + 13 : offset + 17])[0]
        return None

    @property
    def goaway_debug(self) -> str:
        """The debug text of the first GOAWAY (after last-stream-id and error code)."""
        for offset in _frame_offsets(self.raw):
            if self.raw[offset + 3] == 7:
                end = offset + 9 + int.from_bytes(self.raw[offset : offset + 3], "big")
                return self.raw[offset + 17 : end].decode(errors="replace")
        return ""


def _frame_offsets(data: bytes) -> Iterator[int]:
    offset = 0
    while offset + 9 <= len(data):
        yield offset
        offset += 9 + int.from_bytes(data[offset : offset + 3], "big")


async def send(address: str, payload: bytes, *, then_wait_for_close: bool = True) -> Answer:
    """Send ``payload`` on a raw TCP connection; read until the server closes it."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    answer = Answer()
    try:
        writer.write(payload)
        await writer.drain()
    except ConnectionError:
        answer.closed = True
    try:
        async with asyncio.timeout(GUARD_S):
            while chunk := await reader.read(65536):
                answer.raw += chunk
        answer.closed = True
    except ConnectionError:
        answer.closed = True
    finally:
        writer.close()
    answer.frames = [
        (FRAME_NAMES.get(answer.raw[o + 3], str(answer.raw[o + 3])), o)
        for o in _frame_offsets(answer.raw)
    ]
    return answer


@dataclass
class Nodes:
    gateway: RunningGateway
    worker: RunningWorker
    tls_worker: RunningWorker
    worker_ollama: FakeOllama
    attacker: Minted
    client: Minted
    ca: Path


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def nodes(module_ollamas: tuple[FakeOllama, FakeOllama], pki: Pki) -> AsyncIterator[Nodes]:
    judge, model = module_ollamas
    attacker, client = Minted.new("attacker", "gateway"), Minted.new("client", "gateway")
    hygiene = {"max_connection_idle_s": IDLE_S}
    node = pki.bundle.worker
    async with (
        # A deep queue, so the gateway's per-client limit (32) is what stops the attacker.
        running_worker(worker_settings(model.url, max_queued_generations=64, **hygiene)) as worker,
        running_worker(
            worker_settings(model.url, tls_cert=node.cert, tls_key=node.key, **hygiene)
        ) as tls_worker,
    ):
        await wait_for_health(worker.address, WORKER_SERVICE)
        settings = gateway_settings(
            judge.url, [worker.address], auth_tokens=[attacker.line, client.line], **hygiene
        )
        async with running_gateway(settings) as gateway:
            await wait_for_health(gateway.address, GATEWAY_SERVICE)
            found = Nodes(gateway, worker, tls_worker, model, attacker, client, pki.bundle.ca)
            with bounded_memory_growth(RSS_GROWTH_LIMIT):
                yield found
                await still_fine(found)


async def still_fine(nodes: Nodes) -> None:
    assert await health_status(nodes.gateway.address, GATEWAY_SERVICE) == SERVING
    assert await health_status(nodes.worker.address, WORKER_SERVICE) == SERVING
    async with grpc.aio.insecure_channel(nodes.gateway.address) as channel:
        events = [
            e
            async for e in gateway_stub(channel).Route(
                gateway_pb2.RouteRequest(messages=[user("Write hello world in C")]),
                timeout=GUARD_S,
                metadata=nodes.client.metadata,
            )
        ]
    assert "".join(e.delta.text for e in events if e.HasField("delta")) == nodes.worker_ollama.reply
    await nothing_left_running(nodes.gateway, nodes.worker, nodes.worker_ollama)


@pytest.mark.parametrize("target", ["gateway", "worker"])
@pytest.mark.parametrize("name", list(HOSTILE))
async def test_garbage_on_a_plaintext_port_is_dropped(nodes: Nodes, name: str, target: str) -> None:
    address = nodes.gateway.address if target == "gateway" else nodes.worker.address
    answer = await send(address, HOSTILE[name])
    assert answer.closed, f"{name}: the server kept the connection open"
    assert answer.kinds == SERVER_PREFACE + HOSTILE_REPLY.get(name, []), name
    await still_fine(nodes)


@pytest.mark.parametrize(
    "name,payload",
    [
        ("plaintext HTTP/2 on a TLS port", PREFACE + SETTINGS),
        ("HTTP/1.1 on a TLS port", HOSTILE["HTTP/1.1 GET"]),
        ("random bytes on a TLS port", HOSTILE["random bytes (64 KiB)"]),
        ("a TLS record claiming 16 KiB, truncated", bytes.fromhex("1603014000") + os.urandom(100)),
    ],
)
async def test_garbage_on_a_tls_port_is_dropped(nodes: Nodes, name: str, payload: bytes) -> None:
    answer = await send(nodes.tls_worker.address, payload)
    assert answer.closed, f"{name}: the server kept the connection open"
    # The handshake fails before any record is written: no TLS alert, no HTTP/2.
    assert answer.raw == b"", f"{name}: {answer.raw[:32].hex()}"
    # The worker the garbage went to still serves over TLS: health, then a generation.
    async with grpc.aio.secure_channel(
        nodes.tls_worker.address, channel_credentials(nodes.ca)
    ) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=WORKER_SERVICE), timeout=GUARD_S
        )
        assert reply.status == SERVING
        request = worker_pb2.GenerateRequest(messages=[user("Write hello world in C")])
        events = [e async for e in worker_stub(channel).Generate(request, timeout=GUARD_S)]
    assert "".join(e.delta.text for e in events if e.HasField("delta")) == nodes.worker_ollama.reply
    assert events[-1].HasField("summary")


async def test_a_ping_flood_is_told_to_calm_down(nodes: Nodes) -> None:
    pings = b"".join(frame(6, struct.pack(">Q", n)) for n in range(50))
    answer = await send(nodes.gateway.address, PREFACE + SETTINGS + pings)
    assert answer.closed
    assert answer.goaway_code == ENHANCE_YOUR_CALM, answer.frames
    await still_fine(nodes)


async def test_a_silent_connection_is_closed(nodes: Nodes) -> None:
    """A client that connects and sends nothing (or only the preface) is closed
    by the idle timeout, not kept forever."""
    for payload, acknowledged in ((b"", []), (PREFACE + SETTINGS, [SETTINGS_ACK])):
        answer = await send(nodes.gateway.address, payload)
        assert answer.closed
        assert answer.kinds == SERVER_PREFACE + acknowledged + ["GOAWAY"], answer.kinds
        assert "idle" in answer.goaway_debug, answer.goaway_debug
    await still_fine(nodes)


async def test_many_streams_never_read_are_capped_and_released(nodes: Nodes) -> None:
    """One client opens more Route streams than it may and reads nothing past the first
    message (the decision, or the refusal): far more than any buffer is left unread."""
    words = 50_000  # about 50 MB per answer; the buffers between here and Ollama hold ~12 MB
    nodes.worker_ollama.reply = " ".join(["y" * 999] * words)
    nodes.worker_ollama.backpressured.clear()
    try:
        channel = grpc.aio.insecure_channel(nodes.gateway.address)
        stub = gateway_stub(channel)
        # max_tokens set, or the gateway's default for the task's difficulty (1024
        # tokens, about 1 MB here) would cut every answer to a size buffers absorb.
        request = gateway_pb2.RouteRequest(
            messages=[user("Write a long essay")],
            options=common_pb2.GenerationOptions(max_tokens=words),
        )
        calls = [
            stub.Route(request, timeout=GUARD_S * 2, metadata=nodes.attacker.metadata)
            for _ in range(40)
        ]
        admitted, refused = 0, []
        for call in calls:
            try:
                first = await call.read()
            except grpc.aio.AioRpcError as exc:
                refused.append(exc)
            else:
                assert first.HasField("decision")
                admitted += 1
        limit = 32  # the gateway's default max_streams_per_client
        assert admitted == limit
        assert all(e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for e in refused)
        assert "already has 32 calls open" in (refused[0].details() or "")
        # The worker holds them within its admission limits: one generating (its
        # stream stalled by flow control), the rest queued; nothing else runs.
        await nodes.worker.admission.wait_until(
            lambda a: a.running == 1 and a.queued == limit - 1, GUARD_S
        )
        stalled = await asyncio.to_thread(nodes.worker_ollama.backpressured.wait, GUARD_S)
        assert stalled, "the unread stream never pushed back on Ollama"
        # While the attacker sits on its streams, the gateway and worker still answer probes.
        assert await health_status(nodes.gateway.address, GATEWAY_SERVICE) == SERVING
        assert await health_status(nodes.worker.address, WORKER_SERVICE) == SERVING
        # The attacker goes away. grpc.aio's channel.close() only cancels calls some task
        # is awaiting, so cancel each one, as closing its connection would.
        for call in calls:
            call.cancel()
        await channel.close()
        await nothing_left_running(nodes.gateway, nodes.worker, nodes.worker_ollama)
    finally:
        nodes.worker_ollama.reply = FakeOllama.reply
    await still_fine(nodes)
