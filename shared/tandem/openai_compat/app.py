"""The ASGI app: ``/v1/chat/completions`` and ``/v1/models`` over one gateway client."""

from __future__ import annotations

import contextlib
import hmac
import logging
import re
import time
from collections.abc import AsyncGenerator

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tandem.metadata import new_request_id
from tandem.openai_compat.disconnect import run_until_disconnected
from tandem.openai_compat.errors import HttpError, from_tandem_error, from_validation_error
from tandem.openai_compat.payloads import (
    SSE_DONE,
    CompletionShape,
    decision_headers,
    finish_reason,
    model_card,
    sse,
    tool_call_json,
)
from tandem.openai_compat.schema import ChatCompletionRequest, UnsupportedRequest
from tandem.sdk import (
    AsyncTandemClient,
    Decision,
    RouteEvent,
    Summary,
    TandemError,
    Text,
    ToolCall,
)
from tandem.sdk.convert import AnswerBuilder

log = logging.getLogger(__name__)

_SSE_HEADERS = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
}
# A caller's x-request-id is kept when it is safe to log and to send as gRPC metadata.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def create_app(
    client: AsyncTandemClient, *, model: str, api_key: str | None, timeout_s: float
) -> Starlette:
    """The endpoint's app; ``client`` (the gateway) stays the caller's to close."""
    created = int(time.time())

    async def routable() -> list[str]:
        """The endpoint's own name (the cluster's default model), then every model
        a serving worker serves, as the gateway's cluster status says."""
        names = [model]
        try:
            status = await client.cluster_status()
        except TandemError as exc:
            log.warning("models: the gateway's cluster status failed: %s", exc)
            return names
        for worker in status.workers:
            if worker.state == "serving" and worker.node is not None:
                names.extend(n for n in worker.node.served_models if n not in names)
        return names

    async def list_models(request: Request) -> Response:
        cards = [model_card(name, created) for name in await routable()]
        return JSONResponse({"object": "list", "data": cards})

    async def get_model(request: Request) -> Response:
        if request.path_params["model_id"] not in await routable():
            return HttpError(
                404,
                f"The model {request.path_params['model_id']!r} does not exist",
                code="model_not_found",
                param="model",
            ).response()
        return JSONResponse(model_card(request.path_params["model_id"], created))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return HttpError(exc.status_code, exc.detail, code=str(exc.status_code)).response()

    return Starlette(
        routes=[
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
            Route(
                "/v1/chat/completions", ChatCompletions(client, model, timeout_s), methods=["POST"]
            ),
        ],
        middleware=[Middleware(RequireApiKey, api_key=api_key)] if api_key else [],
        exception_handlers={HTTPException: http_error},
    )


class RequireApiKey:
    """Answers 401 unless the request carries ``Authorization: Bearer <api_key>``."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self._app = app
        self._expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = Headers(scope=scope).get("authorization", "").encode()
            if not hmac.compare_digest(given, self._expected):
                error = HttpError(401, "Incorrect API key provided", code="invalid_api_key")
                await error.response()(scope, receive, send)
                return
        await self._app(scope, receive, send)


class ChatCompletions:
    """``POST /v1/chat/completions``: one Route per request, streamed or whole."""

    def __init__(self, client: AsyncTandemClient, model: str, timeout_s: float) -> None:
        self._client = client
        self._model = model
        self._timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            body = ChatCompletionRequest.model_validate_json(await request.body())
            body.check_supported()
            turns, options = body.turns(), body.options()
            chat = body.chat_request(self._model)
        except ValidationError as exc:
            await from_validation_error(exc).response()(scope, receive, send)
            return
        except UnsupportedRequest as exc:
            await HttpError(400, str(exc), param=exc.param, code=exc.code).response()(
                scope, receive, send
            )
            return
        request_id = _request_id(request.headers.get("x-request-id", ""))
        shape = CompletionShape(f"chatcmpl-{request_id}", body.model or self._model)
        events = self._client.route(
            turns,
            options,
            tools=chat.tools,
            tool_choice=chat.tool_choice,
            response_format=chat.response_format,
            model=chat.model,
            timeout_s=self._timeout_s,
            request_id=request_id,
        )
        reply = _Reply(
            scope,
            send,
            shape,
            request_id,
            include_usage=body.include_usage,
            max_tool_calls=1 if body.single_tool_call else None,
        )
        work = reply.stream(events) if body.stream else reply.whole(events)
        if not await run_until_disconnected(receive, work):
            log.info("completion %s: the client went away; its route was cancelled", request_id)


class _Reply:
    """Writes one completion to the ASGI ``send`` channel."""

    def __init__(
        self,
        scope: Scope,
        send: Send,
        shape: CompletionShape,
        request_id: str,
        *,
        include_usage: bool,
        max_tool_calls: int | None = None,
    ) -> None:
        self._scope = scope
        self._send = send
        self._shape = shape
        self._request_id = request_id
        self._include_usage = include_usage
        # parallel_tool_calls false: Ollama cannot be told, so later calls are dropped.
        self._max_tool_calls = max_tool_calls

    async def _respond(self, response: Response) -> None:
        await response(self._scope, _never_called, self._send)

    async def whole(self, events: AsyncGenerator[RouteEvent, None]) -> None:
        builder = AnswerBuilder()
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    builder.add(event)
        except TandemError as exc:
            await self._respond(from_tandem_error(exc).response())
            return
        answer = builder.build()
        headers = decision_headers(answer.decision, self._request_id)
        headers.update(
            {"x-tandem-worker": answer.summary.worker, "x-tandem-model": answer.summary.model}
        )
        calls = answer.tool_calls[: self._max_tool_calls]
        await self._respond(JSONResponse(self._shape.completion(answer, calls), headers=headers))

    async def stream(self, events: AsyncGenerator[RouteEvent, None]) -> None:
        """Headers go out with the first token (or the refusal), so every failure
        before it still gets its own HTTP status; later ones become an error event."""
        async with contextlib.aclosing(events):
            try:
                decision = await anext(events)
                first = await anext(events)
            except TandemError as exc:
                await self._respond(from_tandem_error(exc).response())
                return
            assert isinstance(decision, Decision)
            fields = {**decision_headers(decision, self._request_id), **_SSE_HEADERS}
            headers = [(k.encode(), v.encode()) for k, v in fields.items()]
            await self._send({"type": "http.response.start", "status": 200, "headers": headers})
            await self._write(self._shape.chunk({"role": "assistant", "content": ""}))
            try:
                await self._relay(decision, first, events)
            except TandemError as exc:
                await self._write(from_tandem_error(exc).body())
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _relay(
        self, decision: Decision, first: RouteEvent, events: AsyncGenerator[RouteEvent, None]
    ) -> None:
        event: RouteEvent | None = first
        calls = 0
        while event is not None:
            if isinstance(event, Text):
                await self._write(self._shape.chunk({"content": event.text}))
            elif isinstance(event, ToolCall):
                if self._max_tool_calls is None or calls < self._max_tool_calls:
                    delta = {"tool_calls": [tool_call_json(event, calls)]}
                    await self._write(self._shape.chunk(delta))
                    calls += 1
            elif isinstance(event, Summary):
                if decision.refused:
                    await self._write(self._shape.chunk({"content": event.message}))
                await self._write(self._shape.chunk({}, finish_reason(event.finish_reason)))
                if self._include_usage:
                    await self._write(self._shape.usage_chunk(event.usage))
                await self._send(
                    {"type": "http.response.body", "body": SSE_DONE, "more_body": True}
                )
            event = await anext(events, None)

    async def _write(self, payload: dict) -> None:
        await self._send({"type": "http.response.body", "body": sse(payload), "more_body": True})


def _request_id(given: str) -> str:
    return given if _REQUEST_ID.fullmatch(given) else new_request_id()


async def _never_called() -> dict:
    raise RuntimeError("a response must not read the request; disconnects are watched elsewhere")
