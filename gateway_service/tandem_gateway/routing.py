"""What one routed request is, and how its decision shapes the worker call.

``RouteCall`` is built once per ``Route``, after the fast screening tiers, and
never changed; ``RoutingPolicy.worker_call`` turns it and a difficulty into the
``WorkerCall`` the pool carries out.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from tandem.conversions import turns_to_proto
from tandem.settings import DifficultyDefaults, GatewaySettings
from tandem.v1 import common_pb2, gateway_pb2, worker_pb2
from tandem_gateway.guard.guard import Screening


@dataclass(frozen=True, slots=True)
class RouteCall:
    """One Route request on its way through the gateway."""

    request: gateway_pb2.RouteRequest
    screening: Screening
    request_id: str
    started: float  # time.monotonic() when the call arrived
    client_deadline: float | None  # time.monotonic() by which the client wants it done


@dataclass(frozen=True, slots=True)
class WorkerCall:
    """The generation one Route asks of a worker, and the time it may take."""

    request: worker_pb2.GenerateRequest
    request_id: str
    started: float
    deadline: float  # time.monotonic() by which the whole route must be done

    def remaining_s(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """How a decision shapes the worker call (built from GatewaySettings)."""

    max_route_s: float = 900.0
    speculative: bool = False
    defaults: Mapping[str, DifficultyDefaults] | None = None

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> RoutingPolicy:
        return cls(
            max_route_s=settings.max_route_s,
            speculative=settings.speculative_dispatch,
            defaults=settings.difficulty_defaults(),
        )

    def worker_call(self, route: RouteCall, difficulty: str | None) -> WorkerCall:
        """The worker request (secrets redacted, per-difficulty defaults) and its deadline.

        With a client deadline, that deadline (never past ``max_route_s``); without
        one, the difficulty's default deadline, also capped. Tools, tool choice,
        response format and model pass through unchanged; with tools offered or
        JSON asked for, no per-difficulty max_tokens is set (a cut tool call or
        JSON document is worthless; the client's max_tokens and the deadline
        still bound it).
        """
        defaults = (self.defaults or {}).get(difficulty or "medium")
        screening = route.screening
        messages = turns_to_proto(screening.turns) if screening.redacted else route.request.messages
        options = common_pb2.GenerationOptions()
        options.CopyFrom(route.request.options)
        request = route.request
        structured = bool(request.tools) or request.response_format.type in _JSON_FORMATS
        if defaults is not None and not options.HasField("max_tokens") and not structured:
            options.max_tokens = defaults.max_tokens
        limit = route.started + self.max_route_s
        if route.client_deadline is not None:
            deadline = min(route.client_deadline, limit)
        elif defaults is not None:
            deadline = min(route.started + defaults.deadline_s, limit)
        else:
            deadline = limit
        generate = worker_pb2.GenerateRequest(
            messages=messages,
            options=options,
            priority=defaults.priority if defaults is not None else 0,
            tools=request.tools,
            tool_choice=request.tool_choice,
            response_format=request.response_format,
            model=request.model,
        )
        return WorkerCall(generate, route.request_id, route.started, deadline)


_JSON_FORMATS = (
    common_pb2.RESPONSE_FORMAT_TYPE_JSON,
    common_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA,
)
