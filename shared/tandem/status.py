"""gRPC error statuses a client can act on, with ``google.rpc`` rich details.

Each helper returns a ``RichStatus``; ``await abort(context, status)`` ends the
call with it. Clients read the details with ``grpc_status.rpc_status.from_call``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from tandem.backends.errors import (
    BackendBusy,
    BackendError,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    BackendUnsupported,
    ModelNotFound,
)

ERROR_DOMAIN = "tandem.dev"


@dataclass(frozen=True, slots=True)
class RichStatus:
    code: grpc.StatusCode
    message: str
    details: tuple[any_pb2.Any, ...] = ()

    def to_grpc_status(self) -> grpc.Status:
        proto = status_pb2.Status(
            code=getattr(code_pb2, self.code.name), message=self.message, details=list(self.details)
        )
        return rpc_status.to_status(proto)


class RichStatusError(Exception):
    """Raised by validation and routing code; the servicer turns it into a status."""

    def __init__(self, status: RichStatus) -> None:
        super().__init__(status.message)
        self.status = status


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def invalid_argument(field: str, description: str) -> RichStatus:
    violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
    return RichStatus(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{field}: {description}",
        (_pack(error_details_pb2.BadRequest(field_violations=[violation])),),
    )


def unavailable(node: str, message: str, *, reason: str = "NODE_UNAVAILABLE") -> RichStatus:
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata={"node": node})
    retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=1))
    return RichStatus(grpc.StatusCode.UNAVAILABLE, message, (_pack(info), _pack(retry)))


def resource_exhausted(message: str, retry_after_s: float, *, node: str = "") -> RichStatus:
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(int(retry_after_s * 1e9))
    info = error_details_pb2.ErrorInfo(reason="BUSY", domain=ERROR_DOMAIN, metadata={"node": node})
    retry = error_details_pb2.RetryInfo(retry_delay=delay)
    return RichStatus(grpc.StatusCode.RESOURCE_EXHAUSTED, message, (_pack(info), _pack(retry)))


def failed_precondition(reason: str, subject: str, message: str) -> RichStatus:
    violation = error_details_pb2.PreconditionFailure.Violation(
        type=reason, subject=subject, description=message
    )
    return RichStatus(
        grpc.StatusCode.FAILED_PRECONDITION,
        message,
        (_pack(error_details_pb2.PreconditionFailure(violations=[violation])),),
    )


def model_not_found(model: str, available: list[str], *, where: str) -> RichStatus:
    """NOT_FOUND for a model nobody serves, listing the ones that are served."""
    listed = ", ".join(available) or "none"
    info = error_details_pb2.ErrorInfo(
        reason="MODEL_NOT_SERVED",
        domain=ERROR_DOMAIN,
        metadata={"model": model, "available": ",".join(available)},
    )
    resource = error_details_pb2.ResourceInfo(
        resource_type="model",
        resource_name=model,
        owner=where,
        description=f"served models: {listed}",
    )
    return RichStatus(
        grpc.StatusCode.NOT_FOUND,
        f"model {model!r} is not served by {where}; available: {listed}",
        (_pack(info), _pack(resource)),
    )


def deadline_exceeded(message: str) -> RichStatus:
    return RichStatus(grpc.StatusCode.DEADLINE_EXCEEDED, message)


def from_backend_error(exc: BackendError, node: str) -> RichStatus:
    """Map a backend failure to the status a caller should see."""
    text = f"{node}: {exc.message}"
    if isinstance(exc, BackendUnavailable):
        return unavailable(node, text, reason="BACKEND_UNAVAILABLE")
    if isinstance(exc, ModelNotFound):
        missing = error_details_pb2.PreconditionFailure.Violation(
            type="MODEL_NOT_FOUND", subject=exc.model, description=exc.message
        )
        return RichStatus(
            grpc.StatusCode.FAILED_PRECONDITION,
            text,
            (_pack(error_details_pb2.PreconditionFailure(violations=[missing])),),
        )
    if isinstance(exc, BackendBusy):
        return resource_exhausted(text, exc.retry_after_s, node=node)
    if isinstance(exc, BackendTimeout):
        return unavailable(node, text, reason="BACKEND_STALLED")
    if isinstance(exc, BackendUnsupported):
        return failed_precondition(exc.reason, exc.subject, text)
    if isinstance(exc, BackendRejected):
        return RichStatus(grpc.StatusCode.INVALID_ARGUMENT, text)
    return RichStatus(grpc.StatusCode.INTERNAL, text)


async def abort(context: grpc.aio.ServicerContext, status: RichStatus) -> NoReturn:
    grpc_status = status.to_grpc_status()
    await context.abort(grpc_status.code, grpc_status.details, grpc_status.trailing_metadata)
    raise AssertionError("unreachable: abort raises")  # pragma: no cover
