"""The worker at production depth: admission, queueing, stalls, retries, backpressure, liveness."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2

from tandem.v1 import worker_pb2
from tandem_worker.server import RunningWorker, running_worker
from tests.conftest import worker_settings
from tests.fake_ollama import FakeOllama
from tests.helpers import (
    GUARD_S,
    NOT_SERVING,
    WORKER_SERVICE,
    rich_details,
    user,
    wait_for_health,
    worker_stub,
)

HI = worker_pb2.GenerateRequest(messages=[user("hi")])


async def _in_thread(event, timeout: float = GUARD_S) -> bool:
    return await asyncio.get_running_loop().run_in_executor(None, event.wait, timeout)


@pytest.fixture
async def small_worker(worker_ollama: FakeOllama) -> AsyncIterator[RunningWorker]:
    """One generation at a time, one waiting."""
    settings = worker_settings(
        worker_ollama.url, max_concurrent_generations=1, max_queued_generations=1
    )
    async with running_worker(settings) as running:
        await wait_for_health(running.address, WORKER_SERVICE)
        yield running


async def test_error_line_mid_stream_fails_after_the_deltas_already_sent(
    worker: RunningWorker, worker_ollama: FakeOllama
) -> None:
    worker_ollama.fail_mode = "error_line"
    worker_ollama.reply = "one two three"
    received: list[str] = []
    async with grpc.aio.insecure_channel(worker.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for response in worker_stub(channel).Generate(HI, timeout=GUARD_S):
                received.append(response.WhichOneof("event"))
    assert received == ["delta"]  # what was sent stays sent; then the error, never OK
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "error was encountered" in caught.value.details()


async def test_stream_ending_without_done_is_unavailable(
    worker: RunningWorker, worker_ollama: FakeOllama
) -> None:
    worker_ollama.fail_mode = "no_done"
    async with grpc.aio.insecure_channel(worker.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in worker_stub(channel).Generate(HI, timeout=GUARD_S):
                pass
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "before its final 'done' line" in caught.value.details()


async def test_stalled_ollama_fails_after_the_idle_timeout(worker_ollama: FakeOllama) -> None:
    async with running_worker(worker_settings(worker_ollama.url, idle_timeout_s=0.5)) as running:
        await wait_for_health(running.address, WORKER_SERVICE)
        worker_ollama.fail_mode = "stall_before_first_token"
        async with grpc.aio.insecure_channel(running.address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in worker_stub(channel).Generate(HI, timeout=GUARD_S):
                    pass
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "stalled" in caught.value.details()
    info = [d for d in rich_details(caught.value) if isinstance(d, error_details_pb2.ErrorInfo)]
    assert info[0].reason == "BACKEND_STALLED"
    assert await _in_thread(worker_ollama.disconnected)


async def test_full_queue_is_rejected_at_once_and_the_queue_drains(
    small_worker: RunningWorker, worker_ollama: FakeOllama
) -> None:
    worker_ollama.token_delay_s = 0.0
    async with grpc.aio.insecure_channel(small_worker.address) as channel:
        stub = worker_stub(channel)
        worker_ollama.fail_mode = "stall_before_first_token"
        holding = stub.Generate(HI, timeout=GUARD_S)
        assert await _in_thread(worker_ollama.stream_started)  # Ollama holds it, stalled
        worker_ollama.fail_mode = None
        waiting = stub.Generate(HI, timeout=GUARD_S)
        await small_worker.admission.wait_until(lambda a: a.queued == 1, GUARD_S)
        status = await stub.GetNodeStatus(worker_pb2.GetNodeStatusRequest(), timeout=GUARD_S)
        assert (status.generations_in_flight, status.generations_queued) == (1, 1)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stub.Generate(HI, timeout=GUARD_S):
                pass
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        retry = [
            d for d in rich_details(caught.value) if isinstance(d, error_details_pb2.RetryInfo)
        ]
        assert retry[0].retry_delay.seconds >= 1
        holding.cancel()
        events = [r.WhichOneof("event") async for r in waiting]
    assert events[-1] == "summary"


async def _read_all(call: grpc.aio.UnaryStreamCall) -> list[worker_pb2.GenerateResponse]:
    return [response async for response in call]


@pytest.mark.parametrize(
    "max_bypass,served",
    [
        (8, ["urgent", "also urgent", "patient"]),  # priority first
        (1, ["urgent", "patient", "also urgent"]),  # overtaken once: it goes next
        (0, ["patient", "urgent", "also urgent"]),  # first come, first served
    ],
)
async def test_waiting_generations_go_by_priority_and_none_is_starved(
    worker_ollama: FakeOllama, max_bypass: int, served: list[str]
) -> None:
    settings = worker_settings(
        worker_ollama.url,
        max_concurrent_generations=1,
        max_queued_generations=8,
        max_queue_bypass=max_bypass,
    )
    async with (
        running_worker(settings) as running,
        grpc.aio.insecure_channel(running.address) as channel,
    ):
        await wait_for_health(running.address, WORKER_SERVICE)
        stub = worker_stub(channel)
        worker_ollama.fail_mode = "stall_before_first_token"
        holding = stub.Generate(HI, timeout=GUARD_S)
        assert await _in_thread(worker_ollama.stream_started)  # the one slot is taken
        worker_ollama.fail_mode = None
        waiting = []
        for queued, (text, priority) in enumerate(
            [("patient", 0), ("urgent", 5), ("also urgent", 5)], start=1
        ):
            request = worker_pb2.GenerateRequest(messages=[user(text)], priority=priority)
            waiting.append(stub.Generate(request, timeout=GUARD_S))
            await running.admission.wait_until(lambda a, n=queued: a.queued == n, GUARD_S)
        holding.cancel()  # the slot frees: the queue drains one by one
        answers = await asyncio.gather(*(_read_all(call) for call in waiting))
    assert all(events[-1].HasField("summary") for events in answers)
    order = [r["messages"][-1]["content"] for r in worker_ollama.generation_requests()]
    assert order == ["hi", *served]


async def test_deadline_passing_in_the_queue_is_deadline_exceeded(
    small_worker: RunningWorker, worker_ollama: FakeOllama
) -> None:
    worker_ollama.fail_mode = "stall_before_first_token"
    async with grpc.aio.insecure_channel(small_worker.address) as channel:
        stub = worker_stub(channel)
        holding = stub.Generate(HI, timeout=GUARD_S)
        await small_worker.admission.wait_until(lambda a: a.running == 1, GUARD_S)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stub.Generate(HI, timeout=0.3):
                pass
        holding.cancel()
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_connection_reset_before_the_first_token_is_retried_once(
    worker: RunningWorker, worker_ollama: FakeOllama
) -> None:
    worker_ollama.fail_mode = "reset_once"
    worker_ollama.reply = "second time lucky"
    before = len(worker_ollama.generation_requests())
    async with grpc.aio.insecure_channel(worker.address) as channel:
        events = [r async for r in worker_stub(channel).Generate(HI, timeout=GUARD_S)]
    assert "".join(e.delta.text for e in events if e.HasField("delta")) == "second time lucky"
    assert len(worker_ollama.generation_requests()) == before + 2


@pytest.mark.parametrize("coalesce_after_ms", [0.0, 2.0])
async def test_a_client_that_stops_reading_stops_ollama_not_the_worker_memory(
    worker_ollama: FakeOllama, coalesce_after_ms: float
) -> None:
    token = "x" * 999
    total = 30_000  # about 34 MB of NDJSON: far more than every buffer on the way
    # How far Ollama may run ahead of what the client has read: the socket and
    # HTTP/2 buffers between them hold about 12k of these tokens (measured: 13 MB).
    lag_bound = 18_000
    worker_ollama.reply = " ".join([token] * total)
    settings = worker_settings(worker_ollama.url, coalesce_after_ms=coalesce_after_ms)
    async with (
        running_worker(settings) as worker,
        grpc.aio.insecure_channel(worker.address) as channel,
    ):
        await wait_for_health(worker.address, WORKER_SERVICE)
        call = worker_stub(channel).Generate(HI, timeout=GUARD_S)
        first = await call.read()
        assert first.HasField("delta")
        # We read nothing more until Ollama's socket is full: backpressure reached it.
        assert await _in_thread(worker_ollama.backpressured), (
            "Ollama never blocked: something buffers it all"
        )
        texts, tokens, messages = [first.delta.text], first.delta.tokens, 1
        # Ollama never runs further ahead of the reader than the buffers hold, paused
        # or not: a worker that buffered the stream would let it run to the end.
        lag = worker_ollama.tokens_sent - tokens
        while (response := await call.read()) is not grpc.aio.EOF:
            lag = max(lag, worker_ollama.tokens_sent - tokens)
            if response.HasField("delta"):
                texts.append(response.delta.text)
                tokens += response.delta.tokens
                messages += 1
            last = response
    assert lag < lag_bound, f"Ollama ran {lag} tokens ahead of the reader"
    assert "".join(texts) == worker_ollama.reply  # nothing lost, nothing reordered
    assert tokens == total == last.summary.usage.completion_tokens
    if coalesce_after_ms:
        # The tokens that queued up while the client was not reading came in far
        # fewer messages than tokens: merged, not sent one by one after the fact.
        assert messages < total // 2
    else:
        assert messages == total


async def test_liveness_check_runs_a_one_token_generation_without_extending_residency(
    worker_ollama: FakeOllama,
) -> None:
    settings = worker_settings(worker_ollama.url, liveness_interval_s=0.01)
    async with running_worker(settings) as running:
        await wait_for_health(running.address, WORKER_SERVICE)
        await running.monitor.changes.wait_until(
            lambda: running.monitor.status().HasField("liveness"), GUARD_S
        )
        status = running.monitor.status()
        checks = [r for r in worker_ollama.generation_requests() if r.get("stream") is False]
        assert checks and checks[0]["options"]["num_predict"] == 1
        assert isinstance(checks[0]["keep_alive"], int) and 0 < checks[0]["keep_alive"] <= 7200
        assert status.liveness.ok
        worker_ollama.fail_mode = "http_500"  # tags still answer, generation is broken
        await wait_for_health(running.address, WORKER_SERVICE, NOT_SERVING)
        assert "terminated" in running.monitor.status().liveness.error
