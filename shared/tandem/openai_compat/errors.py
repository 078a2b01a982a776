"""Failures as OpenAI-style error bodies with the HTTP status a client acts on.

``{"error": {"message", "type", "param", "code"}}``; a 429 or 503 carries
``Retry-After`` when the gateway said how long to wait.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import grpc
from pydantic import ValidationError
from starlette.responses import JSONResponse

from tandem.sdk import TandemError

# gRPC status → (HTTP status, OpenAI error type).
_HTTP: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_request_error"),
    grpc.StatusCode.OUT_OF_RANGE: (400, "invalid_request_error"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "authentication_error"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "permission_error"),
    grpc.StatusCode.NOT_FOUND: (404, "not_found_error"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "rate_limit_error"),
    grpc.StatusCode.UNAVAILABLE: (503, "server_error"),
    grpc.StatusCode.FAILED_PRECONDITION: (503, "server_error"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "timeout_error"),
}


@dataclass(frozen=True, slots=True)
class HttpError:
    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    retry_after_s: float | None = None

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        headers = {}
        if self.retry_after_s is not None:
            headers["retry-after"] = str(max(1, math.ceil(self.retry_after_s)))
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


# Precondition failures that say what the request asked for cannot be done here.
_PRECONDITIONS: dict[str, tuple[int, str, str | None]] = {
    "TOOLS_UNSUPPORTED": (400, "invalid_request_error", "tools"),
    "TOOL_CHOICE_NOT_HONOURED": (500, "server_error", "tool_choice"),
}


def from_tandem_error(exc: TandemError) -> HttpError:
    status, kind = _HTTP.get(exc.code, (500, "server_error"))
    if exc.details.reason == "MODEL_NOT_SERVED":
        return HttpError(404, exc.message, "invalid_request_error", "model_not_found", "model")
    for violation in exc.details.precondition_violations:
        if violation.type in _PRECONDITIONS:
            status, kind, param = _PRECONDITIONS[violation.type]
            return HttpError(status, exc.message, kind, violation.type.lower(), param)
    violations = exc.details.field_violations
    return HttpError(
        status=status,
        message=exc.message,
        type=kind,
        code=exc.code.name.lower(),
        param=violations[0].field if violations else None,
        retry_after_s=exc.retry_delay_s,
    )


def from_validation_error(exc: ValidationError) -> HttpError:
    first = exc.errors()[0]
    param = _param(first["loc"])
    return HttpError(
        400, f"{param}: {first['msg']}" if param else first["msg"], param=param or None
    )


def _param(loc: tuple[int | str, ...]) -> str:
    """pydantic's ('messages', 0, 'content') as OpenAI's ``messages[0].content``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("str", "list[ContentPart]") or part.startswith("function-"):
            continue  # union branch labels, not fields
        else:
            text += f".{part}" if text else part
    return text
