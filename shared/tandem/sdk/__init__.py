"""The Tandem Python SDK: typed sync and asyncio clients for the gateway.

    from tandem.sdk import TandemClient

    with TandemClient("127.0.0.1:50051") as client:
        answer = client.ask("Write a Python function that reverses a string")
        print(answer.content)            # the answer, or the refusal message
        print(answer.refused, answer.decision.tier, answer.usage.completion_tokens)

``route()`` yields a ``Decision``, then ``Text`` pieces, then a ``Summary``.
A refusal is an answer (``Decision.refused``), never an exception; failures
raise ``TandemError`` subclasses carrying the server's google.rpc details.
"""

from __future__ import annotations

from tandem.sdk.aio import AsyncTandemClient
from tandem.sdk.channel import AuthHook, ChannelConfig, bearer_token
from tandem.sdk.errors import (
    ErrorDetails,
    FieldViolation,
    PreconditionViolation,
    TandemCancelled,
    TandemDeadlineExceeded,
    TandemError,
    TandemFailedPrecondition,
    TandemInternal,
    TandemInvalidArgument,
    TandemPermissionDenied,
    TandemResourceExhausted,
    TandemUnauthenticated,
    TandemUnavailable,
)
from tandem.sdk.models import (
    Answer,
    ChatTurn,
    ClusterStatus,
    Conversation,
    Decision,
    NodeInfo,
    RouteEvent,
    SamplingOptions,
    Summary,
    Text,
    Usage,
    WorkerInfo,
)
from tandem.sdk.sync import TandemClient

__all__ = [
    "Answer",
    "AsyncTandemClient",
    "AuthHook",
    "ChannelConfig",
    "ChatTurn",
    "ClusterStatus",
    "Conversation",
    "Decision",
    "ErrorDetails",
    "FieldViolation",
    "NodeInfo",
    "PreconditionViolation",
    "RouteEvent",
    "SamplingOptions",
    "Summary",
    "TandemCancelled",
    "TandemClient",
    "TandemDeadlineExceeded",
    "TandemError",
    "TandemFailedPrecondition",
    "TandemInternal",
    "TandemInvalidArgument",
    "TandemPermissionDenied",
    "TandemResourceExhausted",
    "TandemUnauthenticated",
    "TandemUnavailable",
    "Text",
    "Usage",
    "WorkerInfo",
    "bearer_token",
]
