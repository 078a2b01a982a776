"""Precise backend failures, each a branch of Tandem's one error tree (``tandem.errors``).

A backend does not know the name of the node it serves; the status message
says ``"<node>: <message>"`` once the fault reaches the node's interceptor.
"""

from __future__ import annotations

import grpc

from tandem.errors import (
    FailedPrecondition,
    Reason,
    ResourceExhausted,
    TandemFault,
    Unavailable,
)


class BackendError(TandemFault):
    """A model backend could not serve a call (INTERNAL unless a subclass says otherwise)."""

    names_node = True

    def __init__(self, message: str, *, location: str = "") -> None:
        super().__init__(message)
        self.location = location


class BackendUnavailable(BackendError, Unavailable):
    """The backend is not reachable (refused, reset, DNS, dropped mid-stream)."""

    default_reason = Reason.BACKEND_UNAVAILABLE

    def __init__(self, message: str, *, location: str = "") -> None:
        Unavailable.__init__(self, message)
        self.location = location


class BackendTimeout(BackendUnavailable):
    """The backend did not answer in time (stalled)."""

    default_reason = Reason.BACKEND_STALLED


class ModelNotFound(BackendError, FailedPrecondition):
    """The backend runs, but does not have the model."""

    def __init__(self, message: str, *, model: str, location: str = "") -> None:
        FailedPrecondition.__init__(self, message, violation=Reason.MODEL_NOT_FOUND, subject=model)
        self.location = location
        self.model = model


class BackendBusy(BackendError, ResourceExhausted):
    """The backend is overloaded; retrying later may work."""

    def __init__(self, message: str, *, retry_after_s: float, location: str = "") -> None:
        ResourceExhausted.__init__(self, message, retry_after_s=retry_after_s)
        self.location = location


class BackendRejected(BackendError):
    """The backend rejected the request as invalid (HTTP 400)."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class BackendProtocolError(BackendError):
    """The backend answered something that is not its documented wire format."""


class BackendUnsupported(BackendError, FailedPrecondition):
    """The backend cannot do what the request asks (tools on the embedded model),
    or the model did not honour it (no tool call under a required tool choice).

    ``reason`` (the PreconditionFailure violation type) is a stable UPPER_SNAKE
    name for clients: TOOLS_UNSUPPORTED or TOOL_CHOICE_NOT_HONOURED; ``subject``
    what it is about (the backend kind, or the model).
    """

    def __init__(self, message: str, *, reason: str, subject: str, location: str = "") -> None:
        FailedPrecondition.__init__(self, message, violation=reason, subject=subject)
        self.location = location
        self.reason = reason
