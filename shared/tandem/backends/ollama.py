"""Ollama over HTTP with httpx: ``/api/chat`` streaming NDJSON, exactly as on the Macs."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime
from typing import Any, Literal

import httpx

from tandem.backends.asyncio_transport import AsyncioHTTPTransport
from tandem.backends.base import (
    BackendProbe,
    ChatRequest,
    ChatTurn,
    Delta,
    Done,
    LoadedModelInfo,
    SamplingOptions,
    StreamEvent,
    ToolCall,
    ToolChoice,
)
from tandem.backends.errors import (
    BackendBusy,
    BackendError,
    BackendProtocolError,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    BackendUnsupported,
    ModelNotFound,
)

log = logging.getLogger(__name__)

_NS = 1e-9
_GIB = 1024**3
_BUSY_RETRY_S = 2.0


class OllamaBackend:
    """A chat backend that is one Ollama server."""

    kind: Literal["ollama"] = "ollama"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        keep_alive: str,
        num_ctx: int,
        connect_timeout_s: float = 3.0,
        idle_timeout_s: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.location = base_url
        self.model = model
        self._keep_alive = keep_alive
        self._num_ctx = num_ctx
        self._idle_timeout_s = idle_timeout_s
        self._partly_off_gpu = False
        # The read timeout is the longest silence between two chunks (model load
        # included); the caller's deadline bounds the whole stream, and closing
        # the stream is what makes Ollama stop generating.
        # Admission control bounds how many generations run, so the generation
        # pool has no connection cap of its own; a pool that cannot hand out a
        # connection fails after the connect timeout instead of hanging.
        # The generations' client reads sockets through asyncio directly (one HTTP
        # chunk per token: asyncio_transport says why).
        generation_limits = httpx.Limits(max_connections=None, max_keepalive_connections=32)
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(
                connect=connect_timeout_s, read=idle_timeout_s, write=10.0, pool=connect_timeout_s
            ),
            limits=generation_limits,
            transport=transport or AsyncioHTTPTransport(limits=generation_limits),
        )
        # Health probes get their own small client: busy generations never starve them.
        self._probe_client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(connect_timeout_s, read=5.0, write=5.0, pool=5.0),
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
            transport=transport,
        )

    def _chat_body(
        self, turns: Sequence[ChatTurn], options: SamplingOptions, request: ChatRequest
    ) -> dict[str, Any]:
        ollama_options: dict[str, Any] = {"num_ctx": self._num_ctx}
        if options.max_tokens is not None:
            ollama_options["num_predict"] = options.max_tokens
        if options.temperature is not None:
            ollama_options["temperature"] = options.temperature
        if options.top_p is not None:
            ollama_options["top_p"] = options.top_p
        if options.seed is not None:
            ollama_options["seed"] = options.seed
        if options.stop:
            ollama_options["stop"] = list(options.stop)
        messages = ollama_messages(turns)
        body: dict[str, Any] = {
            "model": request.model or self.model,
            "messages": messages,
            "stream": True,
            "keep_alive": _keep_alive_value(self._keep_alive),
            "options": ollama_options,
        }
        tools = _offered_tools(request)
        if tools:
            body["tools"] = tools
            if request.tool_choice.forces_a_call:
                # Ollama has no tool_choice: the model is told, and its answer checked.
                messages.append({"role": "system", "content": _forcing_note(request.tool_choice)})
        fmt = request.response_format
        if fmt.type == "json":
            body["format"] = "json"
        elif fmt.type == "json_schema":
            body["format"] = dict(fmt.schema or {})
        return body

    async def chat_stream(
        self,
        turns: Sequence[ChatTurn],
        options: SamplingOptions,
        request: ChatRequest | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        request = request or ChatRequest()
        body = self._chat_body(turns, options, request)
        check = _ToolChoiceCheck(request.tool_choice, body.get("model", self.model), self.location)
        try:
            done: Done | None = None
            async with self._client.stream("POST", "/api/chat", json=body) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise self._http_error(response)
                async for line in response.aiter_lines():
                    if done is not None or not line.strip():
                        continue  # read to the end: the connection goes back to the pool
                    chunk = _parse_line(line, self.location)
                    message = chunk.get("message") or {}
                    content = message.get("content") or ""
                    if content and not check.holds_text:
                        yield Delta(content)
                    elif content:
                        check.hold(content)
                    for raw in message.get("tool_calls") or ():
                        yield check.called(_tool_call(raw, self.location))
                    if chunk.get("done"):
                        done = _done_from_chunk(chunk, tool_calls=check.calls > 0)
            if done is None:
                raise BackendUnavailable(
                    f"Ollama at {self.location} closed the stream before its final 'done' line",
                    location=self.location,
                )
            for held in check.release():
                yield Delta(held)
            # Yielded after the HTTP exchange is complete and released, so a caller
            # that stops right after the summary leaves no connection checked out.
            yield done
        except httpx.ReadTimeout as exc:
            raise BackendTimeout(
                f"Ollama at {self.location} sent nothing for {self._idle_timeout_s:.0f}s (stalled)",
                location=self.location,
            ) from exc
        except httpx.TimeoutException as exc:
            raise BackendTimeout(
                f"Ollama at {self.location} timed out: {type(exc).__name__}",
                location=self.location,
            ) from exc
        except httpx.TransportError as exc:
            raise BackendUnavailable(
                f"Ollama at {self.location} is unreachable: {_describe(exc)}",
                location=self.location,
            ) from exc

    def _http_error(self, response: httpx.Response) -> BackendError:
        detail = _error_text(response)
        status = response.status_code
        where = self.location
        if status == 404:
            return ModelNotFound(
                f"model {self.model!r} is not on Ollama at {where} ({detail}); "
                f"pull it there with: ollama pull {self.model}",
                model=self.model,
                location=where,
            )
        if status in (429, 503):
            retry = _retry_after(response)
            return BackendBusy(
                f"Ollama at {where} is busy (HTTP {status}: {detail})",
                retry_after_s=retry,
                location=where,
            )
        if status == 400:
            return BackendRejected(
                f"Ollama at {where} rejected the request: {detail}", location=where
            )
        return BackendProtocolError(
            f"Ollama at {where} failed: HTTP {status}: {detail}", location=where
        )

    async def probe(self) -> BackendProbe:
        started = time.monotonic()
        try:
            version = (await self._get_json("/api/version")).get("version", "")
            tags = await self._get_json("/api/tags")
            running = await self._get_json("/api/ps")
        except (httpx.TransportError, BackendError, ValueError) as exc:
            return BackendProbe(
                reachable=False,
                model_available=False,
                model_loaded=False,
                error=f"Ollama at {self.location} is unreachable: {_describe(exc)}",
                latency_s=time.monotonic() - started,
            )
        names = tuple(str(m.get("name", "")) for m in tags.get("models", []))
        available = any(_same_model(name, self.model) for name in names)
        loaded = tuple(
            LoadedModelInfo(
                name=m.get("name", ""),
                size_bytes=int(m.get("size", 0) or 0),
                expires_at=_parse_time(m.get("expires_at")),
                size_vram_bytes=int(m.get("size_vram", 0) or 0),
            )
            for m in running.get("models", [])
        )
        mine = next((m for m in loaded if _same_model(m.name, self.model)), None)
        self._log_gpu_residency(mine)
        error = (
            ""
            if available
            else (
                f"model {self.model!r} is not on Ollama at {self.location}; "
                f"pull it with: ollama pull {self.model}"
            )
        )
        return BackendProbe(
            reachable=True,
            model_available=available,
            model_loaded=mine is not None,
            model_expires_at=mine.expires_at if mine else None,
            loaded_models=loaded,
            available_models=names,
            version=version,
            error=error,
            latency_s=time.monotonic() - started,
        )

    def _log_gpu_residency(self, mine: LoadedModelInfo | None) -> None:
        """Log once when the model turns out not to be fully on the GPU, and when it is again."""
        warning = gpu_residency_warning(self.model, (mine,) if mine else ())
        if warning and not self._partly_off_gpu:
            log.warning("%s", warning)
        elif mine is not None and not warning and self._partly_off_gpu:
            log.info("model %s is fully on the GPU again", self.model)
        if mine is not None:
            self._partly_off_gpu = bool(warning)

    async def warm_up(self) -> None:
        """Ask Ollama to load the model with our keep_alive (an empty chat).

        It carries the same ``num_ctx`` as every generation: Ollama loads a model
        for one context size, and a different one later reloads it.
        """
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [],
            "keep_alive": _keep_alive_value(self._keep_alive),
            "options": {"num_ctx": self._num_ctx},
        }
        await self._post_chat(body)

    async def generate_one_token(self, keep_alive_s: int | None = None) -> None:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": "Reply with OK."}],
            "stream": False,
            "keep_alive": keep_alive_s
            if keep_alive_s is not None
            else _keep_alive_value(self._keep_alive),
            "options": {"num_predict": 1, "num_ctx": self._num_ctx, "temperature": 0},
        }
        await self._post_chat(body)

    async def _post_chat(self, body: dict[str, Any]) -> None:
        try:
            response = await self._client.post("/api/chat", json=body)
        except httpx.TimeoutException as exc:
            raise BackendTimeout(
                f"Ollama at {self.location} did not answer within {self._idle_timeout_s:.0f}s",
                location=self.location,
            ) from exc
        except httpx.TransportError as exc:
            raise BackendUnavailable(
                f"Ollama at {self.location} is unreachable: {_describe(exc)}",
                location=self.location,
            ) from exc
        if response.status_code != 200:
            raise self._http_error(response)

    async def _get_json(self, path: str) -> dict[str, Any]:
        response = await self._probe_client.get(path)
        if response.status_code != 200:
            raise BackendProtocolError(f"GET {path}: HTTP {response.status_code}")
        data = response.json()
        if not isinstance(data, dict):
            raise BackendProtocolError(f"GET {path}: not a JSON object")
        return data

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._probe_client.aclose()


def gpu_residency_warning(model: str, loaded: Sequence[LoadedModelInfo]) -> str:
    """A warning when ``model`` is loaded but Ollama holds part of it outside GPU memory
    (``/api/ps``: ``size_vram`` below ``size``), else ''. Layers left on the CPU make
    every token several times slower; on a Mac the usual cause is the GPU wired-memory
    limit (docs/macs.md)."""
    mine = next((m for m in loaded if _same_model(m.name, model)), None)
    if mine is None or mine.size_bytes <= 0 or mine.size_vram_bytes >= mine.size_bytes:
        return ""
    share = 100 * mine.size_vram_bytes / mine.size_bytes
    return (
        f"model {model} is only {share:.0f}% on the GPU ({mine.size_vram_bytes / _GIB:.1f} "
        f"of {mine.size_bytes / _GIB:.1f} GiB in GPU memory, Ollama /api/ps): the rest runs "
        "on the CPU, much slower. On a Mac raise the GPU memory limit "
        "(sudo sysctl iogpu.wired_limit_mb=...) or lower num_ctx; see docs/macs.md"
    )


def _keep_alive_value(keep_alive: str) -> str | int:
    """Ollama takes a duration string or a number of seconds (-1 = forever)."""
    stripped = keep_alive.strip()
    if stripped.lstrip("-").isdigit():
        return int(stripped)
    return stripped


def _parse_line(line: str, location: str) -> dict[str, Any]:
    try:
        chunk = json.loads(line)
    except json.JSONDecodeError as exc:
        raise BackendProtocolError(
            f"Ollama at {location} sent a line that is not JSON: {line[:80]!r}", location=location
        ) from exc
    if not isinstance(chunk, dict):
        raise BackendProtocolError(
            f"Ollama at {location} sent a non-object line", location=location
        )
    if "error" in chunk:
        raise BackendProtocolError(
            f"Ollama at {location} failed mid-stream: {chunk['error']}", location=location
        )
    return chunk


def _done_from_chunk(chunk: dict[str, Any], *, tool_calls: bool = False) -> Done:
    # Ollama says done_reason "stop" after tool calls too; OpenAI and the contract
    # say "tool_calls", so the calls seen decide.
    reason = chunk.get("done_reason") or "stop"
    return Done(
        finish_reason="tool_calls" if tool_calls else "length" if reason == "length" else "stop",
        prompt_tokens=int(chunk.get("prompt_eval_count", 0) or 0),
        completion_tokens=int(chunk.get("eval_count", 0) or 0),
        load_s=int(chunk.get("load_duration", 0) or 0) * _NS,
        prompt_eval_s=int(chunk.get("prompt_eval_duration", 0) or 0) * _NS,
        eval_s=int(chunk.get("eval_duration", 0) or 0) * _NS,
    )


def ollama_messages(turns: Sequence[ChatTurn]) -> list[dict[str, Any]]:
    """The conversation as /api/chat ``messages``: an assistant turn's calls as
    ``tool_calls`` (``function.index``/``name``/``arguments`` object, plus ``id``),
    a tool turn's answer with ``tool_call_id`` and ``tool_name`` (Ollama's
    templates read the name; the id is taken since Ollama 0.12)."""
    names: dict[str, str] = {}
    messages: list[dict[str, Any]] = []
    for turn in turns:
        message: dict[str, Any] = {"role": turn.role, "content": turn.content}
        if turn.tool_calls:
            message["tool_calls"] = [
                {
                    **({"id": call.id} if call.id else {}),
                    "function": {
                        "index": index,
                        "name": call.name,
                        "arguments": dict(call.arguments),
                    },
                }
                for index, call in enumerate(turn.tool_calls)
            ]
            names.update((call.id, call.name) for call in turn.tool_calls if call.id)
        if turn.role == "tool":
            name = turn.tool_name or names.get(turn.tool_call_id, "")
            if name:
                message["tool_name"] = name
            if turn.tool_call_id:
                message["tool_call_id"] = turn.tool_call_id
        messages.append(message)
    return messages


def _offered_tools(request: ChatRequest) -> list[dict[str, Any]]:
    """``tools`` as Ollama takes them; tool choice "none" sends none, a named
    function sends only that one."""
    choice = request.tool_choice
    if choice.mode == "none":
        return []
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": dict(tool.parameters),
            },
        }
        for tool in request.tools
        if choice.mode != "function" or tool.name == choice.function
    ]


def _forcing_note(choice: ToolChoice) -> str:
    if choice.mode == "function":
        return (
            f"You must now call the function {choice.function} with its arguments. "
            "Do not answer in text."
        )
    return "You must now call one or more of the tools. Do not answer in text."


def _tool_call(raw: Any, location: str) -> ToolCall:
    """One call as Ollama sends it: whole, ``arguments`` an object; ``id`` since
    0.12 (``call_`` + 8 random characters), none before, so one is made then."""
    function = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise BackendProtocolError(
            f"Ollama at {location} sent a tool call without a function name: {raw!r:.120}",
            location=location,
        )
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):  # not Ollama's format, but some proxies send a string
        try:
            arguments = json.loads(arguments or "{}")
        except json.JSONDecodeError:
            arguments = None
    if not isinstance(arguments, dict):
        raise BackendProtocolError(
            f"Ollama at {location} sent tool call arguments that are not a JSON object: "
            f"{function.get('arguments')!r:.120}",
            location=location,
        )
    call_id = raw.get("id")
    if not isinstance(call_id, str) or not call_id:
        call_id = f"call_{secrets.token_hex(8)}"
    return ToolCall(id=call_id, name=function["name"], arguments=arguments)


class _ToolChoiceCheck:
    """Counts the calls of one stream and holds a forced choice to account.

    Under "required" or a named function the text is held back until the end:
    an answer without the call fails with FAILED_PRECONDITION instead of being
    passed off as the answer the client demanded.
    """

    def __init__(self, choice: ToolChoice, model: str, location: str) -> None:
        self._choice = choice
        self._model = model
        self._location = location
        self._held: list[str] = []
        self.calls = 0

    @property
    def holds_text(self) -> bool:
        return self._choice.forces_a_call

    def hold(self, text: str) -> None:
        self._held.append(text)

    def called(self, call: ToolCall) -> ToolCall:
        if self._choice.mode == "function" and call.name != self._choice.function:
            raise self._not_honoured(f"called {call.name!r} instead")
        self.calls += 1
        return call

    def release(self) -> list[str]:
        if self._choice.forces_a_call and self.calls == 0:
            raise self._not_honoured("answered in text without calling a tool")
        held, self._held = self._held, []
        return ["".join(held)] if held else []

    def _not_honoured(self, what: str) -> BackendUnsupported:
        wanted = (
            f"the function {self._choice.function!r}"
            if self._choice.mode == "function"
            else "a tool (tool choice required)"
        )
        return BackendUnsupported(
            f"model {self._model} on Ollama at {self._location} was told to call {wanted} but "
            f"{what}; Ollama cannot force a call: retry, or use tool choice auto",
            reason="TOOL_CHOICE_NOT_HONOURED",
            subject=self._model,
            location=self._location,
        )


def _error_text(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(data, dict) and "error" in data:
        return str(data["error"])
    return response.text[:200]


def _retry_after(response: httpx.Response) -> float:
    header = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(header))
    except ValueError:
        return _BUSY_RETRY_S


def _same_model(candidate: str, wanted: str) -> bool:
    """Ollama names carry an implicit ':latest' tag."""

    def norm(name: str) -> str:
        return name if ":" in name else f"{name}:latest"

    return norm(candidate) == norm(wanted)


def _parse_time(value: Any) -> datetime | None:
    """Ollama's RFC 3339 timestamps (nanoseconds, ``Z`` or an offset); None if absent."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
