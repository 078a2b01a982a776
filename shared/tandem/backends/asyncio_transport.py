"""httpx's HTTP transport over plain asyncio sockets, for Ollama's token stream.

httpx talks to sockets through httpcore, and httpcore's default network backend on
asyncio is anyio's: every read of a stream wraps a cancel scope (with a timer when
there is a timeout) and resumes then pauses the transport's reading (two
``epoll_ctl`` calls). Ollama sends one HTTP chunk per token, so at a paced 32
streams x 100 tokens/s that layer is much of what reading a token costs: 122-160
µs of CPU per token through ``OllamaBackend.chat_stream`` with the default
backend, 82-97 µs with this one, and the worker's whole cost per relayed token
falls by a fifth (docs/relay-performance.md).

This module keeps httpx and httpcore (HTTP/1.1 by h11, the connection pool,
keep-alive, httpx's exception types) and replaces only the socket layer
(``httpcore.AsyncNetworkBackend``) with an ``asyncio.Protocol`` that buffers what
arrives: a read returns at once when bytes are buffered, and waits on one future
otherwise. Flow control both ways (a full read buffer pauses the socket, a full
write buffer waits for the drain), TLS (``loop.start_tls``) and the read, write and
connect timeouts behave as httpcore's own backends do.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
from collections.abc import Awaitable, Iterable, Iterator
from typing import Any

import httpcore
import httpx

# Stop reading the socket while this much is buffered and unread (h11 reads 64 KiB).
_HIGH_WATER = 256 * 1024
# httpcore's names for what a network stream tells, and asyncio's.
_EXTRA_INFO = {
    "ssl_object": "ssl_object",
    "client_addr": "sockname",
    "server_addr": "peername",
    "socket": "socket",
}


class _Protocol(asyncio.Protocol):
    """Buffers what the socket delivers; wakes the one reader waiting for it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self._readable: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._paused = False  # writing: the transport's buffer is full
        self._reading_paused = False  # reading: ours is
        self._deadline: float | None = None  # loop time by which the waiting read must see data
        self._watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
            self._reading_paused = True
        _resolve(self._readable)

    def eof_received(self) -> bool:
        self.eof = True
        _resolve(self._readable)
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        _resolve(self._readable)
        _resolve(self._drained)
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        _resolve(self._drained)

    def take(self, max_bytes: int) -> bytes:
        data = bytes(self.buffer[:max_bytes])
        del self.buffer[:max_bytes]
        if self._reading_paused and len(self.buffer) <= _HIGH_WATER // 2:
            self._reading_paused = False
            if self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()
        return data

    async def readable(self, timeout: float | None) -> None:
        """Until data, end of stream or an error arrives; TimeoutError after ``timeout``.

        One timer per connection, re-armed only when it fires early (a token every
        10 ms would otherwise push and cancel a timer per token): each wait moves the
        deadline, and the timer, when it fires, fails the wait only if that deadline
        has passed."""
        loop = asyncio.get_running_loop()
        self._readable = loop.create_future()
        self._deadline = None if timeout is None else loop.time() + timeout
        if self._deadline is not None and (
            self._watchdog is None or self._watchdog.when() > self._deadline
        ):
            if self._watchdog is not None:
                self._watchdog.cancel()
            self._watchdog = loop.call_at(self._deadline, self._check_deadline)
        try:
            await self._readable
        finally:
            self._readable = None

    def _check_deadline(self) -> None:
        self._watchdog = None
        waiting = self._readable
        if waiting is None or waiting.done() or self._deadline is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() >= self._deadline:
            waiting.set_exception(TimeoutError("no data within the read timeout"))
        else:
            self._watchdog = loop.call_at(self._deadline, self._check_deadline)

    async def drained(self) -> None:
        while self._paused and self.error is None and not self.eof:
            self._drained = asyncio.get_running_loop().create_future()
            try:
                await self._drained
            finally:
                self._drained = None


def _socket_readable(sock: socket.socket | None) -> bool:
    """Whether the socket has bytes (or the peer's close) the loop has not read yet, as
    httpcore's own backends ask before reusing a pooled connection: the loop may not
    have run since the peer closed it. A socket already gone counts as readable."""
    if sock is None or sock.fileno() < 0:
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])


def _resolve(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


@contextlib.contextmanager
def _mapped(timeout_error: type[Exception], other: type[Exception]) -> Iterator[None]:
    """Timeouts and socket errors as httpcore's exceptions (httpx maps those)."""
    try:
        yield
    except TimeoutError as exc:
        raise timeout_error(str(exc) or "timed out") from exc
    except (OSError, ssl.SSLError) as exc:
        raise other(str(exc)) from exc


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, protocol: _Protocol) -> None:
        self._protocol = protocol

    @property
    def _transport(self) -> asyncio.Transport:
        transport = self._protocol.transport
        assert transport is not None  # set by connection_made before the stream exists
        return transport

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.buffer and not protocol.eof:
            with _mapped(httpcore.ReadTimeout, httpcore.ReadError):
                await protocol.readable(timeout)
        if protocol.buffer:
            return protocol.take(max_bytes)
        if protocol.error is not None:
            raise httpcore.ReadError(str(protocol.error))
        return b""  # the peer closed the connection

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        self._transport.write(buffer)
        with _mapped(httpcore.WriteTimeout, httpcore.WriteError):
            async with asyncio.timeout(timeout):
                await self._protocol.drained()
        if self._protocol.error is not None:
            raise httpcore.WriteError(str(self._protocol.error))

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            async with asyncio.timeout(timeout):
                secure = await loop.start_tls(
                    self._transport,
                    self._protocol,
                    ssl_context,
                    server_hostname=server_hostname,
                )
        assert isinstance(secure, asyncio.Transport)
        self._protocol.transport = secure
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # an idle pooled connection the peer dropped
            protocol = self._protocol
            return (
                bool(protocol.buffer)
                or protocol.eof
                or _socket_readable(self._transport.get_extra_info("socket"))
            )
        name = _EXTRA_INFO.get(info)
        if name is None or self._transport.is_closing():  # a closed TLS transport raises
            return None
        return self._transport.get_extra_info(name)


async def _connected(
    connecting: Awaitable[tuple[asyncio.Transport, _Protocol]],
    timeout: float | None,
    socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
) -> _Stream:
    with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
        async with asyncio.timeout(timeout):
            transport, protocol = await connecting
    sock: socket.socket = transport.get_extra_info("socket")
    for option in socket_options or ():
        sock.setsockopt(*option)
    return _Stream(protocol)


class AsyncioNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's socket layer on the running asyncio loop, without anyio."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = None if local_address is None else (local_address, 0)
        connecting = loop.create_connection(_Protocol, host, port, local_addr=local)
        return await _connected(connecting, timeout, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        connecting = asyncio.get_running_loop().create_unix_connection(_Protocol, path)
        return await _connected(connecting, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class AsyncioHTTPTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request and response mapping, exception types), with its
    connection pool on ``AsyncioNetworkBackend``. Proxies are not used: Ollama is on
    the machine or across the Thunderbolt link."""

    def __init__(self, *, limits: httpx.Limits, verify: ssl.SSLContext | bool = True) -> None:
        super().__init__(limits=limits, verify=verify)
        # httpx builds its pool in __init__ with no way to name a network backend;
        # the same pool, on ours (tests/test_asyncio_transport.py checks it is used).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=AsyncioNetworkBackend(),
        )
