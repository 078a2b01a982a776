"""Call metadata Tandem reads and writes (the request id travels gateway → worker)."""

from __future__ import annotations

import uuid

import grpc

REQUEST_ID_KEY = "x-request-id"


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def request_id_of(context: grpc.aio.ServicerContext) -> str:
    """The caller's request id, or a fresh one."""
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and value:
            return value[:64]
    return new_request_id()
