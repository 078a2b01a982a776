"""Precise backend failures; the gRPC layer maps each to a status code."""

from __future__ import annotations


class BackendError(Exception):
    """A model backend could not serve a call."""

    def __init__(self, message: str, *, location: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.location = location


class BackendUnavailable(BackendError):
    """The backend is not reachable (refused, reset, DNS, dropped mid-stream)."""


class ModelNotFound(BackendError):
    """The backend runs, but does not have the model."""

    def __init__(self, message: str, *, model: str, location: str = "") -> None:
        super().__init__(message, location=location)
        self.model = model


class BackendBusy(BackendError):
    """The backend is overloaded; retrying later may work."""

    def __init__(self, message: str, *, retry_after_s: float, location: str = "") -> None:
        super().__init__(message, location=location)
        self.retry_after_s = retry_after_s


class BackendTimeout(BackendError):
    """The backend did not answer in time."""


class BackendRejected(BackendError):
    """The backend rejected the request as invalid (HTTP 400)."""


class BackendProtocolError(BackendError):
    """The backend answered something that is not its documented wire format."""


class BackendUnsupported(BackendError):
    """The backend cannot do what the request asks (tools on the embedded model),
    or the model did not honour it (no tool call under a required tool choice).

    ``reason`` is a stable UPPER_SNAKE name for clients; ``subject`` what it is about.
    """

    def __init__(self, message: str, *, reason: str, subject: str, location: str = "") -> None:
        super().__init__(message, location=location)
        self.reason = reason
        self.subject = subject
