"""Gateway and worker on two hosts: the worker in a network namespace at
169.254.19.104 behind a veth link, exactly like the Mac Mini behind the
Thunderbolt bridge. Link cuts, kill -9 and a dying Ollama, for real.

Measured times are printed (run with -s) and, when $TANDEM_LINK_RESULTS names a
file, appended to it as JSON lines (`python -m bench.links` runs this module and
writes bench/results/links.json from them). Nothing here asserts a duration: the
waits are event-driven with a generous guard against hangs.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from tandem.v1 import gateway_pb2
from tandem_gateway.server import RunningGateway, running_gateway
from tests.conftest import gateway_settings
from tests.fake_ollama import FakeOllama
from tests.helpers import (
    GATEWAY_SERVICE,
    GUARD_S,
    NOT_SERVING,
    SERVING,
    gateway_stub,
    route,
    start_stream,
    user,
    wait_for_health,
)
from tests.netns import WORKER_IP, SecondHost, second_host, unavailable_reason

_REASON = unavailable_reason()
pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(_REASON is not None, reason=f"no second host: {_REASON}"),
]

ROOT = Path(__file__).resolve().parents[1]
WORKER_ADDRESS = f"{WORKER_IP}:50052"
SLOW_REPLY = " ".join(f"token{i}" for i in range(2000))


@pytest.fixture
def host() -> Iterator[SecondHost]:
    with second_host() as created:
        yield created


class MacMini:
    """The processes on the second host: a fake Ollama and a worker."""

    def __init__(self, host: SecondHost) -> None:
        self.host = host
        self.ollama: subprocess.Popen[str] | None = None
        self.worker: subprocess.Popen[str] | None = None

    def start_ollama(self, token_delay_s: float = 0.0, *, report_disconnects: bool = False) -> str:
        flags = ["--report-disconnects"] if report_disconnects else []
        self.ollama = self.host.popen(
            sys.executable,
            "-m",
            "tests.fake_ollama",
            "--reply",
            SLOW_REPLY,
            "--token-delay-s",
            str(token_delay_s),
            *flags,
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        assert self.ollama.stdout is not None
        return self.ollama.stdout.readline().strip()

    async def next_disconnect(self) -> float:
        """When (time.monotonic(), one clock for every process) Ollama saw the next hang-up."""
        assert self.ollama is not None and self.ollama.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.ollama.stdout.readline), GUARD_S)
        kind, at = line.split()
        assert kind == "disconnected", line
        return float(at)

    def start_worker(self, ollama_url: str) -> None:
        self.worker = self.host.popen(
            sys.executable,
            "-m",
            "tandem.cli.main",
            "worker",
            "--listen",
            WORKER_ADDRESS,
            "--ollama-url",
            ollama_url,
            "--model",
            "qwen3-coder-next",
            "--metrics-listen",
            "",
            "--probe-interval-s",
            "0.2",
            cwd=ROOT,
            stderr=subprocess.DEVNULL,
        )

    def kill(self, process: subprocess.Popen[str] | None) -> None:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)

    def stop(self) -> None:
        self.kill(self.worker)
        self.kill(self.ollama)


@pytest.fixture
def mac_mini(host: SecondHost) -> Iterator[MacMini]:
    node = MacMini(host)
    yield node
    node.stop()


@pytest.fixture
async def macbook(gateway_ollama: FakeOllama) -> AsyncIterator[RunningGateway]:
    async with running_gateway(gateway_settings(gateway_ollama.url, [WORKER_ADDRESS])) as gateway:
        yield gateway


RESULTS_ENV = "TANDEM_LINK_RESULTS"


def _report(what: str, *seconds: float) -> None:
    ms = [s * 1000 for s in seconds]
    many = f"{len(ms)} samples, {min(ms):.1f}-{max(ms):.1f} ms"
    shown = f"{ms[0]:.0f} ms" if len(ms) == 1 else many
    print(f"\n[measured] {what}: {shown}")
    if path := os.environ.get(RESULTS_ENV):
        with open(path, "a", encoding="utf-8") as results:
            results.write(json.dumps({"event": what, "ms": ms}) + "\n")


async def test_gateway_first_then_worker_then_link_down_and_up(
    macbook: RunningGateway, mac_mini: MacMini
) -> None:
    await wait_for_health(macbook.address, GATEWAY_SERVICE, NOT_SERVING)
    mac_mini.start_worker(mac_mini.start_ollama())
    await wait_for_health(macbook.address, GATEWAY_SERVICE, SERVING)
    result = await route(
        macbook.address, gateway_pb2.RouteRequest(messages=[user("hi")], options={"max_tokens": 5})
    )
    assert result.summary.worker == WORKER_ADDRESS and result.tokens == 5

    cut = time.monotonic()
    mac_mini.host.cut_link()
    await wait_for_health(macbook.address, GATEWAY_SERVICE, NOT_SERVING)
    _report("link down -> gateway NOT_SERVING", time.monotonic() - cut)
    async with grpc.aio.insecure_channel(macbook.address) as channel:
        status = await gateway_stub(channel).GetClusterStatus(
            gateway_pb2.GetClusterStatusRequest(), timeout=GUARD_S
        )
    assert status.workers[0].state == gateway_pb2.WORKER_STATE_UNREACHABLE
    assert status.workers[0].consecutive_failures >= 1

    restored = time.monotonic()
    mac_mini.host.restore_link()
    await wait_for_health(macbook.address, GATEWAY_SERVICE, SERVING)
    _report("link up -> gateway SERVING", time.monotonic() - restored)
    result = await route(
        macbook.address, gateway_pb2.RouteRequest(messages=[user("hi")], options={"max_tokens": 3})
    )
    assert result.tokens == 3


async def _route_until_first_delta(
    address: str,
) -> tuple[grpc.aio.Channel, grpc.aio.UnaryStreamCall]:
    channel = grpc.aio.insecure_channel(address)
    call = gateway_stub(channel).Route(
        gateway_pb2.RouteRequest(messages=[user("write a lot")]), timeout=GUARD_S
    )
    while (await call.read()).WhichOneof("event") != "delta":
        pass
    return channel, call


async def _drain_expecting_error(call: grpc.aio.UnaryStreamCall) -> grpc.aio.AioRpcError:
    try:
        while (event := await call.read()) is not grpc.aio.EOF:
            assert event.WhichOneof("event") == "delta", (
                "a broken stream must not end with a summary"
            )
    except grpc.aio.AioRpcError as exc:
        return exc
    raise AssertionError("the stream ended OK with half an answer")


@pytest.mark.parametrize("victim", ["worker", "ollama", "link"])
async def test_failure_mid_stream_is_a_prompt_error_never_a_hang(
    macbook: RunningGateway, mac_mini: MacMini, victim: str
) -> None:
    mac_mini.start_worker(mac_mini.start_ollama(token_delay_s=0.02))
    await wait_for_health(macbook.address, GATEWAY_SERVICE, SERVING)
    channel, call = await _route_until_first_delta(macbook.address)
    try:
        struck = time.monotonic()
        if victim == "worker":
            mac_mini.kill(mac_mini.worker)  # kill -9
        elif victim == "ollama":
            mac_mini.kill(mac_mini.ollama)
        else:
            mac_mini.host.cut_link()
        error = await _drain_expecting_error(call)
        _report(f"{victim} lost mid-stream -> client error", time.monotonic() - struck)
    finally:
        await channel.close()
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert WORKER_ADDRESS in error.details()
    if victim == "ollama":
        assert "Ollama" in error.details()
    if victim == "link":
        mac_mini.host.restore_link()
        await wait_for_health(macbook.address, GATEWAY_SERVICE, SERVING)


CANCELS = 20


@pytest.mark.parametrize("via", ["worker", "gateway"])
async def test_a_client_cancel_reaches_ollama_across_the_link(
    macbook: RunningGateway, mac_mini: MacMini, via: str
) -> None:
    """A client hangs up mid-stream; Ollama, on the other host, sees its connection close."""
    mac_mini.start_worker(mac_mini.start_ollama(token_delay_s=0.02, report_disconnects=True))
    await wait_for_health(macbook.address, GATEWAY_SERVICE, SERVING)
    delays = []
    for _ in range(CANCELS):
        address = WORKER_ADDRESS if via == "worker" else macbook.address
        async with grpc.aio.insecure_channel(address) as channel:
            call = start_stream(channel, via, "write a lot")
            while (await call.read()).WhichOneof("event") != "delta":
                pass
            cancelled = time.monotonic()
            call.cancel()
            delays.append(await mac_mini.next_disconnect() - cancelled)
    assert all(delay > 0 for delay in delays)
    _report(f"client cancel via {via} -> Ollama sees the disconnect", *delays)


async def test_worker_restart_recovers_without_touching_the_gateway(
    macbook: RunningGateway, mac_mini: MacMini
) -> None:
    url = mac_mini.start_ollama()
    mac_mini.start_worker(url)
    await wait_for_health(macbook.address, GATEWAY_SERVICE, SERVING)
    killed = time.monotonic()
    mac_mini.kill(mac_mini.worker)
    await wait_for_health(macbook.address, GATEWAY_SERVICE, NOT_SERVING)
    _report("worker killed -> gateway NOT_SERVING", time.monotonic() - killed)
    restarted = time.monotonic()
    mac_mini.start_worker(url)
    await wait_for_health(macbook.address, GATEWAY_SERVICE, SERVING)
    _report("worker restarted -> gateway SERVING", time.monotonic() - restarted)
    result = await route(
        macbook.address, gateway_pb2.RouteRequest(messages=[user("hi")], options={"max_tokens": 2})
    )
    assert result.tokens == 2
