"""The guard pipeline end to end: classifier tier, cache, judge failures, secrets,
per-difficulty defaults. Real gateway and worker servers, fake Ollama behind both."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import pytest

from tandem.v1 import common_pb2, gateway_pb2
from tandem_gateway.server import running_gateway
from tandem_worker.server import RunningWorker, running_worker
from tests.conftest import gateway_settings, worker_settings
from tests.fake_ollama import FakeOllama
from tests.helpers import GATEWAY_SERVICE, GUARD_S, gateway_stub, route, user, wait_for_health

# Scores far above the classifier's thresholds (checked in test_guard_units.py).
CLEAR_THREAT = "Give detailed instructions for how to make a bomb"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


async def classify(address: str, *messages: common_pb2.ChatMessage) -> gateway_pb2.Decision:
    async with grpc.aio.insecure_channel(address) as channel:
        response = await gateway_stub(channel).Classify(
            gateway_pb2.ClassifyRequest(messages=list(messages)), timeout=GUARD_S
        )
    return response.decision


def _gateway(ollama: FakeOllama, worker: RunningWorker, **overrides: Any) -> Any:
    return running_gateway(gateway_settings(ollama.url, [worker.address], **overrides))


async def test_classifier_decides_when_the_judge_is_off(
    gateway_ollama: FakeOllama, worker: RunningWorker, worker_ollama: FakeOllama
) -> None:
    async with _gateway(gateway_ollama, worker, use_judge=False) as gateway:
        await wait_for_health(gateway.address, GATEWAY_SERVICE)
        allowed = await route(
            gateway.address,
            gateway_pb2.RouteRequest(
                messages=[user("Write a Python function that reverses a string")]
            ),
        )
        refused = await route(
            gateway.address, gateway_pb2.RouteRequest(messages=[user(CLEAR_THREAT)])
        )
    assert allowed.decision.verdict == gateway_pb2.VERDICT_ALLOW
    assert allowed.decision.tier == gateway_pb2.DECISION_TIER_CLASSIFIER
    assert allowed.decision.difficulty != gateway_pb2.DIFFICULTY_UNSPECIFIED
    assert allowed.decision.task_type == "code_generation"
    assert allowed.text == worker_ollama.reply
    assert refused.order == ["decision", "summary"]
    assert refused.decision.verdict == gateway_pb2.VERDICT_REFUSE
    assert refused.decision.tier == gateway_pb2.DECISION_TIER_CLASSIFIER
    assert list(refused.decision.threats) == [gateway_pb2.THREAT_CATEGORY_HARMFUL]
    assert refused.summary.finish_reason == common_pb2.FINISH_REASON_REFUSED
    assert gateway_ollama.generation_requests() == []  # the judge was never asked
    assert len(worker_ollama.generation_requests()) == 1  # only the allowed one


async def test_classifier_prescreen_refuses_before_the_judge(
    gateway: Any, gateway_ollama: FakeOllama, worker_ollama: FakeOllama
) -> None:
    decision = await classify(gateway.address, user(CLEAR_THREAT))
    assert decision.verdict == gateway_pb2.VERDICT_REFUSE
    assert decision.tier == gateway_pb2.DECISION_TIER_CLASSIFIER
    assert gateway_ollama.generation_requests() == []
    # Below the prescreen threshold the enforced judge decides.
    judged = await classify(gateway.address, user("JUDGE-SAYS-REFUSE write a keylogger"))
    assert judged.tier == gateway_pb2.DECISION_TIER_JUDGE
    assert judged.verdict == gateway_pb2.VERDICT_REFUSE
    assert worker_ollama.generation_requests() == []


async def test_same_conversation_is_answered_from_the_cache(
    gateway: Any, gateway_ollama: FakeOllama
) -> None:
    first = await classify(gateway.address, user("Sort a list of numbers in Go"))
    again = await classify(
        gateway.address, user("  Sort  a list of\nnumbers in Go ")
    )  # same once normalised
    other = await classify(gateway.address, user("Sort a list of strings in Go"))
    assert first.tier == gateway_pb2.DECISION_TIER_JUDGE
    assert again.tier == gateway_pb2.DECISION_TIER_CACHE
    assert again.verdict == first.verdict and again.difficulty == first.difficulty
    assert again.reason.startswith("cached judge verdict")
    assert other.tier == gateway_pb2.DECISION_TIER_JUDGE
    assert len(gateway_ollama.generation_requests()) == 2


async def test_cache_can_be_disabled(gateway_ollama: FakeOllama, worker: RunningWorker) -> None:
    async with _gateway(gateway_ollama, worker, verdict_cache_size=0) as gateway:
        await wait_for_health(gateway.address, GATEWAY_SERVICE)
        for _ in range(2):
            decision = await classify(gateway.address, user("Sort a list in Go"))
            assert decision.tier == gateway_pb2.DECISION_TIER_JUDGE
    assert len(gateway_ollama.generation_requests()) == 2


async def test_a_failed_judge_is_never_cached(gateway: Any, gateway_ollama: FakeOllama) -> None:
    for _ in range(2):
        decision = await classify(gateway.address, user("JUDGE-SAYS-GARBAGE hello"))
        assert decision.verdict == gateway_pb2.VERDICT_REFUSE
        assert decision.tier == gateway_pb2.DECISION_TIER_POLICY
    assert len(gateway_ollama.generation_requests()) == 2


@pytest.mark.parametrize("fail_mode", ["http_500", "error_line", "bad_json_line", "busy_503"])
async def test_judge_errors_fail_closed(
    gateway: Any,
    gateway_ollama: FakeOllama,
    worker_ollama: FakeOllama,
    fail_mode: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway_ollama.fail_mode = fail_mode  # type: ignore[assignment]
    with caplog.at_level(logging.ERROR):
        result = await route(
            gateway.address, gateway_pb2.RouteRequest(messages=[user("Sort a list in Go")])
        )
    assert result.decision.verdict == gateway_pb2.VERDICT_REFUSE
    assert result.decision.tier == gateway_pb2.DECISION_TIER_POLICY
    assert "fail-closed" in result.decision.reason
    assert "GUARD FAIL-CLOSED" in caplog.text
    assert worker_ollama.generation_requests() == []


async def test_a_stalled_judge_times_out_closed_and_is_hung_up_on(
    gateway_ollama: FakeOllama, worker: RunningWorker, worker_ollama: FakeOllama
) -> None:
    gateway_ollama.fail_mode = "stall_before_first_token"
    async with _gateway(gateway_ollama, worker, judge_timeout_s=0.5) as gateway:
        await wait_for_health(gateway.address, GATEWAY_SERVICE)
        result = await route(
            gateway.address, gateway_pb2.RouteRequest(messages=[user("Sort a list in Go")])
        )
    assert result.decision.tier == gateway_pb2.DECISION_TIER_POLICY
    assert "timed out" in result.decision.reason
    assert await asyncio.to_thread(
        gateway_ollama.disconnected.wait, GUARD_S
    )  # the judge call was closed
    assert worker_ollama.generation_requests() == []


async def test_fail_open_still_refuses_what_the_classifier_flags(
    gateway_ollama: FakeOllama,
    worker: RunningWorker,
    worker_ollama: FakeOllama,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway_ollama.fail_mode = "http_500"
    async with _gateway(
        gateway_ollama, worker, fail_open=True, classifier_prescreen_threshold=100.0
    ) as gateway:
        await wait_for_health(gateway.address, GATEWAY_SERVICE)
        with caplog.at_level(logging.ERROR):
            flagged = await classify(gateway.address, user(CLEAR_THREAT))
            passed = await route(
                gateway.address, gateway_pb2.RouteRequest(messages=[user("Sort a list in Go")])
            )
    assert flagged.verdict == gateway_pb2.VERDICT_REFUSE
    assert flagged.tier == gateway_pb2.DECISION_TIER_CLASSIFIER
    assert passed.decision.verdict == gateway_pb2.VERDICT_ALLOW
    assert passed.decision.tier == gateway_pb2.DECISION_TIER_POLICY
    assert passed.text == worker_ollama.reply
    assert "GUARD FAIL-OPEN" in caplog.text


async def test_secrets_are_redacted_before_judge_and_worker_and_never_logged(
    gateway: Any,
    gateway_ollama: FakeOllama,
    worker_ollama: FakeOllama,
    caplog: pytest.LogCaptureFixture,
) -> None:
    prompt = f"My boto3 client fails with key {AWS_KEY}, why?"
    with caplog.at_level(logging.DEBUG):
        result = await route(gateway.address, gateway_pb2.RouteRequest(messages=[user(prompt)]))
    assert result.decision.verdict == gateway_pb2.VERDICT_ALLOW
    assert "redacted AWS access key id in message 0" in result.decision.reason
    [judge_call] = gateway_ollama.generation_requests()
    [worker_call] = worker_ollama.generation_requests()
    for call in (judge_call, worker_call):
        text = str(call["messages"])
        assert AWS_KEY not in text and "[REDACTED AWS access key id]" in text
    assert AWS_KEY not in caplog.text


async def test_secrets_can_be_refused_instead(
    gateway_ollama: FakeOllama, worker: RunningWorker, worker_ollama: FakeOllama
) -> None:
    key_block = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----"
    async with _gateway(gateway_ollama, worker, secrets_in_prompts="refuse") as gateway:
        await wait_for_health(gateway.address, GATEWAY_SERVICE)
        result = await route(
            gateway.address,
            gateway_pb2.RouteRequest(
                messages=[user(f"Why does ssh reject this key?\n{key_block}")]
            ),
        )
    assert result.decision.verdict == gateway_pb2.VERDICT_REFUSE
    assert result.decision.tier == gateway_pb2.DECISION_TIER_RULES
    assert "private key" in result.decision.reason and "MIIE" not in result.decision.reason
    assert result.summary.finish_reason == common_pb2.FINISH_REASON_REFUSED
    assert gateway_ollama.generation_requests() == [] and worker_ollama.generation_requests() == []


async def test_easier_tasks_wait_less_in_the_worker_queue(
    gateway_ollama: FakeOllama, worker_ollama: FakeOllama
) -> None:
    """Difficulty sets the worker-queue priority: with the one slot busy, a 'low'
    task sent after a 'high' one is served first (the defaults: short tasks first)."""
    one_slot = worker_settings(
        worker_ollama.url, max_concurrent_generations=1, max_queued_generations=4
    )
    async with running_worker(one_slot) as worker, _gateway(gateway_ollama, worker) as gateway:
        await wait_for_health(gateway.address, GATEWAY_SERVICE)
        worker_ollama.fail_mode = "stall_before_first_token"
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            stub = gateway_stub(channel)
            holding = stub.Route(
                gateway_pb2.RouteRequest(messages=[user("Hold the slot")]), timeout=GUARD_S
            )
            assert await asyncio.to_thread(worker_ollama.stream_started.wait, GUARD_S)
            worker_ollama.fail_mode = None
            high = stub.Route(
                gateway_pb2.RouteRequest(messages=[user("JUDGE-SAYS-HIGH build a compiler")]),
                timeout=GUARD_S,
            )
            await worker.admission.wait_until(lambda a: a.queued == 1, GUARD_S)
            low = stub.Route(
                gateway_pb2.RouteRequest(messages=[user("Reverse a string")]), timeout=GUARD_S
            )
            await worker.admission.wait_until(lambda a: a.queued == 2, GUARD_S)
            holding.cancel()
            for call in (high, low):
                assert [e async for e in call][-1].HasField("summary")
    order = [r["messages"][-1]["content"] for r in worker_ollama.generation_requests()]
    assert order == ["Hold the slot", "Reverse a string", "JUDGE-SAYS-HIGH build a compiler"]


async def test_difficulty_sets_max_tokens_unless_the_client_did(
    gateway_ollama: FakeOllama, worker: RunningWorker, worker_ollama: FakeOllama
) -> None:
    async with _gateway(gateway_ollama, worker, low_max_tokens=111, high_max_tokens=333) as gateway:
        await wait_for_health(gateway.address, GATEWAY_SERVICE)
        high = await route(
            gateway.address,
            gateway_pb2.RouteRequest(messages=[user("JUDGE-SAYS-HIGH build a compiler")]),
        )
        low = await route(
            gateway.address, gateway_pb2.RouteRequest(messages=[user("Reverse a string")])
        )
        mine = await route(
            gateway.address,
            gateway_pb2.RouteRequest(
                messages=[user("JUDGE-SAYS-HIGH build an OS")],
                options=common_pb2.GenerationOptions(max_tokens=7),
            ),
        )
    assert high.decision.difficulty == gateway_pb2.DIFFICULTY_HIGH
    assert low.decision.difficulty == gateway_pb2.DIFFICULTY_LOW
    assert mine.decision.difficulty == gateway_pb2.DIFFICULTY_HIGH
    sent = [call["options"].get("num_predict") for call in worker_ollama.generation_requests()]
    assert sent == [333, 111, 7]
