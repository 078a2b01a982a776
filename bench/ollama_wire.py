"""Ollama's HTTP wire format, pre-encoded: the bytes the stand-in writes.

``/api/chat`` with ``stream: true`` answers ``200`` with ``Transfer-Encoding:
chunked`` and ``Content-Type: application/x-ndjson``; every chunk is one JSON
line ``{"model", "created_at", "message": {"role", "content"}, "done": false}``
and the last one carries ``done: true``, ``done_reason`` and the counts and
durations (nanoseconds). A request with a ``format`` (a JSON schema) is a judge
call: its content is one JSON object. The lines are built once per request, so
writing a token costs the stand-in one ``transport.write``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

VERSION = "0.12.6"
JUDGE_VERDICT: dict[str, Any] = {
    "verdict": "allow",
    "threats": [],
    "difficulty": "low",
    "task_type": "code_generation",
    "reason": "an ordinary coding task",
}
# Words of a plausible answer; token i is word i (mod the vocabulary) with a leading space.
_ANSWER_TEXT = (
    "def reverse(text: str) -> str: return text[::-1] # Reverses the string with a slice, "
    "which walks it from the end to the start one character at a time and builds a new "
    "string; it runs in linear time and works for any sequence type."
)
_ANSWER_WORDS = tuple(_ANSWER_TEXT.split(" "))


def now_text() -> str:
    """Ollama's ``created_at``: RFC 3339 with nanoseconds, in UTC."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def answer_tokens(count: int) -> list[str]:
    """``count`` tokens of the answer, as a tokenizer splits words."""
    return [
        (word if index == 0 else " " + word)
        for index, word in ((i, _ANSWER_WORDS[i % len(_ANSWER_WORDS)]) for i in range(count))
    ]


def judge_tokens() -> list[str]:
    """The judge's verdict, split into pieces like a model streams it."""
    text = json.dumps(JUDGE_VERDICT)
    return [text[i : i + 8] for i in range(0, len(text), 8)]


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk (``b""`` gives the terminating chunk)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = chunk(b"")


def token_chunks(model: str, tokens: Sequence[str], created_at: str) -> list[bytes]:
    """Each token as one chunk holding one NDJSON line."""
    head = (
        f'{{"model":{json.dumps(model)},"created_at":"{created_at}",'
        '"message":{"role":"assistant","content":'
    ).encode()
    tail = b'},"done":false}\n'
    return [chunk(head + json.dumps(token).encode() + tail) for token in tokens]


def final_line(model: str, eval_count: int, reason: str, elapsed_ns: int) -> dict[str, Any]:
    """The closing ``done: true`` object with Ollama's counts and durations."""
    return {
        "model": model,
        "created_at": now_text(),
        "message": {"role": "assistant", "content": ""},
        "done_reason": reason,
        "done": True,
        "total_duration": elapsed_ns + 1_000_000,
        "load_duration": 1_000_000,
        "prompt_eval_count": 12,
        "prompt_eval_duration": 500_000,
        "eval_count": eval_count,
        "eval_duration": elapsed_ns,
    }


def final_chunk(model: str, eval_count: int, reason: str, elapsed_ns: int) -> bytes:
    line = json.dumps(final_line(model, eval_count, reason, elapsed_ns), separators=(",", ":"))
    return chunk(line.encode() + b"\n")


def model_entry(name: str) -> dict[str, Any]:
    """One model as ``/api/tags`` and ``/api/ps`` list it."""
    return {
        "name": name,
        "model": name,
        "modified_at": "2026-11-01T10:00:00.000000000Z",
        "size": 4_920_753_328,
        "digest": "b" * 64,
        "details": {
            "format": "gguf",
            "family": "llama",
            "parameter_size": "8.0B",
            "quantization_level": "Q4_K_M",
        },
    }


def response_head(status: int, content_type: str, *, chunked: bool, length: int = 0) -> bytes:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "Error")
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}"
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Date: {datetime.now(UTC):%a, %d %b %Y %H:%M:%S GMT}\r\n{framing}\r\n\r\n"
    ).encode()


def json_response(status: int, payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload).encode()
    return (
        response_head(status, "application/json; charset=utf-8", chunked=False, length=len(body))
        + body
    )


def text_response(status: int, text: str) -> bytes:
    body = text.encode()
    return (
        response_head(status, "text/plain; charset=utf-8", chunked=False, length=len(body)) + body
    )
