"""``tandem.v1.GatewayService``: validate → screen → route (screened or speculative) → events.

Refusals are answered here; an allowed request becomes a ``WorkerCall`` that
the pool carries out (``WorkerPool.generate``). Failures are raised as
``tandem.errors`` faults; the server interceptor turns them into statuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any

import grpc

from tandem.conversions import (
    options_from_proto,
    request_from_proto,
    tools_from_proto,
    turns_from_proto,
)
from tandem.inflight import InFlight
from tandem.metadata import request_id_of
from tandem.protoutil import seconds_to_duration
from tandem.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from tandem_gateway.cluster import ClusterView
from tandem_gateway.guard.decision import GuardDecision
from tandem_gateway.guard.guard import Guard
from tandem_gateway.routing import RouteCall, RoutingPolicy

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0


class GatewayService(gateway_pb2_grpc.GatewayServiceServicer):
    def __init__(
        self,
        guard: Guard,
        cluster: ClusterView,
        *,
        max_prompt_chars: int,
        max_tool_nesting: int | None = None,
        routing: RoutingPolicy | None = None,
    ) -> None:
        self._guard = guard
        self._cluster = cluster
        self._max_prompt_chars = max_prompt_chars
        self._max_tool_nesting = max_tool_nesting
        self._routing = routing or RoutingPolicy()
        self.routes = InFlight()

    def _turns(self, messages: Any) -> list[Any]:
        return turns_from_proto(
            messages, max_chars=self._max_prompt_chars, max_tool_nesting=self._max_tool_nesting
        )

    async def Classify(
        self, request: gateway_pb2.ClassifyRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.ClassifyResponse:
        turns = self._turns(request.messages)
        tools = tools_from_proto(request.tools)
        decision = await self._guard.decide(turns, tools)
        _log_decision(request_id_of(context), decision)
        return gateway_pb2.ClassifyResponse(decision=decision.to_proto())

    async def Route(
        self, request: gateway_pb2.RouteRequest, context: grpc.aio.ServicerContext
    ) -> AsyncGenerator[gateway_pb2.RouteResponse, None]:
        with self.routes.track():
            started = time.monotonic()
            turns = self._turns(request.messages)
            options_from_proto(request.options)
            chat = request_from_proto(
                request.tools, request.tool_choice, request.response_format, request.model
            )
            if chat.model is not None:
                self._cluster.pool.check_model(chat.model)  # NOT_FOUND before screening
            remaining = context.time_remaining()
            route = RouteCall(
                request=request,
                screening=await self._guard.screen(turns, chat.tools),
                request_id=request_id_of(context),
                started=started,
                client_deadline=None if remaining is None else time.monotonic() + remaining,
            )
            if route.screening.decision is None and self._routing.speculative:
                events = self._speculative(route)
            else:
                events = self._screened(route)
            async with contextlib.aclosing(events):
                async for event in events:
                    yield event

    async def _screened(self, route: RouteCall) -> AsyncGenerator[gateway_pb2.RouteResponse, None]:
        """Decide first; only an allowed request reaches a worker."""
        decision = await self._guard.finish(route.screening)
        _log_decision(route.request_id, decision)
        if decision.refused:
            yield gateway_pb2.RouteResponse(decision=decision.to_proto())
            yield _refusal(decision, route.started)
            return
        events = self._dispatch(route, decision)
        async with contextlib.aclosing(events):
            async for event in events:
                yield event

    async def _dispatch(
        self, route: RouteCall, decision: GuardDecision
    ) -> AsyncGenerator[gateway_pb2.RouteResponse, None]:
        """The decision, then the worker's answer to the allowed request (with the tool
        results the guard withheld replaced)."""
        route = dataclasses.replace(route, screening=route.screening.after(decision))
        call = self._routing.worker_call(route, decision.difficulty)
        events = self._cluster.pool.generate(call)
        # The worker call starts now, so its request crosses the link while the
        # decision is being written; no token can overtake the decision.
        first = asyncio.ensure_future(anext(events, None))
        try:
            yield gateway_pb2.RouteResponse(decision=decision.to_proto())
            event = await first
            while event is not None:
                yield event
                event = await anext(events, None)
        finally:
            await _cancel(first)
            await events.aclose()

    async def _speculative(
        self, route: RouteCall
    ) -> AsyncGenerator[gateway_pb2.RouteResponse, None]:
        """Start the worker while the judge runs; hold its events until the verdict.

        Only requests the rules and classifier passed get here. On REFUSE the
        worker call is cancelled (the worker stops its model) and nothing it
        produced is sent; on ALLOW the held events go out after the decision.
        """
        call = self._routing.worker_call(route, route.screening.difficulty)
        held: asyncio.Queue[gateway_pb2.RouteResponse | BaseException | None] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for event in self._cluster.pool.generate(call):
                    held.put_nowait(event)
            except Exception as exc:  # a fault, handed to the route to raise
                held.put_nowait(exc)
                return
            held.put_nowait(None)

        worker = asyncio.create_task(pump(), name=f"speculative-{route.request_id}")
        try:
            decision = await self._guard.finish(route.screening)
            _log_decision(route.request_id, decision)
            if route.screening.after(decision) is not route.screening:
                # The judge withheld a tool result the speculative call was given: that
                # generation is dropped and the request answered without it.
                await _cancel(worker)
                log.info(
                    "route %s: speculative generation cancelled: a tool result was withheld",
                    route.request_id,
                )
                events = self._dispatch(route, decision)
                async with contextlib.aclosing(events):
                    async for event in events:
                        yield event
                return
            yield gateway_pb2.RouteResponse(decision=decision.to_proto())
            if decision.refused:
                await _cancel(worker)
                log.info("route %s: speculative generation cancelled: refused", route.request_id)
                yield _refusal(decision, route.started)
                return
            while (item := await held.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            await _cancel(worker)

    async def GetClusterStatus(
        self, request: gateway_pb2.GetClusterStatusRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.ClusterStatus:
        await self._cluster.refresh()
        return self._cluster.snapshot()

    async def WatchClusterStatus(
        self, request: gateway_pb2.WatchClusterStatusRequest, context: grpc.aio.ServicerContext
    ) -> AsyncGenerator[gateway_pb2.ClusterStatus, None]:
        while True:
            yield self._cluster.snapshot()
            await self._cluster.wait_for_change(HEARTBEAT_S)


def _refusal(decision: GuardDecision, started: float) -> gateway_pb2.RouteResponse:
    elapsed = seconds_to_duration(time.monotonic() - started)
    return gateway_pb2.RouteResponse(
        summary=gateway_pb2.RouteSummary(
            finish_reason=common_pb2.FINISH_REASON_REFUSED,
            message=decision.refusal_message(),
            timings=common_pb2.Timings(time_to_first_token=elapsed, total=elapsed),
        )
    )


async def _cancel(task: asyncio.Future[Any]) -> None:
    """Cancel a worker call's task and wait until it has let go of the worker."""
    if task.done():
        if not task.cancelled():
            task.exception()  # seen: its failure no longer has anyone to go to
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _log_decision(request_id: str, decision: GuardDecision) -> None:
    log.info(
        "decision %s: %s by %s in %.0f ms (%s)",
        request_id,
        decision.verdict,
        decision.tier,
        decision.latency_s * 1000,
        decision.reason,
    )
