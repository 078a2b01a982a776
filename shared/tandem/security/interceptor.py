"""The one server interceptor both services run: who is calling, may they, and how much.

For each call, in order:

1. **Authentication** (when a token table is configured): ``authorization:
   Bearer <token>`` must match a listed hash → else ``UNAUTHENTICATED``; the
   token's scopes must cover the method → else ``PERMISSION_DENIED``. Health is
   always open (probes carry no token); reflection is open unless configured
   otherwise.
2. **Per-client limits**: calls per second (token bucket) and calls open at
   once → ``RESOURCE_EXHAUSTED`` with ``RetryInfo``. The client is the token's
   name, or else the peer's IP address. Health is exempt, so a greedy client
   on the same host never makes a probe fail.
3. **Request shape**: a body that is not the protobuf it should be, or more
   than ``max_messages`` chat messages → ``INVALID_ARGUMENT``.
4. **Errors**: a ``tandem.errors.TandemFault`` raised by the handler (or by
   anything it calls) ends the call with that fault's rich status. This is the
   one place faults become statuses; servicers raise, never abort by hand.

Rejections are logged with the client and the reason, never the token, and at
most once a second, so a flood cannot flood the log too.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import grpc
from google.protobuf.message import DecodeError

from tandem.errors import (
    InvalidArgument,
    PermissionDenied,
    TandemFault,
    Unauthenticated,
    abort,
)
from tandem.metadata import request_id_of
from tandem.security.limits import ClientLimiter, LimitExceeded
from tandem.security.redact import redact
from tandem.security.tokens import TokenTable, bearer_token
from tandem.security.wire import first_invalid_utf8_field
from tandem.services import HEALTH_SERVICE, REFLECTION_SERVICES

log = logging.getLogger(__name__)

_LOG_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class GatePolicy:
    """What the gate enforces. ``tokens`` None means authentication is off."""

    role: str
    # The name statuses use for this node ("<node>: busy ..."); the role when unset.
    node: str = ""
    tokens: TokenTable | None = None
    open_reflection: bool = True
    max_messages: int = 0
    log_prompts: bool = False


def peer_host(peer: str) -> str:
    """``ipv4:127.0.0.1:5555`` → ``127.0.0.1``; ``ipv6:[::1]:5555`` → ``::1``."""
    kind, _, rest = unquote(peer or "").partition(":")
    if kind in ("ipv4", "ipv6") and ":" in rest:
        return rest.rsplit(":", 1)[0].strip("[]")
    return peer or "unknown"


class _Throttle:
    """At most one log line per interval; counts what it held back."""

    def __init__(self, every_s: float) -> None:
        self._every_s = every_s
        self._last = -every_s
        self.suppressed = 0

    def ready(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self._every_s:
            self._last = now
            return True
        self.suppressed += 1
        return False


@dataclass(frozen=True, slots=True)
class _Undecodable:
    """A request that is not the protobuf it should be (hostile or broken client)."""

    type_name: str
    error: str
    field: str = "request"


def _tolerant(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """``deserialize`` that returns _Undecodable instead of raising, so garbage gets
    INVALID_ARGUMENT rather than grpc's UNKNOWN and an ERROR traceback per call.
    A string field that is not UTF-8 (which protobuf refuses as a whole) is named."""
    descriptor = getattr(getattr(deserialize, "__self__", None), "DESCRIPTOR", None)
    name = descriptor.full_name if descriptor is not None else "request message"

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError as exc:
            where = first_invalid_utf8_field(descriptor, data) if descriptor is not None else None
            if where is not None:
                field, _, detail = where.partition(" (")
                return _Undecodable(name, f"a string field must be UTF-8 ({detail}", field)
            return _Undecodable(name, str(exc) or "cannot be parsed")

    return parse


class CallGate(grpc.aio.ServerInterceptor):
    def __init__(self, policy: GatePolicy, limiter: ClientLimiter) -> None:
        self.policy = policy
        self.limiter = limiter
        self.node = policy.node or policy.role
        self._throttle = _Throttle(_LOG_EVERY_S)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        service = method.lstrip("/").split("/", 1)[0]
        health = service == HEALTH_SERVICE
        open_method = health or (service in REFLECTION_SERVICES and self.policy.open_reflection)
        client: str | None = None
        tokens = self.policy.tokens
        if tokens is not None:
            token = bearer_token(handler_call_details.invocation_metadata)
            principal = tokens.authenticate(token) if token else None
            if principal is not None:
                client = principal.name
            if not open_method:
                if principal is None:
                    why = "invalid bearer token" if token else "missing bearer token"
                    return self._reject(
                        handler,
                        method,
                        Unauthenticated(
                            f"{why}: send the metadata header 'authorization' as 'Bearer <token>'"
                        ),
                    )
                if not principal.may_call(method):
                    return self._reject(
                        handler,
                        method,
                        PermissionDenied(f"client {principal.name!r} may not call {method}"),
                        client,
                    )
        return self._wrap(handler, method, client, limited=not health)

    def _log(self, level: int, message: str, *args: object) -> None:
        if self._throttle.ready():
            held = self._throttle.suppressed
            self._throttle.suppressed = 0
            suffix = f" ({held} similar lines held back)" if held else ""
            log.log(level, message + suffix, *args)

    def _reject(
        self,
        handler: grpc.RpcMethodHandler,
        method: str,
        fault: TandemFault,
        client: str | None = None,
    ) -> grpc.RpcMethodHandler:
        gate = self

        async def reject(request: Any, context: grpc.aio.ServicerContext) -> Any:
            who = client or peer_host(context.peer())
            gate._log(
                logging.WARNING,
                "%s: %s %s from %s: %s",
                gate.policy.role,
                fault.code.name,
                method,
                who,
                fault.message,
            )
            await abort(context, fault)

        async def reject_stream(
            request: Any, context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            await reject(request, context)
            yield  # pragma: no cover - abort raised

        # No deserializer: a refused request is never parsed.
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(reject)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(reject_stream)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(reject)
        return grpc.stream_stream_rpc_method_handler(reject_stream)

    @contextlib.asynccontextmanager
    async def _admitted(
        self, context: grpc.aio.ServicerContext, client: str | None, method: str, limited: bool
    ) -> AsyncIterator[str]:
        who = client or peer_host(context.peer())
        if not limited:  # health: probes always answer
            yield who
            return
        with contextlib.ExitStack() as slot:
            try:
                self.limiter.take(who)
                slot.enter_context(self.limiter.open_call(who))
            except LimitExceeded as exc:
                self._log(
                    logging.WARNING,
                    "%s: RESOURCE_EXHAUSTED %s from %s: %s",
                    self.policy.role,
                    method,
                    who,
                    exc.message,
                )
                await abort(context, exc, self.policy.role)
            yield who

    async def _check_request(
        self, request: Any, context: grpc.aio.ServicerContext, method: str
    ) -> None:
        if isinstance(request, _Undecodable):
            raise InvalidArgument(
                request.field, f"not a valid {request.type_name}: {request.error}"
            )
        messages = getattr(request, "messages", None)
        if messages is None:
            return
        limit = self.policy.max_messages
        if limit > 0 and len(messages) > limit:
            raise InvalidArgument(
                "messages", f"at most {limit} messages per request, got {len(messages)}"
            )
        if self.policy.log_prompts:
            text = " | ".join(f"{m.role}:{m.content}" for m in messages)
            log.info(
                "%s: PROMPT %s %s: %s",
                self.policy.role,
                method,
                request_id_of(context),
                redact(text),
            )

    def _wrap(
        self,
        handler: grpc.RpcMethodHandler,
        method: str,
        client: str | None,
        *,
        limited: bool = True,
    ) -> grpc.RpcMethodHandler:
        gate = self
        unary_in = handler.unary_unary is not None or handler.unary_stream is not None
        deserializer = handler.request_deserializer
        kwargs = {
            "request_deserializer": _tolerant(deserializer)
            if unary_in and deserializer
            else deserializer,
            "response_serializer": handler.response_serializer,
        }

        # grpc.aio tells handler kinds apart by inspection: each must be a real
        # ``async def`` (coroutine or async generator function), not a lambda.
        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with gate._admitted(context, client, method, limited):
                    try:
                        await gate._check_request(request, context, method)
                        return await inner_uu(request, context)
                    except TandemFault as fault:
                        await abort(context, fault, gate.node)

            return grpc.unary_unary_rpc_method_handler(unary_unary, **kwargs)
        if handler.stream_unary is not None:
            inner_su = handler.stream_unary

            async def stream_unary(requests: Any, context: grpc.aio.ServicerContext) -> Any:
                async with gate._admitted(context, client, method, limited):
                    try:
                        return await inner_su(requests, context)
                    except TandemFault as fault:
                        await abort(context, fault, gate.node)

            return grpc.stream_unary_rpc_method_handler(stream_unary, **kwargs)
        inner = handler.unary_stream or handler.stream_stream
        unary_request = handler.unary_stream is not None

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async with gate._admitted(context, client, method, limited):
                try:
                    if unary_request:
                        await gate._check_request(request, context, method)
                    result = inner(request, context)
                    if not inspect.isasyncgen(result):
                        await result
                        return
                    async with contextlib.aclosing(result):
                        async for response in result:
                            yield response
                except TandemFault as fault:
                    await abort(context, fault, gate.node)

        if unary_request:
            return grpc.unary_stream_rpc_method_handler(streaming, **kwargs)
        return grpc.stream_stream_rpc_method_handler(streaming, **kwargs)
