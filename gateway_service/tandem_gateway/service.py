"""``tandem.v1.GatewayService``: screen, then answer a refusal or relay a worker's stream."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator

import grpc
from grpc_status import rpc_status

from tandem.conversions import options_from_proto, seconds_to_duration, turns_from_proto
from tandem.inflight import InFlight
from tandem.metadata import REQUEST_ID_KEY, request_id_of
from tandem.status import RichStatus, RichStatusError, abort, unavailable
from tandem.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc, worker_pb2
from tandem_gateway.cluster import ClusterView
from tandem_gateway.guard.decision import GuardDecision
from tandem_gateway.guard.guard import Guard
from tandem_gateway.workers import NoWorkerError, WorkerLink

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0


class GatewayService(gateway_pb2_grpc.GatewayServiceServicer):
    def __init__(
        self,
        guard: Guard,
        cluster: ClusterView,
        *,
        max_prompt_chars: int,
        max_route_s: float,
        worker_connect_timeout_s: float,
    ) -> None:
        self._guard = guard
        self._cluster = cluster
        self._max_prompt_chars = max_prompt_chars
        self._max_route_s = max_route_s
        self._worker_connect_timeout_s = worker_connect_timeout_s
        self.routes = InFlight()

    async def Classify(
        self, request: gateway_pb2.ClassifyRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.ClassifyResponse:
        try:
            turns = turns_from_proto(request.messages, max_chars=self._max_prompt_chars)
        except RichStatusError as exc:
            await abort(context, exc.status)
        decision = await self._guard.decide(turns)
        _log_decision(request_id_of(context), decision)
        return gateway_pb2.ClassifyResponse(decision=decision.to_proto())

    async def Route(
        self, request: gateway_pb2.RouteRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gateway_pb2.RouteResponse]:
        with self.routes.track():
            events = self._route(request, context)
            async with contextlib.aclosing(events):
                async for response in events:
                    yield response

    async def _route(
        self, request: gateway_pb2.RouteRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gateway_pb2.RouteResponse]:
        started = time.monotonic()
        request_id = request_id_of(context)
        try:
            turns = turns_from_proto(request.messages, max_chars=self._max_prompt_chars)
            options_from_proto(request.options)
        except RichStatusError as exc:
            await abort(context, exc.status)
        decision = await self._guard.decide(turns)
        _log_decision(request_id, decision)
        yield gateway_pb2.RouteResponse(decision=decision.to_proto())
        if decision.refused:
            elapsed = seconds_to_duration(time.monotonic() - started)
            yield gateway_pb2.RouteResponse(
                summary=gateway_pb2.RouteSummary(
                    finish_reason=common_pb2.FINISH_REASON_REFUSED,
                    message=decision.refusal_message(),
                    timings=common_pb2.Timings(time_to_first_token=elapsed, total=elapsed),
                )
            )
            return
        generate = worker_pb2.GenerateRequest(messages=request.messages, options=request.options)
        tried: set[str] = set()
        while True:
            link = await self._choose_worker(context, tried, started)
            tried.add(link.address)
            relay = _Relay(link, started)
            try:
                events = relay.run(generate, self._remaining(context, started), request_id)
                async with contextlib.aclosing(events):
                    async for event in events:
                        yield event
                return
            except _RetryElsewhere as exc:
                log.warning("route %s: worker %s failed before the first token: %s; trying another",
                            request_id, link.address, exc)
                continue
            except RichStatusError as exc:
                await abort(context, exc.status)

    def _remaining(self, context: grpc.aio.ServicerContext, started: float) -> float:
        remaining = context.time_remaining()
        budget = self._max_route_s - (time.monotonic() - started)
        return max(0.0, budget if remaining is None else min(remaining, budget))

    async def _choose_worker(
        self, context: grpc.aio.ServicerContext, tried: set[str], started: float
    ) -> WorkerLink:
        wait_s = min(self._worker_connect_timeout_s, self._remaining(context, started))
        try:
            return await self._cluster.pool.wait_for_worker(tried, wait_s)
        except NoWorkerError as exc:
            await abort(context, exc.status)

    async def GetClusterStatus(
        self, request: gateway_pb2.GetClusterStatusRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.ClusterStatus:
        await self._cluster.monitor.refresh()
        return self._cluster.snapshot()

    async def WatchClusterStatus(
        self, request: gateway_pb2.WatchClusterStatusRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gateway_pb2.ClusterStatus]:
        while True:
            yield self._cluster.snapshot()
            await self._cluster.wait_for_change(HEARTBEAT_S)


class _RetryElsewhere(Exception):
    """The worker failed before producing anything: another worker may answer."""


class _Relay:
    """Relays one worker's Generate stream as Route events."""

    def __init__(self, link: WorkerLink, started: float) -> None:
        self._link = link
        self._started = started

    async def run(
        self, request: worker_pb2.GenerateRequest, timeout_s: float, request_id: str
    ) -> AsyncIterator[gateway_pb2.RouteResponse]:
        link = self._link
        call = link.stub.Generate(
            request, timeout=timeout_s, metadata=((REQUEST_ID_KEY, request_id),)
        )
        link.in_flight += 1
        first_token_at: float | None = None
        try:
            async for response in call:
                if response.HasField("delta"):
                    if first_token_at is None:
                        first_token_at = time.monotonic()
                    yield gateway_pb2.RouteResponse(delta=response.delta)
                elif response.HasField("summary"):
                    yield gateway_pb2.RouteResponse(
                        summary=self._summary(response.summary, first_token_at)
                    )
                    return
            raise RichStatusError(
                unavailable(link.address, f"worker {link.address} ended its stream without a summary")
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE and first_token_at is None:
                raise _RetryElsewhere(f"{exc.code().name}: {exc.details()}") from exc
            raise RichStatusError(_worker_failure(link.address, exc)) from exc
        finally:
            link.in_flight -= 1
            # No-op when the call finished; otherwise (our caller cancelled, or we
            # failed) it cancels the worker's generation at once.
            call.cancel()

    def _summary(
        self, summary: worker_pb2.GenerateSummary, first_token_at: float | None
    ) -> gateway_pb2.RouteSummary:
        now = time.monotonic()
        timings = common_pb2.Timings()
        timings.CopyFrom(summary.timings)
        timings.time_to_first_token.CopyFrom(
            seconds_to_duration((first_token_at or now) - self._started)
        )
        timings.total.CopyFrom(seconds_to_duration(now - self._started))
        return gateway_pb2.RouteSummary(
            finish_reason=summary.finish_reason,
            usage=summary.usage,
            timings=timings,
            worker=self._link.address,
            model=summary.model,
        )


def _worker_failure(address: str, exc: grpc.aio.AioRpcError) -> RichStatus:
    """The worker's status, with its rich details, said to come from that worker."""
    message = f"worker {address}: {exc.details()}"
    details: tuple = ()
    try:
        original = rpc_status.from_call(exc)  # type: ignore[arg-type]
    except ValueError:
        original = None
    if original is not None:
        details = tuple(original.details)
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        return unavailable(address, message, reason="WORKER_UNAVAILABLE")
    return RichStatus(exc.code(), message, details)


def _log_decision(request_id: str, decision: GuardDecision) -> None:
    log.info(
        "decision %s: %s by %s in %.0f ms (%s)",
        request_id,
        decision.verdict,
        decision.tier,
        decision.latency_s * 1000,
        decision.reason,
    )
