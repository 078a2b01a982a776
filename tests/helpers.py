"""Test helpers: talk to real servers through real channels."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from tandem.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc, worker_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
GATEWAY_SERVICE = "tandem.v1.GatewayService"
WORKER_SERVICE = "tandem.v1.WorkerService"
# Guard against hangs only: every wait below returns as soon as its event happens.
GUARD_S = 60.0


def user(text: str) -> common_pb2.ChatMessage:
    return common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=text)


async def wait_for_health(address: str, service: str, wanted: int = SERVING) -> None:
    """Follow Health/Watch until ``service`` reports ``wanted``."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        async with asyncio.timeout(GUARD_S):
            while True:
                try:
                    async for reply in stub.Watch(
                        health_pb2.HealthCheckRequest(service=service), wait_for_ready=True
                    ):
                        if reply.status == wanted:
                            return
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    await channel.channel_ready()  # the server went away: wait until it is back


async def health_status(address: str, service: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
        return reply.status


@dataclass
class RouteResult:
    decision: gateway_pb2.Decision | None = None
    deltas: list[str] = field(default_factory=list)
    summary: gateway_pb2.RouteSummary | None = None
    order: list[str] = field(default_factory=list)
    tokens: int = 0  # summed over the deltas (several tokens when the worker merged them)
    tool_calls: list[common_pb2.ToolCall] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.deltas)

    @property
    def shape(self) -> list[str]:
        """``order`` with each run of deltas shown once: how many messages carried
        the text depends on whether the reader was behind."""
        return [kind for i, kind in enumerate(self.order) if i == 0 or kind != self.order[i - 1]]


async def route(address: str, request: gateway_pb2.RouteRequest, timeout: float = GUARD_S) -> RouteResult:
    result = RouteResult()
    async with grpc.aio.insecure_channel(address) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        async for event in stub.Route(request, timeout=timeout):
            kind = event.WhichOneof("event")
            result.order.append(kind)
            if kind == "decision":
                result.decision = event.decision
            elif kind == "delta":
                result.deltas.append(event.delta.text)
                result.tokens += event.delta.tokens
            elif kind == "tool_call":
                result.tool_calls.append(event.tool_call)
            else:
                result.summary = event.summary
    return result


def gateway_stub(channel: grpc.aio.Channel) -> gateway_pb2_grpc.GatewayServiceStub:
    return gateway_pb2_grpc.GatewayServiceStub(channel)


def worker_stub(channel: grpc.aio.Channel) -> worker_pb2_grpc.WorkerServiceStub:
    return worker_pb2_grpc.WorkerServiceStub(channel)


def rich_details(exc: grpc.aio.AioRpcError) -> list[Any]:
    """Unpack the google.rpc details of a failed call."""
    from google.rpc import error_details_pb2

    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None, "the status carries no rich details"
    unpacked = []
    for detail in status.details:
        for kind in (
            error_details_pb2.BadRequest,
            error_details_pb2.RetryInfo,
            error_details_pb2.ErrorInfo,
            error_details_pb2.PreconditionFailure,
            error_details_pb2.ResourceInfo,
        ):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                unpacked.append(message)
    return unpacked


def judge_reply(verdict: str = "allow", *, threats: list[str] | None = None,
                difficulty: str = "low", task_type: str = "code_generation",
                reason: str = "an ordinary coding task") -> str:
    return json.dumps({
        "verdict": verdict,
        "threats": threats or [],
        "difficulty": difficulty,
        "task_type": task_type,
        "reason": reason,
    })
