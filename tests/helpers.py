"""Test helpers: talk to real servers through real channels."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from prometheus_client.parser import text_string_to_metric_families

from tandem.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc, worker_pb2, worker_pb2_grpc

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
                # Cancelled explicitly: closing a grpc.aio channel does not end a call
                # no task awaits, so the server would keep this watch until GC.
                request = health_pb2.HealthCheckRequest(service=service)
                call = stub.Watch(request, wait_for_ready=True)
                try:
                    async for reply in call:
                        if reply.status == wanted:
                            return
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    await channel.channel_ready()  # the server went away: wait until it is back
                finally:
                    call.cancel()


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


async def route(
    address: str, request: gateway_pb2.RouteRequest, timeout: float = GUARD_S
) -> RouteResult:
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


def start_stream(channel: grpc.aio.Channel, via: str, text: str) -> grpc.aio.UnaryStreamCall:
    """A streaming call with one user message: ``Route`` if ``via`` is "gateway",
    else ``Generate`` straight at the worker the channel leads to."""
    messages = [user(text)]
    if via == "gateway":
        route_request = gateway_pb2.RouteRequest(messages=messages)
        return gateway_stub(channel).Route(route_request, timeout=GUARD_S)
    request = worker_pb2.GenerateRequest(messages=messages)
    return worker_stub(channel).Generate(request, timeout=GUARD_S)


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


def judge_reply(
    verdict: str = "allow",
    *,
    threats: list[str] | None = None,
    difficulty: str = "low",
    task_type: str = "code_generation",
    reason: str = "an ordinary coding task",
) -> str:
    return json.dumps(
        {
            "verdict": verdict,
            "threats": threats or [],
            "difficulty": difficulty,
            "task_type": task_type,
            "reason": reason,
        }
    )


MetricSamples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape_metrics(address: str) -> MetricSamples:
    """GET a service's /metrics page and parse it: (sample name, sorted labels) -> value."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://{address}/metrics", timeout=10)
    response.raise_for_status()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def worker_generate_calls(metrics_address: str) -> int:
    """How many Generate calls the worker finished, any status (tandem_worker_calls_total)."""
    samples = await scrape_metrics(metrics_address)
    return int(
        sum(
            value
            for (name, labels), value in samples.items()
            if name == "tandem_worker_calls_total" and ("method", "Generate") in labels
        )
    )
