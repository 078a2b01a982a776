"""Typed exceptions for failed calls, with the ``google.rpc`` details unpacked.

Every failure of a call becomes a ``TandemError`` subclass chosen by the gRPC
status code. A refusal is not a failure: it is an answer whose decision says
``refuse``. Cancelling a call from asyncio raises ``asyncio.CancelledError`` as
usual, not one of these.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import grpc
from google.protobuf import message as protobuf_message
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """A request field that was wrong (``messages[2].content``) and why."""

    field: str
    description: str


@dataclass(frozen=True, slots=True)
class PreconditionViolation:
    """What must change on the server first (e.g. a model to pull)."""

    type: str
    subject: str
    description: str


@dataclass(frozen=True, slots=True)
class ErrorDetails:
    """The rich details the server attached to the status, unpacked."""

    retry_delay_s: float | None = None
    reason: str = ""
    domain: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    field_violations: tuple[FieldViolation, ...] = ()
    precondition_violations: tuple[PreconditionViolation, ...] = ()
    raw: tuple[protobuf_message.Message, ...] = ()


class TandemError(Exception):
    """A call failed. ``code`` is the gRPC status; ``details`` the unpacked google.rpc details."""

    def __init__(
        self, code: grpc.StatusCode, message: str, details: ErrorDetails | None = None
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.details = details or ErrorDetails()

    @property
    def retry_delay_s(self) -> float | None:
        """How long the server asked to wait before retrying (RetryInfo), if it said."""
        return self.details.retry_delay_s

    @property
    def retryable(self) -> bool:
        return self.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


class TandemInvalidArgument(TandemError):
    """The request was wrong; ``details.field_violations`` names the field."""


class TandemUnavailable(TandemError):
    """No worker, the gateway or a model backend could not be reached; retry later."""


class TandemResourceExhausted(TandemError):
    """The model backend is busy; retry after ``retry_delay_s``."""


class TandemNotFound(TandemError):
    """The named thing does not exist: e.g. a model no worker serves
    (``details.metadata["available"]`` lists the ones that are)."""


class TandemFailedPrecondition(TandemError):
    """The server is not set up for this yet (e.g. the model is not pulled)."""


class TandemDeadlineExceeded(TandemError):
    """The call's deadline passed."""


class TandemCancelled(TandemError):
    """The call was cancelled (by the server, or by this process from another thread)."""


class TandemUnauthenticated(TandemError):
    """The call's credentials were missing or wrong."""


class TandemPermissionDenied(TandemError):
    """The caller may not do this."""


class TandemInternal(TandemError):
    """The server failed in a way it did not expect."""


_BY_CODE: dict[grpc.StatusCode, type[TandemError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: TandemInvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: TandemInvalidArgument,
    grpc.StatusCode.UNAVAILABLE: TandemUnavailable,
    grpc.StatusCode.RESOURCE_EXHAUSTED: TandemResourceExhausted,
    grpc.StatusCode.FAILED_PRECONDITION: TandemFailedPrecondition,
    grpc.StatusCode.NOT_FOUND: TandemNotFound,
    grpc.StatusCode.DEADLINE_EXCEEDED: TandemDeadlineExceeded,
    grpc.StatusCode.CANCELLED: TandemCancelled,
    grpc.StatusCode.UNAUTHENTICATED: TandemUnauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: TandemPermissionDenied,
    grpc.StatusCode.INTERNAL: TandemInternal,
    grpc.StatusCode.UNKNOWN: TandemInternal,
    grpc.StatusCode.DATA_LOSS: TandemInternal,
}


class _FailedCall(Protocol):
    """What both grpc.RpcError flavours (sync and asyncio) offer."""

    def code(self) -> grpc.StatusCode: ...
    def details(self) -> str | None: ...
    def trailing_metadata(self) -> object: ...


def from_rpc_error(exc: _FailedCall) -> TandemError:
    """The typed exception for a failed sync or asyncio call."""
    code = exc.code()
    kind = _BY_CODE.get(code, TandemError)
    return kind(code, exc.details() or "", _unpack_details(exc))


def _unpack_details(exc: _FailedCall) -> ErrorDetails:
    try:
        status = rpc_status.from_call(exc)
    except ValueError:  # details that contradict the status line: ignore them
        status = None
    if status is None:
        return ErrorDetails()
    values: dict[str, object] = {}
    raw: list[protobuf_message.Message] = []
    for packed in status.details:
        if packed.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            packed.Unpack(retry)
            values["retry_delay_s"] = retry.retry_delay.ToNanoseconds() / 1e9
            raw.append(retry)
        elif packed.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            packed.Unpack(info)
            values.update(reason=info.reason, domain=info.domain, metadata=dict(info.metadata))
            raw.append(info)
        elif packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            packed.Unpack(bad)
            values["field_violations"] = tuple(
                FieldViolation(v.field, v.description) for v in bad.field_violations
            )
            raw.append(bad)
        elif packed.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            packed.Unpack(failure)
            values["precondition_violations"] = tuple(
                PreconditionViolation(v.type, v.subject, v.description) for v in failure.violations
            )
            raw.append(failure)
    return ErrorDetails(raw=tuple(raw), **values)  # type: ignore[arg-type]


@contextlib.contextmanager
def rpc_errors() -> Iterator[None]:
    """Re-raise a failed call (sync or asyncio) as its TandemError."""
    try:
        yield
    except grpc.RpcError as exc:
        raise from_rpc_error(exc) from exc
