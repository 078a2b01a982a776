"""A worker whose model is partly off the GPU shows in the cluster status the gateway
serves (what `tandem status` prints), named by node."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc
import pytest

from tandem.v1 import gateway_pb2
from tandem_gateway.server import RunningGateway
from tests.conftest import WORKER_MODEL
from tests.fake_ollama import FakeOllama, start_fake_ollama, stop_fake_ollama
from tests.helpers import GUARD_S, gateway_stub


@pytest.fixture
def worker_ollama() -> Iterator[FakeOllama]:
    """The worker's Ollama with the model only 40% in GPU memory."""
    fake = start_fake_ollama(FakeOllama(models=[f"{WORKER_MODEL}:latest"], gpu_fraction=0.4))
    yield fake
    stop_fake_ollama(fake)


async def test_the_cluster_status_carries_the_workers_gpu_warning(
    gateway: RunningGateway,
) -> None:
    async with grpc.aio.insecure_channel(gateway.address) as channel:
        async with asyncio.timeout(GUARD_S):
            async for status in gateway_stub(channel).WatchClusterStatus(
                gateway_pb2.WatchClusterStatusRequest()
            ):
                found = [w for w in status.warnings if "40% on the GPU" in w]
                if found:
                    break
    worker = status.workers[0].node
    assert list(worker.warnings) == [found[0].removeprefix(f"{worker.node}: ")]
    assert found[0].startswith(f"{worker.node}: model {WORKER_MODEL} is only 40% on the GPU")
