"""Just enough HTTP/1.1 request parsing for the stand-in: keep-alive, Content-Length bodies."""

from __future__ import annotations

from dataclasses import dataclass

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024


class BadRequest(Exception):
    """The bytes are not an HTTP/1.1 request the stand-in understands."""


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class RequestParser:
    """Feed it bytes as they arrive; it returns the requests they complete."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._head: tuple[str, str, dict[str, str]] | None = None
        self._length = 0

    def feed(self, data: bytes) -> list[Request]:
        self._buffer += data
        done: list[Request] = []
        while True:
            if self._head is None and not self._parse_head():
                return done
            if len(self._buffer) < self._length:
                return done
            assert self._head is not None
            method, path, headers = self._head
            body = bytes(self._buffer[: self._length])
            del self._buffer[: self._length]
            self._head = None
            done.append(Request(method, path, headers, body))

    def _parse_head(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise BadRequest("request head too large")
            return False
        lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise BadRequest(f"bad request line {lines[0][:80]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise BadRequest(f"bad header line {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise BadRequest("chunked request bodies are not supported")
        try:
            self._length = int(headers.get("content-length", "0"))
        except ValueError as exc:
            raise BadRequest("bad Content-Length") from exc
        if not 0 <= self._length <= MAX_BODY_BYTES:
            raise BadRequest("body too large")
        self._head = (parts[0], parts[1], headers)
        return True
