"""Model choice: workers advertise the models they serve; the gateway routes a
request naming a model to a worker serving it (preferring one where it is
loaded) and answers a model nobody serves with NOT_FOUND listing the others."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from tandem.v1 import gateway_pb2, worker_pb2
from tandem_gateway.server import RunningGateway, running_gateway
from tandem_worker.server import RunningWorker, running_worker
from tests.conftest import WORKER_MODEL, gateway_settings, scripted_judge, worker_settings
from tests.fake_ollama import FakeOllama, start_fake_ollama, stop_fake_ollama
from tests.helpers import (
    GATEWAY_SERVICE,
    GUARD_S,
    WORKER_SERVICE,
    rich_details,
    route,
    user,
    wait_for_health,
    worker_stub,
)


@dataclass
class Pair:
    """Two workers, A listed first: A serves qwen3-coder-next, llama3.2 and
    devstral; B serves qwen3-coder-next and devstral, and has devstral loaded."""

    gateway: RunningGateway
    a: RunningWorker
    b: RunningWorker
    ollama_a: FakeOllama
    ollama_b: FakeOllama


@pytest.fixture
def ollamas() -> Iterator[tuple[FakeOllama, FakeOllama]]:
    names = [f"{WORKER_MODEL}:latest", "devstral:latest", "llama3.2:latest"]
    a = start_fake_ollama(FakeOllama(models=names, reply="from A"))
    b = start_fake_ollama(FakeOllama(models=names, reply="from B"))
    b.loaded["devstral:latest"] = datetime.now(UTC) + timedelta(hours=2)
    yield a, b
    stop_fake_ollama(a)
    stop_fake_ollama(b)


@pytest.fixture
async def pair(
    gateway_ollama: FakeOllama, ollamas: tuple[FakeOllama, FakeOllama]
) -> AsyncIterator[Pair]:
    ollama_a, ollama_b = ollamas
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(
            running_worker(
                worker_settings(
                    ollama_a.url,
                    node_name="a",
                    served_models=["llama3.2", "devstral", WORKER_MODEL],
                )
            )
        )
        b = await stack.enter_async_context(
            running_worker(
                worker_settings(
                    ollama_b.url,
                    node_name="b",
                    served_models=["devstral"],
                )
            )
        )
        for worker in (a, b):
            await wait_for_health(worker.address, WORKER_SERVICE)
        gateway = await stack.enter_async_context(
            running_gateway(gateway_settings(gateway_ollama.url, [a.address, b.address]))
        )
        await wait_for_health(gateway.address, GATEWAY_SERVICE)
        yield Pair(gateway, a, b, ollama_a, ollama_b)


async def test_workers_advertise_their_models_default_first(pair: Pair) -> None:
    async with grpc.aio.insecure_channel(pair.a.address) as channel:
        status = await worker_stub(channel).GetNodeStatus(worker_pb2.GetNodeStatusRequest())
    assert list(status.served_models) == [WORKER_MODEL, "llama3.2", "devstral"]


async def test_a_named_model_goes_to_a_worker_serving_it_where_it_is_loaded(pair: Pair) -> None:
    only_a = await route(
        pair.gateway.address, gateway_pb2.RouteRequest(messages=[user("hi")], model="llama3.2")
    )
    loaded_on_b = await route(
        pair.gateway.address, gateway_pb2.RouteRequest(messages=[user("hi")], model="devstral")
    )
    assert only_a.text == "from A" and only_a.summary is not None
    assert only_a.summary.model == "llama3.2" and only_a.summary.worker == pair.a.address
    # Both serve devstral and neither is busy: B has it loaded, so B, though listed second.
    assert loaded_on_b.text == "from B" and loaded_on_b.summary is not None
    assert loaded_on_b.summary.worker == pair.b.address
    assert [r["model"] for r in pair.ollama_a.generation_requests()] == ["llama3.2"]
    assert [r["model"] for r in pair.ollama_b.generation_requests()] == ["devstral"]


async def test_a_model_no_worker_serves_is_not_found_listing_the_others(pair: Pair) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await route(
            pair.gateway.address, gateway_pb2.RouteRequest(messages=[user("hi")], model="gpt-4o")
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "gpt-4o" in (caught.value.details() or "")
    details = rich_details(caught.value)
    [info] = [d for d in details if isinstance(d, error_details_pb2.ErrorInfo)]
    [resource] = [d for d in details if isinstance(d, error_details_pb2.ResourceInfo)]
    assert info.reason == "MODEL_NOT_SERVED"
    assert info.metadata["available"].split(",") == [WORKER_MODEL, "llama3.2", "devstral"]
    assert (resource.resource_type, resource.resource_name) == ("model", "gpt-4o")
    # The judge's model (llama3.1:8b on the gateway) is not a routing target either.
    with pytest.raises(grpc.aio.AioRpcError) as judge:
        await route(
            pair.gateway.address,
            gateway_pb2.RouteRequest(messages=[user("hi")], model="llama3.1:8b"),
        )
    assert judge.value.code() == grpc.StatusCode.NOT_FOUND
    assert pair.ollama_a.generation_requests() == pair.ollama_b.generation_requests() == []


async def test_a_model_an_unheard_worker_may_serve_is_unavailable_not_not_found(
    gateway_ollama: FakeOllama, ollamas: tuple[FakeOllama, FakeOllama]
) -> None:
    """Until every worker has told the gateway its models, a model the others do not
    serve may be served by the one not heard from yet (just starting, or down): the
    gateway waits for it and then answers UNAVAILABLE naming the model, not NOT_FOUND."""
    _, ollama_b = ollamas
    with socket.socket() as silent:  # bound, never listening: connections are refused
        silent.bind(("127.0.0.1", 0))
        unheard = f"127.0.0.1:{silent.getsockname()[1]}"
        settings = worker_settings(ollama_b.url, node_name="b", served_models=["devstral"])
        async with running_worker(settings) as b:
            await wait_for_health(b.address, WORKER_SERVICE)
            gateway_config = gateway_settings(
                gateway_ollama.url, [unheard, b.address], worker_connect_timeout_s=0.5
            )
            async with running_gateway(gateway_config) as gateway:
                await wait_for_health(gateway.address, GATEWAY_SERVICE)
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await route(
                        gateway.address,
                        gateway_pb2.RouteRequest(messages=[user("hi")], model="llama3.2"),
                    )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "no worker is serving llama3.2" in (caught.value.details() or "")
    assert ollama_b.generation_requests() == []


async def test_a_model_nobody_serves_is_not_found_once_the_last_worker_reports(
    gateway_ollama: FakeOllama, ollamas: tuple[FakeOllama, FakeOllama]
) -> None:
    """A request waiting for the unheard worker is answered NOT_FOUND as soon as that
    worker reports models that do not include it (not UNAVAILABLE at the timeout)."""
    ollama_a, ollama_b = ollamas
    judged = threading.Event()  # the route reached its judge call: past the model check

    def judge(body: dict[str, Any]) -> str:
        if body.get("messages"):
            judged.set()
        return scripted_judge(body)

    gateway_ollama.responder = judge
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        port = reserved.getsockname()[1]
    settings = worker_settings(ollama_b.url, node_name="b", served_models=["devstral"])
    async with AsyncExitStack() as stack:
        b = await stack.enter_async_context(running_worker(settings))
        await wait_for_health(b.address, WORKER_SERVICE)
        gateway = await stack.enter_async_context(
            running_gateway(
                gateway_settings(
                    gateway_ollama.url,
                    [f"127.0.0.1:{port}", b.address],
                    worker_connect_timeout_s=GUARD_S,
                )
            )
        )
        await wait_for_health(gateway.address, GATEWAY_SERVICE)
        request = gateway_pb2.RouteRequest(messages=[user("hi")], model="gpt-4o")
        waiting = asyncio.create_task(route(gateway.address, request))
        assert await asyncio.to_thread(judged.wait, GUARD_S)
        a_settings = worker_settings(ollama_a.url, node_name="a", listen=f"127.0.0.1:{port}")
        await stack.enter_async_context(running_worker(a_settings))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await waiting
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "gpt-4o" in (caught.value.details() or "")


async def test_a_worker_refuses_a_model_it_does_not_serve(pair: Pair) -> None:
    request = worker_pb2.GenerateRequest(messages=[user("hi")], model="llama3.2")
    async with grpc.aio.insecure_channel(pair.b.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in worker_stub(channel).Generate(request, timeout=GUARD_S):
                pass
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "available: qwen3-coder-next, devstral" in (caught.value.details() or "")


async def test_tandem_status_lists_the_models_a_worker_serves(pair: Pair) -> None:
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tandem.cli.main", "status", "--gateway", pair.gateway.address],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    assert "+ llama3.2, devstral" in result.stdout and "+ devstral" in result.stdout
