"""What the load generator talks to: the same request, five ways.

- ``direct``: the stand-in's ``/api/chat`` over HTTP (NDJSON), the baseline (a);
- ``worker``: ``tandem.v1.WorkerService/Generate`` (b);
- ``gateway``: ``tandem.v1.GatewayService/Route`` (c, d: the prompt decides
  whether a verdict cache could answer);
- ``litellm``: the LiteLLM proxy's OpenAI ``/v1/chat/completions`` with
  ``stream: true`` (server-sent events).

Each ``Target.request`` streams one answer and fills a ``RequestRecord``; the
shared ``TokenCounter`` counts every token as it arrives.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc

from bench.http_client import HttpConnection
from bench.kinds import TargetKind
from tandem.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc, worker_pb2, worker_pb2_grpc

WORKER_MODEL = "qwen3-coder-next"
LITELLM_MODEL = "bench-model"
_CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
)
_TIER_NAMES = {
    value: name.removeprefix("DECISION_TIER_").lower()
    for name, value in gateway_pb2.DecisionTier.items()
}


@dataclass
class TokenCounter:
    tokens: int = 0


@dataclass
class RequestRecord:
    """One request as the client saw it (``time.monotonic()`` seconds)."""

    started: float
    first_token: float | None = None
    finished: float | None = None
    tokens: int = 0
    error: str = ""
    tier: str = ""
    judge_s: float | None = None

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.started

    @property
    def total_s(self) -> float | None:
        return None if self.finished is None else self.finished - self.started


@dataclass(frozen=True)
class Ask:
    prompt: str
    max_tokens: int


class Target(Protocol):
    kind: TargetKind

    async def request(self, ask: Ask, record: RequestRecord, counter: TokenCounter) -> None:
        """Stream one answer; cancelling the task cancels the request (hang-up)."""

    async def close(self) -> None: ...


def _token(record: RequestRecord, counter: TokenCounter, tokens: int = 1) -> None:
    if record.first_token is None:
        record.first_token = time.monotonic()
    record.tokens += tokens
    counter.tokens += tokens


@dataclass
class DirectTarget:
    """The stand-in itself, as an Ollama client would call it."""

    host: str
    port: int
    kind: TargetKind = "direct"
    _connection: HttpConnection | None = field(default=None, repr=False)

    async def request(self, ask: Ask, record: RequestRecord, counter: TokenCounter) -> None:
        if self._connection is None:
            self._connection = HttpConnection(self.host, self.port)
        body = json.dumps(
            {
                "model": WORKER_MODEL,
                "messages": [{"role": "user", "content": ask.prompt}],
                "stream": True,
                "options": {"num_predict": ask.max_tokens},
            }
        ).encode()
        lines = self._connection.stream("POST", "/api/chat", body)
        async with contextlib.aclosing(lines):
            async for line in lines:
                chunk = json.loads(line)
                if chunk.get("message", {}).get("content"):
                    _token(record, counter)
                if chunk.get("done"):
                    break
        record.finished = time.monotonic()

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


@dataclass
class LiteLLMTarget:
    """The LiteLLM proxy's OpenAI-compatible streaming chat completions."""

    host: str
    port: int
    kind: TargetKind = "litellm"
    _connection: HttpConnection | None = field(default=None, repr=False)

    async def request(self, ask: Ask, record: RequestRecord, counter: TokenCounter) -> None:
        if self._connection is None:
            self._connection = HttpConnection(self.host, self.port)
        body = json.dumps(
            {
                "model": LITELLM_MODEL,
                "messages": [{"role": "user", "content": ask.prompt}],
                "stream": True,
                "max_tokens": ask.max_tokens,
            }
        ).encode()
        lines = self._connection.stream("POST", "/v1/chat/completions", body)
        async with contextlib.aclosing(lines):
            async for line in lines:
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    break
                choices = json.loads(payload).get("choices") or [{}]
                if (choices[0].get("delta") or {}).get("content"):
                    _token(record, counter)
        record.finished = time.monotonic()

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


def _messages(ask: Ask) -> list[common_pb2.ChatMessage]:
    return [common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=ask.prompt)]


class _GrpcTarget:
    """One channel for every stream (HTTP/2 multiplexes them), as gRPC clients do."""

    def __init__(self, address: str) -> None:
        self._channel = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)

    async def close(self) -> None:
        await self._channel.close()


class WorkerTarget(_GrpcTarget):
    """``WorkerService/Generate``: deltas, then a summary."""

    kind: TargetKind = "worker"

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self._stub = worker_pb2_grpc.WorkerServiceStub(self._channel)

    async def request(self, ask: Ask, record: RequestRecord, counter: TokenCounter) -> None:
        await _consume(
            self._stub.Generate(
                worker_pb2.GenerateRequest(
                    messages=_messages(ask),
                    options=common_pb2.GenerationOptions(max_tokens=ask.max_tokens),
                )
            ),
            record,
            counter,
        )


class GatewayTarget(_GrpcTarget):
    """``GatewayService/Route``: a decision, the deltas, a summary."""

    kind: TargetKind = "gateway"

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self._stub = gateway_pb2_grpc.GatewayServiceStub(self._channel)

    async def request(self, ask: Ask, record: RequestRecord, counter: TokenCounter) -> None:
        await _consume(
            self._stub.Route(
                gateway_pb2.RouteRequest(
                    messages=_messages(ask),
                    options=common_pb2.GenerationOptions(max_tokens=ask.max_tokens),
                )
            ),
            record,
            counter,
            _decision,
        )


async def _consume(
    call: Any,
    record: RequestRecord,
    counter: TokenCounter,
    on_decision: Callable[[Any, RequestRecord], None] | None = None,
) -> None:
    """Read a streaming call to its end (deltas counted); a hang-up cancels it."""
    try:
        async for response in call:
            if response.HasField("delta"):
                # One message may carry several tokens (merged while the reader was behind).
                _token(record, counter, response.delta.tokens or 1)
            elif on_decision is not None and response.HasField("decision"):
                on_decision(response.decision, record)
        record.finished = time.monotonic()
    finally:
        call.cancel()


def _decision(decision: gateway_pb2.Decision, record: RequestRecord) -> None:
    record.tier = _TIER_NAMES.get(decision.tier, str(decision.tier))
    record.judge_s = decision.latency.ToNanoseconds() / 1e9
    if decision.verdict == gateway_pb2.VERDICT_REFUSE:
        record.error = f"refused: {decision.reason}"


def one_per_stream(kind: TargetKind) -> bool:
    """HTTP clients keep one connection per concurrent stream; gRPC multiplexes one channel."""
    return kind in ("direct", "litellm")


def build_target(kind: TargetKind, address: str) -> Target:
    host, _, port = address.rpartition(":")
    if kind == "direct":
        return DirectTarget(host, int(port))
    if kind == "litellm":
        return LiteLLMTarget(host, int(port))
    if kind == "worker":
        return WorkerTarget(address)
    return GatewayTarget(address)


def rpc_error_text(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"
