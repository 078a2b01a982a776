"""What the Macs need from a node: the pre-warm keeps num_ctx, a model partly off the
GPU is reported, and memory means pressure and swap, not psutil's "available"."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import psutil
import pytest

from tandem.backends.base import ChatTurn, SamplingOptions
from tandem.backends.ollama import OllamaBackend
from tandem.host_memory import (
    CRITICAL,
    NORMAL,
    UNSPECIFIED,
    WARN,
    derived_pressure,
    host_memory,
    pressure_from_macos_level,
)
from tandem.node_status import node_status
from tandem.v1 import worker_pb2
from tandem_gateway.cluster import memory_warning
from tests.fake_ollama import FakeOllama, start_fake_ollama, stop_fake_ollama

MODEL = "qwen3-coder-next"
_GIB = 1024**3


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    fake = start_fake_ollama(FakeOllama(models=[f"{MODEL}:latest"]))
    yield fake
    stop_fake_ollama(fake)


def _backend(fake: FakeOllama, num_ctx: int = 32768) -> OllamaBackend:
    return OllamaBackend(fake.url, MODEL, keep_alive="2h", num_ctx=num_ctx)


async def test_the_prewarm_loads_the_model_with_the_same_num_ctx_as_a_generation(
    ollama: FakeOllama,
) -> None:
    backend = _backend(ollama, num_ctx=32768)
    try:
        await backend.warm_up()
        async for _ in backend.chat_stream([ChatTurn("user", "hi")], SamplingOptions()):
            pass
        await backend.generate_one_token()
    finally:
        await backend.aclose()
    warm, generation, liveness = ollama.chat_requests
    assert warm["messages"] == []  # the load-only call Ollama documents
    assert warm["keep_alive"] == "2h"
    contexts = {r["options"]["num_ctx"] for r in (warm, generation, liveness)}
    assert contexts == {32768}


@pytest.mark.parametrize(("gpu_fraction", "warned"), [(0.6, True), (1.0, False)])
async def test_a_model_partly_off_the_gpu_is_a_node_warning_and_a_log_line(
    ollama: FakeOllama, caplog: pytest.LogCaptureFixture, gpu_fraction: float, warned: bool
) -> None:
    ollama.gpu_fraction = gpu_fraction
    backend = _backend(ollama)
    try:
        await backend.warm_up()
        with caplog.at_level(logging.INFO, logger="tandem.backends.ollama"):
            probe = await backend.probe()
            await backend.probe()  # logged once, not on every probe
    finally:
        await backend.aclose()
    status = node_status("macmini", backend, probe)
    assert probe.model_loaded
    gpu_lines = [r.getMessage() for r in caplog.records if "on the GPU" in r.getMessage()]
    if warned:
        assert len(status.warnings) == 1
        assert "60% on the GPU" in status.warnings[0]
        assert "iogpu.wired_limit_mb" in status.warnings[0]
        assert gpu_lines == [status.warnings[0]]
    else:
        assert list(status.warnings) == []
        assert gpu_lines == []


def test_host_memory_reports_pressure_used_and_swap() -> None:
    memory = host_memory()
    swap = psutil.swap_memory()
    assert memory.pressure != UNSPECIFIED
    assert 0 < memory.used_bytes <= memory.total_bytes
    assert memory.swap_total_bytes == swap.total
    assert memory.swap_used_bytes <= memory.swap_total_bytes


def test_macos_pressure_levels_map_to_the_proto() -> None:
    assert pressure_from_macos_level(1) == NORMAL
    assert pressure_from_macos_level(2) == WARN
    assert pressure_from_macos_level(4) == CRITICAL
    assert pressure_from_macos_level(None) == UNSPECIFIED
    assert pressure_from_macos_level(3) == UNSPECIFIED


def test_derived_pressure_follows_available_memory_and_swap() -> None:
    total = 64 * _GIB
    assert derived_pressure(total, 30 * _GIB, 0, 0) == NORMAL
    assert derived_pressure(total, 5 * _GIB, 0, 0) == WARN
    assert derived_pressure(total, 2 * _GIB, 0, 0) == CRITICAL
    # Heavy swapping with memory getting short is pressure too.
    assert derived_pressure(total, 10 * _GIB, 8 * _GIB, 6 * _GIB) == WARN
    assert derived_pressure(total, 30 * _GIB, 8 * _GIB, 6 * _GIB) == NORMAL
    assert derived_pressure(0, 0, 0, 0) == UNSPECIFIED


def _node(pressure: worker_pb2.MemoryPressure, available_gib: float) -> worker_pb2.NodeStatus:
    return worker_pb2.NodeStatus(
        node="macmini",
        memory=worker_pb2.MemoryInfo(
            total_bytes=64 * _GIB,
            available_bytes=int(available_gib * _GIB),
            pressure=pressure,
            swap_total_bytes=4 * _GIB,
            swap_used_bytes=3 * _GIB,
        ),
    )


def test_the_low_memory_warning_follows_pressure_when_a_node_reports_it() -> None:
    # A Mac Mini with a 52 GB model wired: little "available", yet no pressure.
    assert memory_warning(_node(NORMAL, 1.5)) == ""
    warning = memory_warning(_node(WARN, 1.5))
    assert "memory pressure high" in warning and "swap 3.0 of 4.0 GiB used" in warning
    assert "memory pressure critical" in memory_warning(_node(CRITICAL, 1.5))
    # A node that reports no pressure (older worker) is judged by available bytes.
    assert "low memory" in memory_warning(_node(UNSPECIFIED, 1.5))
    assert memory_warning(_node(UNSPECIFIED, 30)) == ""
