"""The worker in front of (fake) Ollama: streaming, options, status, failures."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2

from tandem.v1 import common_pb2, worker_pb2
from tandem_worker.server import RunningWorker, running_worker
from tests.conftest import WORKER_MODEL, worker_settings
from tests.fake_ollama import FakeOllama, start_fake_ollama, stop_fake_ollama
from tests.helpers import (
    GUARD_S,
    NOT_SERVING,
    SERVING,
    WORKER_SERVICE,
    health_status,
    rich_details,
    user,
    wait_for_health,
    worker_stub,
)


async def generate(
    address: str, request: worker_pb2.GenerateRequest
) -> list[worker_pb2.GenerateResponse]:
    async with grpc.aio.insecure_channel(address) as channel:
        return [r async for r in worker_stub(channel).Generate(request, timeout=GUARD_S)]


async def test_generate_streams_each_chunk_then_a_summary(
    worker: RunningWorker, worker_ollama: FakeOllama
) -> None:
    worker_ollama.reply = "def reverse(s): return s[::-1]"
    events = await generate(
        worker.address, worker_pb2.GenerateRequest(messages=[user("reverse a string")])
    )
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds == ["delta"] * 4 + ["summary"]  # one message per chunk (no --coalesce-after-ms)
    assert [e.delta.tokens for e in events[:-1]] == [1, 1, 1, 1]
    assert "".join(e.delta.text for e in events[:-1]) == "def reverse(s): return s[::-1]"
    summary = events[-1].summary
    assert summary.finish_reason == common_pb2.FINISH_REASON_STOP
    assert summary.usage.completion_tokens == 4  # Ollama's eval_count
    assert summary.usage.prompt_tokens == 12  # Ollama's prompt_eval_count
    assert summary.timings.load.ToNanoseconds() == 1_000_000  # Ollama's load_duration
    assert summary.timings.eval.ToNanoseconds() == 4_000_000
    assert summary.model == WORKER_MODEL
    assert summary.node == "worker"


@pytest.mark.parametrize("coalesce_after_ms", [0.0, 2.0])
async def test_each_token_goes_out_as_ollama_produces_it(
    worker_ollama: FakeOllama, coalesce_after_ms: float
) -> None:
    """With or without merging, a reader that keeps up is never made to wait for a batch.

    The fake produces each token only when the test releases it, so every token
    must reach the client before Ollama has produced the next one."""
    words = "one two three four five six".split()
    worker_ollama.reply = " ".join(words)
    settings = worker_settings(worker_ollama.url, coalesce_after_ms=coalesce_after_ms)
    async with (
        running_worker(settings) as worker,
        grpc.aio.insecure_channel(worker.address) as channel,
    ):
        await wait_for_health(worker.address, WORKER_SERVICE)
        worker_ollama.gate_tokens()
        try:
            call = worker_stub(channel).Generate(
                worker_pb2.GenerateRequest(messages=[user("count")]), timeout=GUARD_S
            )
            for index, word in enumerate(words):
                worker_ollama.release_tokens(1)
                response = await call.read()
                assert response.delta.text == (word if index == 0 else " " + word)
                assert response.delta.tokens == 1
            summary = await call.read()
            assert summary.summary.usage.completion_tokens == len(words)
            assert await call.read() is grpc.aio.EOF
        finally:
            gate, worker_ollama.token_gate = worker_ollama.token_gate, None
            assert gate is not None
            gate.release(len(words))  # a test that failed half-way leaves no thread waiting


async def test_options_reach_ollama_with_fixed_context_and_keep_alive(
    worker: RunningWorker, worker_ollama: FakeOllama
) -> None:
    options = common_pb2.GenerationOptions(
        max_tokens=3, temperature=0.2, stop=["\n\n"], seed=7, top_p=0.9
    )
    events = await generate(
        worker.address, worker_pb2.GenerateRequest(messages=[user("hi")], options=options)
    )
    body = worker_ollama.generation_requests()[-1]
    assert body["model"] == WORKER_MODEL
    assert body["stream"] is True
    assert body["keep_alive"] == "2h"
    assert "think" not in body
    assert body["options"]["num_predict"] == 3
    assert body["options"]["temperature"] == pytest.approx(0.2)
    assert body["options"]["stop"] == ["\n\n"]
    assert body["options"]["seed"] == 7
    assert body["options"]["top_p"] == pytest.approx(0.9)
    assert body["options"]["num_ctx"] == 2048
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert events[-1].summary.finish_reason == common_pb2.FINISH_REASON_LENGTH
    assert sum(e.delta.tokens for e in events[:-1]) == 3


async def test_worker_prewarms_model_and_reports_residency(
    worker: RunningWorker, worker_ollama: FakeOllama
) -> None:
    warmups = [r for r in worker_ollama.chat_requests if not r.get("messages")]
    assert warmups and warmups[0]["keep_alive"] == "2h"
    async with grpc.aio.insecure_channel(worker.address) as channel:
        status = await worker_stub(channel).GetNodeStatus(
            worker_pb2.GetNodeStatusRequest(), timeout=10
        )
    assert status.backend == worker_pb2.BACKEND_KIND_OLLAMA
    assert status.backend_url == worker_ollama.url
    assert status.model_available and status.model_loaded and status.backend_reachable
    assert status.model_expires_at.seconds > 0
    assert [m.name for m in status.loaded_models] == [f"{WORKER_MODEL}:latest"]
    assert status.memory.total_bytes > status.memory.available_bytes > 0
    assert status.version == "0.12.6"


async def test_model_missing_is_failed_precondition_with_pull_hint() -> None:
    fake = start_fake_ollama(FakeOllama(models=["llama3.1:8b"]))
    try:
        async with running_worker(worker_settings(fake.url)) as running:
            assert await health_status(running.address, WORKER_SERVICE) == NOT_SERVING
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await generate(running.address, worker_pb2.GenerateRequest(messages=[user("hi")]))
    finally:
        stop_fake_ollama(fake)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"ollama pull {WORKER_MODEL}" in caught.value.details()
    [failure] = rich_details(caught.value)
    assert isinstance(failure, error_details_pb2.PreconditionFailure)
    assert failure.violations[0].subject == WORKER_MODEL


async def test_ollama_down_is_unavailable_naming_node_and_url() -> None:
    fake = start_fake_ollama(FakeOllama())
    url = fake.url
    stop_fake_ollama(fake)  # nothing listens there any more: connection refused
    async with running_worker(worker_settings(url)) as running:
        assert await health_status(running.address, WORKER_SERVICE) == NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await generate(running.address, worker_pb2.GenerateRequest(messages=[user("hi")]))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "worker" in caught.value.details() and url in caught.value.details()
    info = [d for d in rich_details(caught.value) if isinstance(d, error_details_pb2.ErrorInfo)]
    assert info[0].metadata["node"] == "worker"


async def test_ollama_busy_is_resource_exhausted_with_retry_info(
    worker: RunningWorker, worker_ollama: FakeOllama
) -> None:
    worker_ollama.fail_mode = "busy_503"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await generate(worker.address, worker_pb2.GenerateRequest(messages=[user("hi")]))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    retry = [d for d in rich_details(caught.value) if isinstance(d, error_details_pb2.RetryInfo)]
    assert retry and retry[0].retry_delay.ToNanoseconds() > 0


@pytest.mark.parametrize(
    ("mode", "code"),
    [
        ("http_500", grpc.StatusCode.INTERNAL),
        ("bad_json_line", grpc.StatusCode.INTERNAL),
        ("error_line", grpc.StatusCode.INTERNAL),
        ("drop_mid_stream", grpc.StatusCode.UNAVAILABLE),
    ],
)
async def test_broken_ollama_streams_end_in_an_error_not_a_short_answer(
    worker: RunningWorker, worker_ollama: FakeOllama, mode: str, code: grpc.StatusCode
) -> None:
    worker_ollama.fail_mode = mode  # type: ignore[assignment]
    worker_ollama.reply = "one two three four five six"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await generate(worker.address, worker_pb2.GenerateRequest(messages=[user("hi")]))
    assert caught.value.code() == code
    assert "worker" in caught.value.details()


async def test_cancelling_the_call_closes_the_ollama_stream(
    worker: RunningWorker, worker_ollama: FakeOllama
) -> None:
    worker_ollama.fail_mode = "stall_before_first_token"
    async with grpc.aio.insecure_channel(worker.address) as channel:
        call = worker_stub(channel).Generate(worker_pb2.GenerateRequest(messages=[user("hi")]))
        started = asyncio.get_running_loop().run_in_executor(
            None, worker_ollama.stream_started.wait, GUARD_S
        )
        assert await started
        call.cancel()
    disconnected = await asyncio.get_running_loop().run_in_executor(
        None, worker_ollama.disconnected.wait, GUARD_S
    )
    assert disconnected, "Ollama never saw the client hang up"


async def test_deadline_bounds_the_generation(
    worker: RunningWorker, worker_ollama: FakeOllama
) -> None:
    worker_ollama.fail_mode = "stall_before_first_token"
    async with grpc.aio.insecure_channel(worker.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in worker_stub(channel).Generate(
                worker_pb2.GenerateRequest(messages=[user("hi")]), timeout=0.5
            ):
                pass
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    disconnected = await asyncio.get_running_loop().run_in_executor(
        None, worker_ollama.disconnected.wait, GUARD_S
    )
    assert disconnected


async def test_worker_readiness_follows_ollama(worker_ollama: FakeOllama) -> None:
    async with running_worker(worker_settings(worker_ollama.url)) as running:
        await wait_for_health(running.address, WORKER_SERVICE, SERVING)
        assert await health_status(running.address, "") == SERVING
        stop_fake_ollama(worker_ollama)
        await wait_for_health(running.address, WORKER_SERVICE, NOT_SERVING)
        assert await health_status(running.address, "") == SERVING  # the process is alive
