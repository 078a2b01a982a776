"""Model backends: one small interface, two implementations (Ollama, embedded)."""

from __future__ import annotations

from tandem.backends.base import (
    BackendProbe,
    ChatBackend,
    ChatRequest,
    ChatTurn,
    Delta,
    Done,
    LoadedModelInfo,
    ResponseFormat,
    SamplingOptions,
    StreamEvent,
    ToolCall,
    ToolChoice,
    ToolDefinition,
)
from tandem.backends.errors import (
    BackendBusy,
    BackendError,
    BackendProtocolError,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    BackendUnsupported,
    ModelNotFound,
)

__all__ = [
    "BackendBusy",
    "BackendError",
    "BackendProbe",
    "BackendProtocolError",
    "BackendRejected",
    "BackendTimeout",
    "BackendUnavailable",
    "BackendUnsupported",
    "ChatBackend",
    "ChatRequest",
    "ChatTurn",
    "Delta",
    "Done",
    "LoadedModelInfo",
    "ModelNotFound",
    "ResponseFormat",
    "SamplingOptions",
    "StreamEvent",
    "ToolCall",
    "ToolChoice",
    "ToolDefinition",
]
