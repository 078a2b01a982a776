"""A small streaming HTTP/1.1 client for the load generator: one keep-alive connection.

It reads a response's body line by line (chunked or Content-Length), which is
all NDJSON (Ollama) and server-sent events (LiteLLM's OpenAI API) need, at a
fraction of a general client's cost per line, so the load generator measures
the servers rather than itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator


class HttpError(Exception):
    """A non-200 answer or a broken response."""


class HttpConnection:
    """One persistent connection to ``host:port``; one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(
                self._host, self._port, limit=1 << 20
            )
        return self._reader, self._writer

    def close(self) -> None:
        """Hang up at once (what a client cancelling its stream does)."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def get_json_bytes(self, path: str) -> bytes:
        chunks = [line async for line in self.stream("GET", path, b"", "application/json")]
        return b"".join(chunks)

    async def stream(
        self, method: str, path: str, body: bytes, content_type: str = "application/json"
    ) -> AsyncGenerator[bytes, None]:
        """Send one request; yield the body's lines (newline stripped) as they arrive."""
        reader, writer = await self._open()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Accept: */*\r\n\r\n"
        ).encode()
        writer.write(head + body)
        complete = False
        try:
            status, headers = await _read_head(reader)
            if status != 200:
                text = await _read_body(reader, headers)
                complete = True
                raise HttpError(f"HTTP {status}: {text[:200]!r}")
            async for line in _body_lines(reader, headers):
                yield line
            complete = headers.get("connection", "").lower() != "close"
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise HttpError(f"connection broke: {type(exc).__name__}") from exc
        finally:
            if not complete:
                self.close()


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise HttpError(f"bad status line {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    return b"\n".join([line async for line in _body_lines(reader, headers)])


async def _body_lines(
    reader: asyncio.StreamReader, headers: dict[str, str]
) -> AsyncIterator[bytes]:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        source = _chunked_data(reader)
    elif "content-length" in headers:
        source = _sized_data(reader, int(headers["content-length"]))
    else:
        source = _data_until_eof(reader)
    pending = b""
    async for data in source:
        pending += data
        if b"\n" not in pending:
            continue
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line
    if pending:
        yield pending


async def _chunked_data(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers expected: the empty line
            return
        data = await reader.readexactly(size + 2)
        yield data[:-2]


async def _sized_data(reader: asyncio.StreamReader, length: int) -> AsyncIterator[bytes]:
    if length:
        yield await reader.readexactly(length)


async def _data_until_eof(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while data := await reader.read(65536):
        yield data
