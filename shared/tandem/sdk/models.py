"""The SDK's typed values: what a caller sends and what the gateway answers.

Plain frozen dataclasses, shared by the sync and asyncio clients. Enum values
are lower-case names without their prefix (``"allow"``, ``"rules"``,
``"stop"``); a value this SDK does not know yet reads ``"unspecified"``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeAlias

from tandem.backends.base import (
    ChatTurn,
    ResponseFormat,
    RoleName,
    SamplingOptions,
    ToolCall,
    ToolChoice,
    ToolDefinition,
)

__all__ = [
    "Answer",
    "ChatTurn",
    "ClusterStatus",
    "Conversation",
    "Decision",
    "NodeInfo",
    "ResponseFormat",
    "RoleName",
    "RouteEvent",
    "SamplingOptions",
    "Summary",
    "Text",
    "ToolCall",
    "ToolChoice",
    "ToolDefinition",
    "Usage",
    "WorkerInfo",
]

# A prompt string (one user message), or the whole conversation as ChatTurn
# values or {"role": ..., "content": ...} mappings (which may also carry
# "tool_calls" (ToolCall values), "tool_call_id" and "tool_name").
Conversation: TypeAlias = str | Sequence[ChatTurn | Mapping[str, object]]

VerdictName = Literal["allow", "refuse", "unspecified"]
DifficultyName = Literal["low", "medium", "high", "unspecified"]
TierName = Literal["rules", "classifier", "judge", "cache", "policy", "unspecified"]
FinishReasonName = Literal["stop", "length", "refused", "tool_calls", "unspecified"]
WorkerStateName = Literal["serving", "not_serving", "unreachable", "unspecified"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The gateway's screening of the conversation: always the first event."""

    verdict: VerdictName
    difficulty: DifficultyName
    task_type: str
    threats: tuple[str, ...]
    reason: str
    tier: TierName
    latency_s: float

    @property
    def refused(self) -> bool:
        return self.verdict == "refuse"


@dataclass(frozen=True, slots=True)
class Text:
    """A piece of the answer, as the worker's model produced it: one token, or
    several when they queued up while the reader was behind."""

    text: str
    tokens: int = 1


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Summary:
    """The last event. For a refusal ``message`` is the answer to show."""

    finish_reason: FinishReasonName
    usage: Usage
    worker: str
    model: str
    message: str
    time_to_first_token_s: float
    total_s: float


# A ToolCall event is one whole call the model made (its arguments complete).
RouteEvent: TypeAlias = Decision | Text | ToolCall | Summary


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole routed answer. A refusal is an answer too (``refused`` is true)."""

    decision: Decision
    text: str
    summary: Summary
    # The tools the model called (finish_reason "tool_calls"), in order.
    tool_calls: tuple[ToolCall, ...] = ()

    @property
    def refused(self) -> bool:
        return self.decision.refused

    def json(self) -> object:
        """The answer parsed as JSON (asked for with a JSON response format)."""
        return json.loads(self.text)

    @property
    def content(self) -> str:
        """What to show the user: the generated text, or the refusal message."""
        return self.summary.message if self.refused else self.text

    @property
    def usage(self) -> Usage:
        return self.summary.usage

    @property
    def finish_reason(self) -> FinishReasonName:
        return self.summary.finish_reason


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One node (the gateway or a worker) and its model backend."""

    node: str
    backend: str
    backend_url: str
    model: str
    backend_reachable: bool
    model_available: bool
    model_loaded: bool
    generations_in_flight: int
    generations_queued: int
    error: str
    version: str
    memory_total_bytes: int = 0  # 0: not reported
    memory_available_bytes: int = 0
    # The models a request may name on this node (a worker's first is its default).
    served_models: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """How the gateway sees one worker; ``node`` is unset while unreachable."""

    address: str
    state: WorkerStateName
    node: NodeInfo | None
    error: str
    last_seen: datetime | None
    link_rtt_s: float | None
    consecutive_failures: int


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    ready: bool
    gateway: NodeInfo
    workers: tuple[WorkerInfo, ...]
    observed_at: datetime | None
    warnings: tuple[str, ...]
