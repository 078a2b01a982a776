"""Conversions between the SDK's values and the ``tandem.v1`` messages."""

from __future__ import annotations

from typing import cast

from tandem.backends.base import ChatRequest
from tandem.conversions import request_to_proto, tool_call_from_proto, turns_to_proto
from tandem.protoutil import duration_seconds, enum_name, timestamp_datetime
from tandem.sdk.models import (
    Answer,
    ChatTurn,
    ClusterStatus,
    Conversation,
    Decision,
    NodeInfo,
    RoleName,
    RouteEvent,
    SamplingOptions,
    Summary,
    Text,
    ToolCall,
    Usage,
    WorkerInfo,
)
from tandem.v1 import common_pb2, gateway_pb2, worker_pb2

_ROLES: frozenset[str] = frozenset({"system", "user", "assistant", "tool"})


def conversation_turns(conversation: Conversation) -> list[ChatTurn]:
    """A prompt string or a list of turns/mappings, as ChatTurn values."""
    if isinstance(conversation, str):
        return [ChatTurn("user", conversation)]
    turns = []
    for index, item in enumerate(conversation):
        if isinstance(item, ChatTurn):
            turns.append(item)
            continue
        role = item.get("role", "")
        if role not in _ROLES:
            raise ValueError(f"messages[{index}].role: {role!r} is not one of {sorted(_ROLES)}")
        calls = item.get("tool_calls") or ()
        if not all(isinstance(call, ToolCall) for call in calls):  # type: ignore[attr-defined]
            raise ValueError(f"messages[{index}].tool_calls: must be ToolCall values")
        turns.append(
            ChatTurn(
                cast(RoleName, role),
                str(item.get("content") or ""),
                tool_calls=tuple(calls),  # type: ignore[arg-type]
                tool_call_id=str(item.get("tool_call_id") or ""),
                tool_name=str(item.get("tool_name") or ""),
            )
        )
    return turns


def options_to_proto(options: SamplingOptions | None) -> common_pb2.GenerationOptions:
    if options is None:
        return common_pb2.GenerationOptions()
    return common_pb2.GenerationOptions(
        max_tokens=options.max_tokens,
        temperature=options.temperature,
        stop=list(options.stop),
        seed=options.seed,
        top_p=options.top_p,
    )


def route_request(
    conversation: Conversation,
    options: SamplingOptions | None,
    request: ChatRequest | None = None,
) -> gateway_pb2.RouteRequest:
    return gateway_pb2.RouteRequest(
        messages=turns_to_proto(conversation_turns(conversation)),
        options=options_to_proto(options),
        **request_to_proto(request or ChatRequest()),
    )


def classify_request(
    conversation: Conversation, request: ChatRequest | None = None
) -> gateway_pb2.ClassifyRequest:
    return gateway_pb2.ClassifyRequest(
        messages=turns_to_proto(conversation_turns(conversation)),
        tools=request_to_proto(request or ChatRequest())["tools"],
    )


def decision_from_proto(decision: gateway_pb2.Decision) -> Decision:
    return Decision(
        verdict=enum_name(gateway_pb2.Verdict, decision.verdict, "VERDICT_"),
        difficulty=enum_name(gateway_pb2.Difficulty, decision.difficulty, "DIFFICULTY_"),
        task_type=decision.task_type,
        threats=tuple(
            enum_name(gateway_pb2.ThreatCategory, t, "THREAT_CATEGORY_") for t in decision.threats
        ),
        reason=decision.reason,
        tier=enum_name(gateway_pb2.DecisionTier, decision.tier, "DECISION_TIER_"),
        latency_s=duration_seconds(decision.latency),
    )


def summary_from_proto(summary: gateway_pb2.RouteSummary) -> Summary:
    return Summary(
        finish_reason=enum_name(common_pb2.FinishReason, summary.finish_reason, "FINISH_REASON_"),
        usage=Usage(summary.usage.prompt_tokens, summary.usage.completion_tokens),
        worker=summary.worker,
        model=summary.model,
        message=summary.message,
        time_to_first_token_s=duration_seconds(summary.timings.time_to_first_token),
        total_s=duration_seconds(summary.timings.total),
    )


def event_from_proto(response: gateway_pb2.RouteResponse) -> RouteEvent | None:
    """One Route event; None for an event kind this SDK does not know."""
    kind = response.WhichOneof("event")
    if kind == "decision":
        return decision_from_proto(response.decision)
    if kind == "delta":
        return Text(response.delta.text, response.delta.tokens or 1)
    if kind == "tool_call":
        return tool_call_from_proto(response.tool_call)
    if kind == "summary":
        return summary_from_proto(response.summary)
    return None


def node_from_proto(node: worker_pb2.NodeStatus) -> NodeInfo:
    return NodeInfo(
        node=node.node,
        backend=enum_name(worker_pb2.BackendKind, node.backend, "BACKEND_KIND_"),
        backend_url=node.backend_url,
        model=node.model,
        backend_reachable=node.backend_reachable,
        model_available=node.model_available,
        model_loaded=node.model_loaded,
        generations_in_flight=node.generations_in_flight,
        generations_queued=node.generations_queued,
        error=node.error,
        version=node.version,
        memory_total_bytes=node.memory.total_bytes,
        memory_available_bytes=node.memory.available_bytes,
        served_models=tuple(node.served_models),
    )


def cluster_status_from_proto(status: gateway_pb2.ClusterStatus) -> ClusterStatus:
    return ClusterStatus(
        ready=status.ready,
        gateway=node_from_proto(status.gateway),
        workers=tuple(
            WorkerInfo(
                address=w.address,
                state=enum_name(gateway_pb2.WorkerState, w.state, "WORKER_STATE_"),
                node=node_from_proto(w.node) if w.HasField("node") else None,
                error=w.error,
                last_seen=timestamp_datetime(w.last_seen, w.HasField("last_seen")),
                link_rtt_s=duration_seconds(w.link_rtt) if w.HasField("link_rtt") else None,
                consecutive_failures=w.consecutive_failures,
            )
            for w in status.workers
        ),
        observed_at=timestamp_datetime(status.observed_at, status.HasField("observed_at")),
        warnings=tuple(status.warnings),
    )


class AnswerBuilder:
    """Folds a Route's events into one Answer."""

    def __init__(self) -> None:
        self._decision: Decision | None = None
        self._parts: list[str] = []
        self._calls: list[ToolCall] = []
        self._summary: Summary | None = None

    def add(self, event: RouteEvent) -> None:
        if isinstance(event, Decision):
            self._decision = event
        elif isinstance(event, Text):
            self._parts.append(event.text)
        elif isinstance(event, ToolCall):
            self._calls.append(event)
        else:
            self._summary = event

    def build(self) -> Answer:
        if self._decision is None or self._summary is None:
            raise RuntimeError("the Route stream ended without a decision and a summary")
        return Answer(self._decision, "".join(self._parts), self._summary, tuple(self._calls))
