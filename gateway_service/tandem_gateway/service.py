"""``tandem.v1.GatewayService``: screen, then answer a refusal or relay a worker's stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_status import rpc_status

from tandem.backends.base import ChatTurn
from tandem.conversions import (
    options_from_proto,
    request_from_proto,
    seconds_to_duration,
    tools_from_proto,
    turns_from_proto,
    turns_to_proto,
)
from tandem.inflight import InFlight
from tandem.metadata import REQUEST_ID_KEY, request_id_of
from tandem.settings import GatewaySettings
from tandem.status import RichStatus, RichStatusError, abort, unavailable
from tandem.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc, worker_pb2
from tandem_gateway.cluster import ClusterView
from tandem_gateway.guard.decision import GuardDecision
from tandem_gateway.guard.guard import Guard, Screening
from tandem_gateway.workers import NoWorkerError, WorkerLink

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
_JSON_FORMATS = (common_pb2.RESPONSE_FORMAT_TYPE_JSON, common_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA)


@dataclass(frozen=True, slots=True)
class DifficultyDefaults:
    """Worker-call defaults for one difficulty, used when the client set none."""

    max_tokens: int
    deadline_s: float
    priority: int = 0


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """How a decision shapes the worker call (built from GatewaySettings)."""

    speculative: bool = False
    defaults: Mapping[str, DifficultyDefaults] = field(default_factory=dict)
    max_tool_nesting: int | None = None

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> RoutingPolicy:
        return cls(
            speculative=settings.speculative_dispatch,
            defaults={
                "low": DifficultyDefaults(
                    settings.low_max_tokens, settings.low_deadline_s, settings.low_priority
                ),
                "medium": DifficultyDefaults(
                    settings.medium_max_tokens, settings.medium_deadline_s, settings.medium_priority
                ),
                "high": DifficultyDefaults(
                    settings.high_max_tokens, settings.high_deadline_s, settings.high_priority
                ),
            },
            max_tool_nesting=settings.max_tool_nesting,
        )

    def for_difficulty(self, difficulty: str | None) -> DifficultyDefaults | None:
        return self.defaults.get(difficulty or "medium")


class GatewayService(gateway_pb2_grpc.GatewayServiceServicer):
    def __init__(
        self,
        guard: Guard,
        cluster: ClusterView,
        *,
        max_prompt_chars: int,
        max_route_s: float,
        worker_connect_timeout_s: float,
        routing: RoutingPolicy | None = None,
    ) -> None:
        self._guard = guard
        self._cluster = cluster
        self._max_prompt_chars = max_prompt_chars
        self._max_route_s = max_route_s
        self._worker_connect_timeout_s = worker_connect_timeout_s
        self._routing = routing or RoutingPolicy()
        self.routes = InFlight()

    def _turns(self, request: gateway_pb2.RouteRequest | gateway_pb2.ClassifyRequest) -> list[ChatTurn]:
        return turns_from_proto(
            request.messages,
            max_chars=self._max_prompt_chars,
            max_tool_nesting=self._routing.max_tool_nesting,
        )

    async def Classify(
        self, request: gateway_pb2.ClassifyRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.ClassifyResponse:
        try:
            turns = self._turns(request)
            tools_from_proto(request.tools)
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
            turns = self._turns(request)
            options_from_proto(request.options)
            chat = request_from_proto(
                request.tools, request.tool_choice, request.response_format, request.model
            )
        except RichStatusError as exc:
            await abort(context, exc.status)
        if chat.model is not None and (unknown := self._cluster.pool.unserved(chat.model)):
            await abort(context, unknown)  # NOT_FOUND before screening: the client's to fix
        screening = self._guard.screen(turns)
        if screening.decision is None and self._routing.speculative:
            events = self._speculative_route(request, screening, context, started, request_id)
        else:
            events = self._screened_route(request, screening, context, started, request_id)
        async with contextlib.aclosing(events):
            async for event in events:
                yield event

    async def _screened_route(
        self,
        request: gateway_pb2.RouteRequest,
        screening: Screening,
        context: grpc.aio.ServicerContext,
        started: float,
        request_id: str,
    ) -> AsyncIterator[gateway_pb2.RouteResponse]:
        """Decide first; only an allowed request reaches a worker."""
        decision = await self._guard.finish(screening)
        _log_decision(request_id, decision)
        if decision.refused:
            yield gateway_pb2.RouteResponse(decision=decision.to_proto())
            yield _refusal(decision, started)
            return
        generate, budget_s = self._worker_call(request, screening, context, started, decision.difficulty)
        events = self._worker_events(generate, context, started, budget_s, request_id)
        # The worker call starts now, so its request crosses the link while the
        # decision is being written; no token can overtake the decision.
        first = asyncio.ensure_future(anext(events, None))
        try:
            yield gateway_pb2.RouteResponse(decision=decision.to_proto())
            event = await first
            while event is not None:
                yield event
                event = await anext(events, None)
        except RichStatusError as exc:
            await abort(context, exc.status)
        finally:
            await _cancel(first)
            await events.aclose()

    async def _speculative_route(
        self,
        request: gateway_pb2.RouteRequest,
        screening: Screening,
        context: grpc.aio.ServicerContext,
        started: float,
        request_id: str,
    ) -> AsyncIterator[gateway_pb2.RouteResponse]:
        """Start the worker while the judge runs; hold its events until the verdict.

        Only requests the rules and classifier passed get here. On REFUSE the
        worker call is cancelled (the worker stops its model) and nothing it
        produced is sent; on ALLOW the held events go out after the decision.
        """
        generate, budget_s = self._worker_call(request, screening, context, started, screening.difficulty)
        held: asyncio.Queue[gateway_pb2.RouteResponse | RichStatusError | None] = asyncio.Queue()

        async def pump() -> None:
            events = self._worker_events(generate, context, started, budget_s, request_id)
            try:
                async with contextlib.aclosing(events):
                    async for event in events:
                        held.put_nowait(event)
            except RichStatusError as exc:
                held.put_nowait(exc)
                return
            held.put_nowait(None)

        worker = asyncio.create_task(pump(), name=f"speculative-{request_id}")
        try:
            decision = await self._guard.finish(screening)
            _log_decision(request_id, decision)
            if decision.refused:
                await _cancel(worker)
                log.info("route %s: speculative generation cancelled: refused", request_id)
                yield gateway_pb2.RouteResponse(decision=decision.to_proto())
                yield _refusal(decision, started)
                return
            yield gateway_pb2.RouteResponse(decision=decision.to_proto())
            while (item := await held.get()) is not None:
                if isinstance(item, RichStatusError):
                    await abort(context, item.status)
                yield item
        finally:
            await _cancel(worker)

    def _worker_call(
        self,
        request: gateway_pb2.RouteRequest,
        screening: Screening,
        context: grpc.aio.ServicerContext,
        started: float,
        difficulty: str | None,
    ) -> tuple[worker_pb2.GenerateRequest, float]:
        """The worker request (secrets redacted, per-difficulty defaults) and its time budget.

        Tools, tool choice, response format and model pass through unchanged. With
        tools offered or JSON asked for, no per-difficulty max_tokens is set: a
        cut tool call or JSON document is worthless (the client's own max_tokens
        and the deadline still bound it).
        """
        messages = turns_to_proto(screening.turns) if screening.redacted else request.messages
        options = common_pb2.GenerationOptions()
        options.CopyFrom(request.options)
        defaults = self._routing.for_difficulty(difficulty)
        structured = bool(request.tools) or request.response_format.type in _JSON_FORMATS
        if defaults is not None and not options.HasField("max_tokens") and not structured:
            options.max_tokens = defaults.max_tokens
        budget_s = self._remaining(context, started, defaults.deadline_s if defaults else None)
        priority = defaults.priority if defaults else 0
        generate = worker_pb2.GenerateRequest(
            messages=messages,
            options=options,
            priority=priority,
            tools=request.tools,
            tool_choice=request.tool_choice,
            response_format=request.response_format,
            model=request.model,
        )
        return generate, budget_s

    async def _worker_events(
        self,
        generate: worker_pb2.GenerateRequest,
        context: grpc.aio.ServicerContext,
        started: float,
        budget_s: float,
        request_id: str,
    ) -> AsyncIterator[gateway_pb2.RouteResponse]:
        """One worker's stream as Route events; the next worker if one fails before its
        first token. Raises RichStatusError for a failure the client must see."""
        deadline = started + budget_s
        tried: set[str] = set()
        while True:
            link = await self._choose_worker(tried, deadline, generate.model or None)
            tried.add(link.address)
            relay = _Relay(link, started)
            try:
                events = relay.run(generate, max(0.0, deadline - time.monotonic()), request_id)
                async with contextlib.aclosing(events):
                    async for event in events:
                        yield event
                return
            except _RetryElsewhere as exc:
                log.warning("route %s: worker %s failed before the first token: %s; trying another",
                            request_id, link.address, exc)
                continue

    def _remaining(
        self, context: grpc.aio.ServicerContext, started: float, default_s: float | None = None
    ) -> float:
        """Time left: the client's deadline, else the difficulty's; never above max_route_s."""
        remaining = context.time_remaining()
        limit = self._max_route_s if default_s is None else min(self._max_route_s, default_s)
        if remaining is not None:
            limit = self._max_route_s
        budget = limit - (time.monotonic() - started)
        return max(0.0, budget if remaining is None else min(remaining, budget))

    async def _choose_worker(
        self, tried: set[str], deadline: float, model: str | None
    ) -> WorkerLink:
        wait_s = min(self._worker_connect_timeout_s, max(0.0, deadline - time.monotonic()))
        try:
            return await self._cluster.pool.wait_for_worker(tried, wait_s, model)
        except NoWorkerError as exc:
            raise RichStatusError(exc.status) from exc

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
                elif response.HasField("tool_call"):
                    if first_token_at is None:
                        first_token_at = time.monotonic()
                    yield gateway_pb2.RouteResponse(tool_call=response.tool_call)
                elif response.HasField("summary"):
                    summary = self._summary(response.summary, first_token_at)
                    # Let the worker's call end by itself (its status follows at once)
                    # rather than cancelling a generation that already finished.
                    await call.code()
                    yield gateway_pb2.RouteResponse(summary=summary)
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
    if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        # The worker refused the gateway's own credentials: a deployment fault, not
        # the client's token, so the client must not be told its token is bad.
        return unavailable(
            address,
            f"worker {address} refuses the gateway's credentials ({exc.code().name})",
            reason="WORKER_REFUSES_GATEWAY",
        )
    return RichStatus(exc.code(), message, details)


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
