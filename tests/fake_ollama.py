"""A fake Ollama: a real HTTP server speaking Ollama's wire format.

It serves ``/``, ``/api/version``, ``/api/tags``, ``/api/ps`` and ``/api/chat``
(streaming NDJSON ending with a ``done`` line, or one JSON object with
``stream: false``), the way Ollama does, so the services' httpx code runs
exactly as it would against Ollama on the Macs. Tests steer it through
``FakeOllama`` attributes: the reply, a per-token delay, and failure modes.
It records every chat request and every client that hung up mid-stream.

Tools and ``format`` as Ollama takes and answers them: with ``tools`` offered
and a user message last, the model calls a tool (``tool_caller`` decides which;
by default the first offered, with arguments made from its schema), sent as
one whole ``message.tool_calls`` chunk with ``id`` and ``function.index`` and
``arguments`` as an object, then a final chunk whose ``done_reason`` is still
"stop"; with a tool result last it answers that result in text. ``format``
"json" or a schema makes the default reply JSON (an instance of the schema);
a ``responder``'s reply is sent as it is.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

FailMode = Literal[
    None,
    "http_500",
    "no_done",
    "reset_once",
    "busy_503",
    "bad_json_line",
    "error_line",
    "drop_mid_stream",
    "stall_before_first_token",
]

Responder = Callable[[dict[str, Any]], str]
# The calls the fake model makes for a request: [(function name, arguments)].
ToolCaller = Callable[[dict[str, Any]], list[tuple[str, dict[str, Any]]]]


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class FakeOllama:
    """Configuration and observations of one fake Ollama server."""

    models: list[str] = field(default_factory=lambda: ["qwen3-coder-next:latest"])
    reply: str = "Hello from the fake Ollama. This is a streamed answer."
    token_delay_s: float = 0.0
    fail_mode: FailMode = None
    responder: Responder | None = None
    # Share of a loaded model /api/ps reports in GPU memory (size_vram / size):
    # 0 as on a CPU-only host, 1.0 as on a Mac with the model fully on the GPU.
    gpu_fraction: float = 0.0
    tool_caller: ToolCaller | None = None
    # False: answer like Ollama before 0.12, whose tool calls carry no id.
    tool_call_ids: bool = True
    chat_requests: list[dict[str, Any]] = field(default_factory=list)
    loaded: dict[str, datetime] = field(default_factory=dict)
    disconnects: int = 0
    disconnected: threading.Event = field(default_factory=threading.Event)
    disconnected_at: float | None = None  # time.monotonic() when a client hung up
    # Set when a chunk found the socket's send buffer full: the kernel buffers on
    # both ends hold all they can, so the client has stopped reading (for now).
    backpressured: threading.Event = field(default_factory=threading.Event)
    tokens_sent: int = 0
    bytes_sent: int = 0  # body bytes of streamed replies written so far
    # When set, each streamed token waits for a permit (``release_tokens``): the
    # test, not a clock, decides when Ollama has produced the next token.
    token_gate: threading.Semaphore | None = None
    stream_started: threading.Event = field(default_factory=threading.Event)
    # Set once a streamed reply has been sent in full (its final chunk written).
    stream_finished: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None
    connections: set[socket.socket] = field(default_factory=set)
    connections_opened: int = 0
    # Streamed generations running right now; ``no_generation_running`` is set
    # whenever none is (the hostile-input suite waits on it).
    generations_running: int = 0
    no_generation_running: threading.Event = field(default_factory=lambda: _set_event())
    _running_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def _generation_started(self) -> None:
        with self._running_lock:
            self.generations_running += 1
            self.no_generation_running.clear()

    def _generation_ended(self) -> None:
        with self._running_lock:
            self.generations_running -= 1
            if self.generations_running == 0:
                self.no_generation_running.set()

    def gate_tokens(self) -> None:
        """From now on every streamed token waits for ``release_tokens``."""
        self.token_gate = threading.Semaphore(0)

    def release_tokens(self, count: int = 1) -> None:
        assert self.token_gate is not None, "gate_tokens() first"
        self.token_gate.release(count)

    def generation_requests(self) -> list[dict[str, Any]]:
        """Chat requests that asked for generation (not the empty-messages warm-up)."""
        return [r for r in self.chat_requests if r.get("messages")]

    def has_model(self, name: str) -> bool:
        wanted = name if ":" in name else f"{name}:latest"
        return any((m if ":" in m else f"{m}:latest") == wanted for m in self.models)

    def tool_calls_for(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The ``message.tool_calls`` the model answers ``body`` with, in Ollama's form."""
        caller = self.tool_caller or default_tool_calls
        calls = caller(body) if body.get("tools") else []
        return [
            {
                **({"id": "call_" + secrets.token_hex(4)} if self.tool_call_ids else {}),
                "function": {"index": index, "name": name, "arguments": arguments},
            }
            for index, (name, arguments) in enumerate(calls)
        ]

    def tokens_for(self, body: dict[str, Any]) -> tuple[list[str], bool]:
        """The reply split like a tokenizer would (words keep their leading space),
        cut at ``num_predict``; the flag says whether it was cut."""
        if self.responder:  # a scripted reply is sent as it is, format or not
            text = self.responder(body)
        else:
            text = _formatted(_default_reply(body, self.reply), body.get("format"))
        pieces = [word if index == 0 else " " + word for index, word in enumerate(text.split(" "))]
        limit = body.get("options", {}).get("num_predict")
        if isinstance(limit, int) and 0 < limit < len(pieces):
            return pieces[:limit], True
        return pieces, False


def _handler(fake: FakeOllama) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            fake.connections.add(self.connection)
            fake.connections_opened += 1

        def finish(self) -> None:
            fake.connections.discard(self.connection)
            super().finish()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            return

        def _send_json(self, status: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/":
                body = b"Ollama is running"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path == "/api/version":
                self._send_json(200, {"version": "0.12.6"})
            elif self.path == "/api/tags":
                self._send_json(200, {"models": [_model_entry(name) for name in fake.models]})
            elif self.path == "/api/ps":
                now = datetime.now(UTC)
                running = [
                    {
                        **_model_entry(name),
                        "expires_at": expires.isoformat(),
                        "size_vram": int(_model_entry(name)["size"] * fake.gpu_fraction),
                    }
                    for name, expires in fake.loaded.items()
                    if expires > now
                ]
                self._send_json(200, {"models": running})
            else:
                self._send_json(404, {"error": "404 page not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path != "/api/chat":
                self._send_json(404, {"error": "404 page not found"})
                return
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                self._send_json(400, {"error": "invalid character in request body"})
                return
            fake.chat_requests.append(body)
            model = body.get("model", "")
            if not fake.has_model(model):
                self._send_json(404, {"error": f'model "{model}" not found, try pulling it first'})
                return
            if fake.fail_mode == "http_500":
                self._send_json(500, {"error": "llama runner process has terminated"})
                return
            if fake.fail_mode == "reset_once":
                fake.fail_mode = None
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fake.fail_mode == "busy_503":
                self._send_json(
                    503,
                    {"error": "server busy, please try again. maximum pending requests exceeded"},
                )
                return
            fake.loaded[model if ":" in model else f"{model}:latest"] = datetime.now(
                UTC
            ) + _keep_alive(body)
            if not body.get("messages"):
                self._send_json(200, _final_chunk(model, 0, "load"))
                return
            calls = fake.tool_calls_for(body)
            tokens, cut = ([], False) if calls else fake.tokens_for(body)
            reason = "length" if cut else "stop"  # Ollama says "stop" after tool calls too
            if body.get("stream", True) is False:
                final = _final_chunk(model, len(tokens) + len(calls), reason)
                final["message"]["content"] = "".join(tokens)
                if calls:
                    final["message"]["tool_calls"] = calls
                self._send_json(200, final)
                return
            self._stream(model, tokens, reason, calls)

        def _stream(
            self, model: str, tokens: list[str], reason: str, calls: list[dict[str, Any]]
        ) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            fake.stream_started.set()
            fake._generation_started()
            try:
                if calls:
                    self._stream_calls(model, calls)
                else:
                    self._stream_body(model, tokens, reason)
            finally:
                fake._generation_ended()

        def _stream_body(self, model: str, tokens: list[str], reason: str) -> None:
            try:
                if fake.fail_mode == "stall_before_first_token":
                    self._wait_for_disconnect()
                    return
                for index, token in enumerate(tokens):
                    if fake.fail_mode == "drop_mid_stream" and index == len(tokens) // 2:
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if fake.fail_mode == "bad_json_line" and index == 1:
                        self._chunk(b"{not json\n")
                        break
                    if fake.fail_mode == "error_line" and index == 1:
                        self._chunk(
                            json.dumps(
                                {"error": "an error was encountered while running the model"}
                            ).encode()
                            + b"\n"
                        )
                        break
                    gate = fake.token_gate
                    if gate is not None and not gate.acquire(timeout=_GATE_GUARD_S):
                        raise TimeoutError("the test never released the next token")
                    line = {
                        "model": model,
                        "created_at": _now(),
                        "message": {"role": "assistant", "content": token},
                        "done": False,
                    }
                    self._chunk(json.dumps(line).encode() + b"\n")
                    fake.tokens_sent += 1
                    if fake.token_delay_s and self._hung_up_within(fake.token_delay_s):
                        self._note_disconnect()
                        return
                else:
                    if fake.fail_mode == "no_done":
                        self._chunk(b"")
                        return
                    self._chunk(
                        json.dumps(_final_chunk(model, len(tokens), reason)).encode() + b"\n"
                    )
                self._chunk(b"")
                fake.stream_finished.set()
            except (BrokenPipeError, ConnectionResetError):
                self._note_disconnect()

        def _note_disconnect(self) -> None:
            fake.disconnected_at = time.monotonic()
            fake.disconnects += 1
            fake.disconnected.set()

        def _hung_up_within(self, seconds: float) -> bool:
            """Pause between tokens, and see the client hang up the moment it does
            (not at a later write, which the kernel may still accept)."""
            readable, _, _ = select.select([self.connection], [], [], seconds)
            if not readable:
                return False
            try:
                return self.connection.recv(1, socket.MSG_PEEK) == b""
            except OSError:
                return True

        def _stream_calls(self, model: str, calls: list[dict[str, Any]]) -> None:
            """Tool calls come whole, in one chunk with empty content, then the end."""
            try:
                message = {"role": "assistant", "content": "", "tool_calls": calls}
                line = {"model": model, "created_at": _now(), "message": message, "done": False}
                self._chunk(json.dumps(line).encode() + b"\n")
                final = _final_chunk(model, len(calls) * 8, "stop")
                self._chunk(json.dumps(final).encode() + b"\n")
                self._chunk(b"")
                fake.stream_finished.set()
            except (BrokenPipeError, ConnectionResetError):
                fake.disconnects += 1
                fake.disconnected.set()

        def _wait_for_disconnect(self) -> None:
            """Hold the stream open, sending nothing, until the client hangs up."""
            self.connection.settimeout(0.05)
            while True:
                try:
                    if self.connection.recv(1) == b"":
                        break
                except TimeoutError:
                    continue
                except OSError:
                    break
            self._note_disconnect()

        def _chunk(self, data: bytes) -> None:
            # Unwritable now: the send buffer is full, which only a reader that is
            # behind causes (a check of the socket, not of how long a write took).
            _, writable, _ = select.select([], [self.connection], [], 0)
            if not writable:
                fake.backpressured.set()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
            fake.bytes_sent += len(data)

    return Handler


_GATE_GUARD_S = 60.0  # a gated token nobody releases: fail, do not hang the thread


def _set_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


def _last_non_system(body: dict[str, Any]) -> dict[str, Any]:
    turns = [m for m in body.get("messages", []) if m.get("role") != "system"]
    return turns[-1] if turns else {}


def default_tool_calls(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The fake model calls the first offered tool when a user spoke last; after a
    tool result it answers in text."""
    if _last_non_system(body).get("role") != "user":
        return []
    function = body["tools"][0]["function"]
    return [(function["name"], example_of(function.get("parameters") or {}))]


def _default_reply(body: dict[str, Any], reply: str) -> str:
    last = _last_non_system(body)
    if last.get("role") == "tool" and (last.get("tool_name") or last.get("tool_call_id")):
        return f"The tool {last.get('tool_name', '')} answered: {last.get('content', '')}"
    return reply


def _formatted(text: str, fmt: Any) -> str:
    """A reply under ``format``: JSON holding the text, or an instance of the schema."""
    if fmt == "json":
        return json.dumps({"answer": text})
    if isinstance(fmt, dict):
        return json.dumps(example_of(fmt, text))
    return text


def example_of(schema: dict[str, Any], text: str = "example") -> Any:
    """A value matching a (simple) JSON schema: what a grammar-constrained model writes."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = kind[0]
    if kind == "object":
        return {name: example_of(sub, text) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [example_of(schema.get("items", {}), text)]
    return {"string": text, "integer": 3, "number": 2.5, "boolean": True, "null": None}.get(
        kind, text
    )


def _keep_alive(body: dict[str, Any]) -> timedelta:
    value = body.get("keep_alive", "5m")
    if value in (-1, "-1"):
        return timedelta(days=3650)
    if isinstance(value, (int, float)):
        return timedelta(seconds=value)
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        return timedelta(seconds=float(value[:-1]) * units[value[-1]])
    except (KeyError, ValueError, IndexError):
        return timedelta(minutes=5)


def _model_entry(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "model": name,
        "modified_at": "2026-11-01T10:00:00.000000000Z",
        "size": 4_920_753_328,
        "digest": "a" * 64,
        "details": {
            "format": "gguf",
            "family": "llama",
            "parameter_size": "8.0B",
            "quantization_level": "Q4_K_M",
        },
    }


def _final_chunk(model: str, eval_count: int, reason: str) -> dict[str, Any]:
    return {
        "model": model,
        "created_at": _now(),
        "message": {"role": "assistant", "content": ""},
        "done_reason": reason,
        "done": True,
        "total_duration": 5_000_000 + eval_count * 1_000_000,
        "load_duration": 1_000_000,
        "prompt_eval_count": 12,
        "prompt_eval_duration": 2_000_000,
        "eval_count": eval_count,
        "eval_duration": eval_count * 1_000_000,
    }


def start_fake_ollama(fake: FakeOllama, host: str = "127.0.0.1", port: int = 0) -> FakeOllama:
    server = ThreadingHTTPServer((host, port), _handler(fake))
    server.daemon_threads = True
    fake.server = server
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-ollama", daemon=True
    ).start()
    return fake


def stop_fake_ollama(fake: FakeOllama) -> None:
    """Stop like a killed Ollama: no listener, and every open connection reset."""
    if fake.server is not None:
        fake.server.shutdown()
        fake.server.server_close()
        for connection in list(fake.connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        fake.server = None


def main() -> None:
    """Run a fake Ollama as its own process (for tests on a second host)."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model", action="append", default=None)
    parser.add_argument("--reply", default=FakeOllama.reply)
    parser.add_argument("--token-delay-s", type=float, default=0.0)
    parser.add_argument(
        "--report-disconnects",
        action="store_true",
        help="print 'disconnected <time.monotonic()>' on each mid-stream hang-up",
    )
    args = parser.parse_args()
    fake = FakeOllama(
        models=args.model or ["qwen3-coder-next:latest"],
        reply=args.reply,
        token_delay_s=args.token_delay_s,
    )
    start_fake_ollama(fake, args.host, args.port)
    print(fake.url, flush=True)
    while args.report_disconnects:  # one hang-up at a time: the caller waits for each line
        fake.disconnected.wait()
        fake.disconnected.clear()
        print(f"disconnected {fake.disconnected_at}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
