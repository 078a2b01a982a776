"""The benchmark's Ollama stand-in: Ollama's HTTP API, as cheap as a server can be.

Raw asyncio protocol (uvloop when installed), one connection per client with
keep-alive, every answer line pre-encoded. It serves ``/``, ``/api/version``,
``/api/tags``, ``/api/ps``, ``/api/show`` and ``/api/chat`` (streaming NDJSON,
one chunk per token, ``num_predict`` honoured, ``stream: false`` too). A request
with a ``format`` schema is a judge call and gets the allow verdict as JSON.

The prompt may carry directives for the benchmark (anywhere in the last
message): ``bench-rate=R`` tokens/s for this stream (0: as fast as possible,
one write per event-loop turn, as a model flushing every token),
``bench-tokens=N`` answer length, ``bench-id=ID`` to record when the client
hung up (``GET /bench/disconnect/ID`` answers the ``time.monotonic()`` of it:
CLOCK_MONOTONIC, the same clock in every process of the machine).

    python -m bench.standin --port 11500 --rate 0 --answer-tokens 256

Judge mode (``--judge-prompt-tps``/``--judge-output-tps``, the agent suite): a
judge call costs what a model's would, at those rates: its prompt tokens
(characters / 4) less the prefix it shares with the previous judge prompt
(Ollama's prompt cache keeps the last prompt's KV), then one output token
per 1/rate seconds; the answer is the shortest JSON the call's ``format``
schema requires. ``--worker-prompt-tps`` does the same for the worker's
prompt (0: the first token at once). ``GET /bench/model-calls`` lists what
each modelled call cost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from bench import ollama_wire as wire
from bench.http_server import BadRequest, Request, RequestParser

DEFAULT_MODELS = ("qwen3-coder-next:latest", "llama3.1:8b")
_DIRECTIVE = re.compile(r"bench-(rate|tokens|id)=([\w.-]+)")
_MAX_TRACKED = 100_000


@dataclass(frozen=True, slots=True)
class StandinConfig:
    rate: float = 0.0
    answer_tokens: int = 256
    judge_rate: float = 0.0
    models: tuple[str, ...] = DEFAULT_MODELS
    judge_prompt_tps: float = 0.0  # > 0: judge mode (see the module docstring)
    judge_output_tps: float = 0.0
    worker_prompt_tps: float = 0.0
    chars_per_token: float = 4.0


@dataclass
class PromptModel:
    """A model's prompt cost with Ollama's prefix reuse: the last prompt stays cached."""

    prompt_tps: float
    chars_per_token: float
    last: str = ""

    def tokens(self, chars: int) -> int:
        return int(-(-chars // self.chars_per_token))

    def read(self, prompt: str) -> tuple[int, int, float]:
        """(prompt tokens, of which cached, seconds to read the rest)."""
        shared = _common_prefix(self.last, prompt)
        self.last = prompt
        total, cached = self.tokens(len(prompt)), self.tokens(shared) if shared else 0
        cached = min(cached, total)
        seconds = (total - cached) / self.prompt_tps if self.prompt_tps > 0 else 0.0
        return total, cached, seconds


def _common_prefix(a: str, b: str) -> int:
    size = min(len(a), len(b))
    low, high = 0, size
    while low < high:  # binary search on prefix equality (C-speed slices)
        mid = (low + high + 1) // 2
        if a[:mid] == b[:mid]:
            low = mid
        else:
            high = mid - 1
    return low


def shortest_judge_answer(schema: object) -> str:
    """The shortest JSON object the judge's ``format`` schema requires, allow verdict."""
    fill = {
        "verdict": "allow",
        "threats": [],
        "difficulty": "low",
        "task_type": "code_generation",
        "reason": "",
    }
    required = schema.get("required", list(fill)) if isinstance(schema, dict) else list(fill)
    return json.dumps({name: fill.get(name, "") for name in required}, separators=(",", ":"))


@dataclass
class StreamRecord:
    """What the stand-in saw of one tagged stream."""

    started_at: float
    disconnected_at: float | None = None
    completed_at: float | None = None


@dataclass
class Observations:
    """Counters and per-id records, bounded in size."""

    streams_started: int = 0
    streams_completed: int = 0
    disconnects: int = 0
    tokens_sent: int = 0
    judge_calls: int = 0
    model_calls: list[dict[str, Any]] = field(default_factory=list)
    tagged: OrderedDict[str, StreamRecord] = field(default_factory=OrderedDict)

    def track(self, bench_id: str) -> StreamRecord:
        record = StreamRecord(time.monotonic())
        self.tagged[bench_id] = record
        while len(self.tagged) > _MAX_TRACKED:
            self.tagged.popitem(last=False)
        return record

    def as_json(self) -> dict[str, Any]:
        return {
            "streams_started": self.streams_started,
            "streams_completed": self.streams_completed,
            "disconnects": self.disconnects,
            "tokens_sent": self.tokens_sent,
            "judge_calls": self.judge_calls,
        }


def _key(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


class Standin:
    """The application: routes requests and plays streams onto connections."""

    def __init__(self, config: StandinConfig) -> None:
        self.config = config
        self.seen = Observations()
        self._models = {_key(m) for m in config.models}
        self._judge = PromptModel(config.judge_prompt_tps, config.chars_per_token)
        self._worker = PromptModel(config.worker_prompt_tps, config.chars_per_token)

    def handle(self, request: Request, conn: Connection) -> None:
        path = request.path.split("?", 1)[0]
        if request.method == "GET" and path == "/":
            conn.send(wire.text_response(200, "Ollama is running"))
        elif request.method == "GET" and path == "/api/version":
            conn.send(wire.json_response(200, {"version": wire.VERSION}))
        elif request.method == "GET" and path == "/api/tags":
            models = [wire.model_entry(m) for m in sorted(self._models)]
            conn.send(wire.json_response(200, {"models": models}))
        elif request.method == "GET" and path == "/api/ps":
            expires = "2036-01-01T00:00:00.000000000Z"
            models = [
                {**wire.model_entry(m), "expires_at": expires, "size_vram": 0}
                for m in sorted(self._models)
            ]
            conn.send(wire.json_response(200, {"models": models}))
        elif request.method == "POST" and path == "/api/show":
            conn.send(wire.json_response(200, _show_body()))
        elif request.method == "POST" and path == "/api/chat":
            self._chat(request, conn)
        elif request.method == "GET" and path.startswith("/bench/disconnect/"):
            conn.send(wire.json_response(200, self._record_json(path.rsplit("/", 1)[1])))
        elif request.method == "GET" and path == "/bench/model-calls":
            conn.send(wire.json_response(200, {"calls": self.seen.model_calls}))
        elif request.method == "GET" and path == "/bench/stats":
            conn.send(wire.json_response(200, self.seen.as_json()))
        else:
            conn.send(wire.json_response(404, {"error": "404 page not found"}))

    def _record_json(self, bench_id: str) -> dict[str, Any]:
        record = self.seen.tagged.get(bench_id)
        if record is None:
            return {"id": bench_id, "seen": False}
        return {
            "id": bench_id,
            "seen": True,
            "started_at": record.started_at,
            "disconnected_at": record.disconnected_at,
            "completed_at": record.completed_at,
        }

    def _chat(self, request: Request, conn: Connection) -> None:
        try:
            body = json.loads(request.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            conn.send(wire.json_response(400, {"error": "invalid character in request body"}))
            return
        if not isinstance(body, dict):
            conn.send(wire.json_response(400, {"error": "request body must be an object"}))
            return
        model = str(body.get("model", ""))
        if _key(model) not in self._models:
            conn.send(
                wire.json_response(
                    404, {"error": f'model "{model}" not found, try pulling it first'}
                )
            )
            return
        messages = body.get("messages") or []
        if not messages:  # a warm-up: load the model, answer at once
            conn.send(wire.json_response(200, wire.final_line(model, 0, "load", 0)))
            return
        plan = self._plan(body, messages)
        if body.get("stream", True) is False:
            final = wire.final_line(model, len(plan.tokens), plan.reason, 1_000_000)
            final["message"]["content"] = "".join(plan.tokens)
            conn.send(wire.json_response(200, final))
            return
        conn.start_stream(self._stream(conn, model, plan))

    def _plan(self, body: dict[str, Any], messages: list[Any]) -> _Plan:
        last = messages[-1].get("content", "") if isinstance(messages[-1], dict) else ""
        directives = dict(_DIRECTIVE.findall(last if isinstance(last, str) else ""))
        if "format" in body:
            self.seen.judge_calls += 1
            if self.config.judge_prompt_tps > 0:
                return self._judge_plan(body, messages)
            return _Plan(wire.judge_tokens(), "stop", self.config.judge_rate, None)
        first_delay = 0.0
        if self.config.worker_prompt_tps > 0:
            total, cached, first_delay = self._worker.read(_prompt_text(messages))
            self.seen.model_calls.append(
                {
                    "kind": "worker",
                    "prompt_tokens": total,
                    "cached_tokens": cached,
                    "prompt_s": first_delay,
                }
            )
        count = _int(directives.get("tokens"), self.config.answer_tokens)
        limit = (body.get("options") or {}).get("num_predict")
        reason = "stop"
        if isinstance(limit, int) and 0 < limit < count:
            count, reason = limit, "length"
        rate = _float(directives.get("rate"), self.config.rate)
        return _Plan(wire.answer_tokens(count), reason, rate, directives.get("id"), first_delay)

    def _judge_plan(self, body: dict[str, Any], messages: list[Any]) -> _Plan:
        total, cached, prompt_s = self._judge.read(_prompt_text(messages))
        answer = shortest_judge_answer(body.get("format"))
        pieces = [answer[i : i + 3] for i in range(0, len(answer), 3)]  # ~3 characters a token
        rate = self.config.judge_output_tps
        self.seen.model_calls.append(
            {
                "kind": "judge",
                "prompt_tokens": total,
                "cached_tokens": cached,
                "prompt_s": prompt_s,
                "output_tokens": len(pieces),
                "output_s": len(pieces) / rate if rate > 0 else 0.0,
            }
        )
        return _Plan(pieces, "stop", rate, None, prompt_s)

    async def _stream(self, conn: Connection, model: str, plan: _Plan) -> None:
        seen = self.seen
        seen.streams_started += 1
        record = seen.track(plan.bench_id) if plan.bench_id else None
        conn.record = record
        chunks = wire.token_chunks(model, plan.tokens, wire.now_text())
        conn.send(wire.response_head(200, "application/x-ndjson", chunked=True))
        if plan.first_delay > 0:
            await asyncio.sleep(plan.first_delay)
        started = time.monotonic()
        for index, data in enumerate(chunks):
            if plan.rate > 0:
                delay = started + index / plan.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
            if conn.closed:
                return
            conn.send(data)
            seen.tokens_sent += 1
            await conn.drained()
        elapsed_ns = int((time.monotonic() - started) * 1e9)
        conn.send(wire.final_chunk(model, len(chunks), plan.reason, elapsed_ns) + wire.LAST_CHUNK)
        seen.streams_completed += 1
        conn.streaming = False
        if record is not None:
            record.completed_at = time.monotonic()
        conn.record = None


@dataclass(frozen=True, slots=True)
class _Plan:
    tokens: list[str]
    reason: str
    rate: float
    bench_id: str | None
    first_delay: float = 0.0  # seconds before the first token (modelled prompt reading)


def _prompt_text(messages: list[Any]) -> str:
    return "\n".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))


def _int(text: str | None, default: int) -> int:
    try:
        return max(1, int(text)) if text is not None else default
    except ValueError:
        return default


def _float(text: str | None, default: float) -> float:
    try:
        return max(0.0, float(text)) if text is not None else default
    except ValueError:
        return default


def _show_body() -> dict[str, Any]:
    return {
        "modelfile": "",
        "parameters": "",
        "template": "{{ .Prompt }}",
        "details": wire.model_entry("x")["details"],
        "model_info": {"general.architecture": "llama", "llama.context_length": 8192},
        "capabilities": ["completion"],
    }


class Connection(asyncio.Protocol):
    """One client connection: requests one after another, streams with flow control."""

    def __init__(self, app: Standin) -> None:
        self._app = app
        self._parser = RequestParser()
        self._transport: asyncio.Transport | None = None
        self._pending: list[Request] = []
        self._stream: asyncio.Task[None] | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self.closed = False
        self.streaming = False
        self.record: StreamRecord | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are no subclass of asyncio.Transport, but behave as one.
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            requests = self._parser.feed(data)
        except BadRequest as exc:
            self.send(wire.json_response(400, {"error": str(exc)}))
            self._close()
            return
        self._pending.extend(requests)
        self._serve_pending()

    def _serve_pending(self) -> None:
        while self._pending and self._stream is None and not self.closed:
            self._app.handle(self._pending.pop(0), self)

    def eof_received(self) -> bool:
        self._hung_up()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._hung_up()
        if self._stream is not None:
            self._stream.cancel()

    def _hung_up(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._writable.set()
        if self.streaming:
            self.streaming = False
            self._app.seen.disconnects += 1
            if self.record is not None:
                self.record.disconnected_at = time.monotonic()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    async def drained(self) -> None:
        if not self._writable.is_set():
            await self._writable.wait()

    def send(self, data: bytes) -> None:
        if self._transport is not None and not self.closed:
            self._transport.write(data)

    def start_stream(self, work: Any) -> None:
        self.streaming = True
        self._stream = asyncio.get_running_loop().create_task(work)
        self._stream.add_done_callback(self._stream_done)

    def _stream_done(self, task: asyncio.Task[None]) -> None:
        self._stream = None
        self.streaming = False
        if not task.cancelled() and task.exception() is not None:
            self._close()
            return
        self._serve_pending()

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def serve(host: str, port: int, config: StandinConfig) -> None:
    app = Standin(config)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(app), host, port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.standin",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--port", type=int, default=11500)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="tokens/s per stream (0: as fast as possible)"
    )
    parser.add_argument("--answer-tokens", type=int, default=256, help="answer length in tokens")
    parser.add_argument(
        "--judge-rate",
        type=float,
        default=0.0,
        help="tokens/s of the judge's verdict (0: as fast as possible)",
    )
    parser.add_argument(
        "--judge-prompt-tps",
        type=float,
        default=0.0,
        help="judge mode: prompt tokens/s of the judge (prefix reuse modelled)",
    )
    parser.add_argument(
        "--judge-output-tps",
        type=float,
        default=0.0,
        help="judge mode: output tokens/s of the judge",
    )
    parser.add_argument(
        "--worker-prompt-tps",
        type=float,
        default=0.0,
        help="prompt tokens/s of the worker's model (0: first token at once)",
    )
    parser.add_argument(
        "--model",
        action="append",
        default=None,
        help="a model to serve (repeatable; default: the worker's and judge's)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    if not args.host.startswith("127.") and args.host not in ("localhost", "::1"):
        raise SystemExit("the stand-in listens on loopback addresses only")
    config = StandinConfig(
        rate=args.rate,
        answer_tokens=args.answer_tokens,
        judge_rate=args.judge_rate,
        judge_prompt_tps=args.judge_prompt_tps,
        judge_output_tps=args.judge_output_tps,
        worker_prompt_tps=args.worker_prompt_tps,
        models=tuple(args.model or DEFAULT_MODELS),
    )
    runner: Any = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: PLC0415 - optional speed-up

        runner = uvloop.run
    runner(serve(args.host, args.port, config))


if __name__ == "__main__":
    main()
