"""Model backends: one small interface, two implementations (Ollama, embedded)."""

from __future__ import annotations

from tandem.backends.base import (
    BackendProbe,
    ChatBackend,
    ChatTurn,
    Delta,
    Done,
    LoadedModelInfo,
    SamplingOptions,
    StreamEvent,
)
from tandem.backends.errors import (
    BackendBusy,
    BackendError,
    BackendProtocolError,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
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
    "ChatBackend",
    "ChatTurn",
    "Delta",
    "Done",
    "LoadedModelInfo",
    "ModelNotFound",
    "SamplingOptions",
    "StreamEvent",
]
