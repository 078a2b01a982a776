"""Tandem's server-side errors: one exception tree, turned into gRPC statuses in one place.

Code anywhere on a request path (validation, routing, the worker's admission,
a model backend) raises one of these; the server interceptor
(``tandem.security.interceptor.CallGate``) turns it into a status with
``google.rpc`` details via :func:`to_status`. Servicers never catch and abort
by hand. Clients read the details with ``grpc_status.rpc_status.from_call``
(the SDK unpacks them into ``tandem.sdk.ErrorDetails``)::

    TandemFault                      INTERNAL
    ├── InvalidArgument              INVALID_ARGUMENT     BadRequest (the field)
    ├── NotFound                     NOT_FOUND            ResourceInfo, ErrorInfo
    ├── FailedPrecondition           FAILED_PRECONDITION  PreconditionFailure
    ├── Unavailable                  UNAVAILABLE          ErrorInfo (reason, node), RetryInfo
    ├── ResourceExhausted            RESOURCE_EXHAUSTED   ErrorInfo (BUSY, node), RetryInfo
    ├── DeadlineExceeded             DEADLINE_EXCEEDED
    ├── Unauthenticated              UNAUTHENTICATED
    ├── PermissionDenied             PERMISSION_DENIED
    └── RelayedStatus                (the upstream code)  the upstream's details, kept

Model backends raise ``tandem.backends.errors.BackendError`` subclasses, which
sit in this tree too (``BackendUnavailable`` is an ``Unavailable``, ...).

``ErrorInfo.reason`` values are the :class:`Reason` enum, in domain
:data:`ERROR_DOMAIN`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "tandem.dev"


class Reason(enum.StrEnum):
    """``google.rpc.ErrorInfo.reason`` values Tandem sends."""

    NODE_UNAVAILABLE = "NODE_UNAVAILABLE"
    BACKEND_UNAVAILABLE = "BACKEND_UNAVAILABLE"
    BACKEND_STALLED = "BACKEND_STALLED"
    WORKER_UNAVAILABLE = "WORKER_UNAVAILABLE"
    WORKER_REFUSES_GATEWAY = "WORKER_REFUSES_GATEWAY"
    NO_WORKER = "NO_WORKER"
    BUSY = "BUSY"
    MODEL_NOT_FOUND = "MODEL_NOT_FOUND"
    MODEL_NOT_SERVED = "MODEL_NOT_SERVED"
    BACKEND_CANNOT = "BACKEND_CANNOT"


@dataclass(frozen=True, slots=True)
class RichStatus:
    """A status code, its message and packed ``google.rpc`` details."""

    code: grpc.StatusCode
    message: str
    details: tuple[any_pb2.Any, ...] = ()

    def to_grpc_status(self) -> grpc.Status:
        proto = status_pb2.Status(
            code=getattr(code_pb2, self.code.name), message=self.message, details=list(self.details)
        )
        return rpc_status.to_status(proto)


def pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _retry_info(seconds: float) -> any_pb2.Any:
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(int(seconds * 1e9))
    return pack(error_details_pb2.RetryInfo(retry_delay=delay))


def _error_info(reason: Reason, node: str, **metadata: str) -> any_pb2.Any:
    return pack(
        error_details_pb2.ErrorInfo(
            reason=reason, domain=ERROR_DOMAIN, metadata={"node": node, **metadata}
        )
    )


class TandemFault(Exception):
    """A request could not be served. ``node`` names the node at fault, when known.

    ``names_node``: the message says which node it is about only once the
    node is known, as ``"<node>: <message>"`` (backend faults are raised
    deep inside a backend that does not know its node's name).
    """

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    names_node: ClassVar[bool] = False

    def __init__(self, message: str, *, node: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.node = node

    def text(self, node: str) -> str:
        return f"{node}: {self.message}" if self.names_node and node else self.message

    def details(self, node: str) -> tuple[any_pb2.Any, ...]:
        return ()


class InvalidArgument(TandemFault):
    """The request is wrong; ``field`` says where (``messages[2].content``)."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.field = field
        self.description = description

    def details(self, node: str) -> tuple[any_pb2.Any, ...]:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=self.field, description=self.description
        )
        return (pack(error_details_pb2.BadRequest(field_violations=[violation])),)


class NotFound(TandemFault):
    """A named resource (a model) does not exist here; ``available`` lists what does."""

    code = grpc.StatusCode.NOT_FOUND

    def __init__(
        self,
        message: str,
        *,
        resource_type: str,
        resource_name: str,
        available: Sequence[str] = (),
        reason: Reason = Reason.MODEL_NOT_SERVED,
        node: str = "",
    ) -> None:
        super().__init__(message, node=node)
        self.resource_type = resource_type
        self.resource_name = resource_name
        self.available = tuple(available)
        self.reason = reason

    def details(self, node: str) -> tuple[any_pb2.Any, ...]:
        resource = error_details_pb2.ResourceInfo(
            resource_type=self.resource_type,
            resource_name=self.resource_name,
            description=self.message,
        )
        info = _error_info(self.reason, node, available=",".join(self.available))
        return (pack(resource), info)


class FailedPrecondition(TandemFault):
    """The server must be set up first (``violation`` names what, ``subject`` which)."""

    code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, message: str, *, violation: str, subject: str, node: str = "") -> None:
        super().__init__(message, node=node)
        self.violation = violation
        self.subject = subject

    def details(self, node: str) -> tuple[any_pb2.Any, ...]:
        item = error_details_pb2.PreconditionFailure.Violation(
            type=self.violation, subject=self.subject, description=self.message
        )
        return (pack(error_details_pb2.PreconditionFailure(violations=[item])),)


class Unavailable(TandemFault):
    """A node or backend cannot be reached now; retrying later may work."""

    code = grpc.StatusCode.UNAVAILABLE
    default_reason: ClassVar[Reason] = Reason.NODE_UNAVAILABLE

    def __init__(
        self,
        message: str,
        *,
        node: str = "",
        reason: Reason | None = None,
        retry_after_s: float = 1.0,
    ) -> None:
        super().__init__(message, node=node)
        self.reason = reason or self.default_reason
        self.retry_after_s = retry_after_s

    def details(self, node: str) -> tuple[any_pb2.Any, ...]:
        return (_error_info(self.reason, self.node or node), _retry_info(self.retry_after_s))


class ResourceExhausted(TandemFault):
    """Too busy, or over a limit; ``retry_after_s`` says when to try again."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, *, retry_after_s: float, node: str = "") -> None:
        super().__init__(message, node=node)
        self.retry_after_s = retry_after_s

    def details(self, node: str) -> tuple[any_pb2.Any, ...]:
        return (_error_info(Reason.BUSY, self.node or node), _retry_info(self.retry_after_s))


class DeadlineExceeded(TandemFault):
    names_node = True
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unauthenticated(TandemFault):
    """No valid credentials (a bearer token) came with the call."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(TandemFault):
    """The caller is known but may not call this method."""

    code = grpc.StatusCode.PERMISSION_DENIED


class RelayedStatus(TandemFault):
    """A status another node sent (a worker's), passed on with its details."""

    def __init__(
        self, code: grpc.StatusCode, message: str, details: tuple[any_pb2.Any, ...] = ()
    ) -> None:
        super().__init__(message)
        self.relayed_code = code
        self.relayed_details = details

    def details(self, node: str) -> tuple[any_pb2.Any, ...]:
        return self.relayed_details


def to_status(fault: TandemFault, node: str = "") -> RichStatus:
    """The status a client sees for ``fault``; ``node`` is the serving node's name."""
    code = fault.relayed_code if isinstance(fault, RelayedStatus) else fault.code
    where = fault.node or node
    return RichStatus(code, fault.text(where), fault.details(where))


async def abort(context: grpc.aio.ServicerContext, fault: TandemFault, node: str = "") -> NoReturn:
    """End the call with ``fault``'s status (the one place statuses are made)."""
    status = to_status(fault, node).to_grpc_status()
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("unreachable: abort raises")  # pragma: no cover
