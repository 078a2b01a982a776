"""The Tandem Python SDK: typed sync and asyncio clients for the gateway.

    from tandem.sdk import TandemClient

    with TandemClient("127.0.0.1:50051") as client:
        answer = client.ask("Write a Python function that reverses a string")
        print(answer.content)            # the answer, or the refusal message
        print(answer.refused, answer.decision.tier, answer.usage.completion_tokens)

``route()`` yields a ``Decision``, then ``Text`` pieces (and ``ToolCall``
events when the model calls tools), then a ``Summary``. ``route()``/``ask()``
take ``tools`` (ToolDefinition values or typed functions), ``tool_choice``,
``response_format`` (JSON, a schema, a pydantic model) and ``model``.
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
    TandemNotFound,
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
    ResponseFormat,
    RouteEvent,
    SamplingOptions,
    Summary,
    Text,
    ToolCall,
    ToolChoice,
    ToolDefinition,
    Usage,
    WorkerInfo,
)
from tandem.sdk.sync import TandemClient
from tandem.sdk.tools import tool_from_function, tool_from_model

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
    "ResponseFormat",
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
    "TandemNotFound",
    "TandemPermissionDenied",
    "TandemResourceExhausted",
    "TandemUnauthenticated",
    "TandemUnavailable",
    "Text",
    "ToolCall",
    "ToolChoice",
    "ToolDefinition",
    "Usage",
    "WorkerInfo",
    "bearer_token",
    "tool_from_function",
    "tool_from_model",
]
