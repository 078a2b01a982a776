"""httpx over ``tandem.backends.asyncio_transport``: the socket layer the worker reads
Ollama's stream through. Real sockets, a real HTTP/1.1 server on a free port."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpcore
import httpx
import pytest

from tandem.backends.asyncio_transport import AsyncioHTTPTransport, AsyncioNetworkBackend
from tandem.backends.ollama import OllamaBackend
from tandem.security.certs import CertificateAuthority

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=4)


async def _request_body(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return await reader.readexactly(length)


async def _chunked(writer: asyncio.StreamWriter, parts: list[bytes]) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    for part in parts:
        writer.write(b"%x\r\n%s\r\n" % (len(part), part))
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()


async def _serve(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> asyncio.Server:
    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(guarded, "127.0.0.1", 0, ssl=ssl_context)


def _port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


def _url(server: asyncio.Server, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{_port(server)}"


async def _client(base_url: str, **kwargs: object) -> httpx.AsyncClient:
    verify = kwargs.pop("verify", True)
    assert isinstance(verify, ssl.SSLContext | bool)
    return httpx.AsyncClient(
        base_url=base_url,
        transport=AsyncioHTTPTransport(limits=LIMITS, verify=verify),
        **kwargs,  # type: ignore[arg-type]
    )


def test_the_ollama_backend_reads_generations_through_it() -> None:
    backend = OllamaBackend("http://127.0.0.1:1", "m", keep_alive="2h", num_ctx=8192)
    # httpx gives no public way to name a network backend (asyncio_transport.py): this
    # fails if an httpx upgrade builds its pool elsewhere.
    transport = backend._client._transport  # noqa: SLF001
    assert isinstance(transport, AsyncioHTTPTransport)
    assert isinstance(transport._pool._network_backend, AsyncioNetworkBackend)  # noqa: SLF001


async def test_a_chunked_stream_arrives_whole_and_in_order_over_one_kept_alive_connection() -> None:
    connections = 0
    parts = [f'{{"n": {i}}}\n'.encode() * (1 + i % 7) for i in range(300)]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        for _ in range(2):  # two requests on one connection
            await _request_body(reader)
            await _chunked(writer, parts)

    server = await _serve(handler)
    async with server, await _client(_url(server)) as client:
        for _ in range(2):
            async with client.stream("POST", "/api/chat", json={"x": 1}) as response:
                received = [chunk async for chunk in response.aiter_bytes()]
            assert b"".join(received) == b"".join(parts)
    assert connections == 1


async def test_a_large_body_both_ways_passes_the_flow_control() -> None:
    body = bytes(range(256)) * 40_000  # 10 MB up, the same back
    seen: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received = await _request_body(reader)
        seen.append(len(received))
        await _chunked(
            writer, [received[i : i + 1_000_000] for i in range(0, len(received), 1_000_000)]
        )

    server = await _serve(handler)
    async with server, await _client(_url(server)) as client:
        response = await client.post("/upload", content=body)
    assert seen == [len(body)] and response.content == body


async def test_silence_is_a_read_timeout_and_no_server_a_connect_error() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request_body(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await reader.read()  # says nothing more until the client hangs up

    server = await _serve(silent)
    async with server, await _client(_url(server), timeout=httpx.Timeout(5.0, read=0.2)) as client:
        async with client.stream("POST", "/api/chat", json={}) as response:
            stream = response.aiter_bytes()
            assert await anext(stream) == b"hello"
            with pytest.raises(httpx.ReadTimeout):
                await anext(stream)
    closed = await _serve(silent)
    url = _url(closed)
    closed.close()
    await closed.wait_closed()
    async with await _client(url) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/")


async def test_a_connection_the_server_dropped_while_idle_is_not_reused() -> None:
    connections = 0
    closed = asyncio.Event()

    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await _request_body(reader)
        await _chunked(writer, [b"ok"])
        writer.close()
        await writer.wait_closed()
        closed.set()

    server = await _serve(once)
    async with server, await _client(_url(server)) as client:
        assert (await client.post("/a", content=b"1")).content == b"ok"
        await closed.wait()
        assert (await client.post("/b", content=b"2")).content == b"ok"
    assert connections == 2


async def test_an_idle_connection_is_readable_once_the_peer_closes_before_the_loop_runs() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        stream = await AsyncioNetworkBackend().connect_tcp("127.0.0.1", port)
        assert stream.get_extra_info("is_readable") is False  # open, nothing sent
        accepted, _ = listener.accept()
        accepted.close()
        # No await since the close: the loop has not read it, the socket says it.
        assert stream.get_extra_info("is_readable") is True
        await stream.aclose()


def _tls_contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server certificate for 127.0.0.1 from a fresh CA (the project's own
    ``tandem.security.certs``), and a client context that trusts that CA alone."""
    authority = CertificateAuthority.create()
    issued = authority.issue("ollama", ["127.0.0.1"])
    (tmp_path / "ca.pem").write_bytes(authority.cert_pem)
    (tmp_path / "cert.pem").write_bytes(issued.cert_pem)
    (tmp_path / "key.pem").write_bytes(issued.key_pem)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return server, ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))


async def test_https_is_verified_against_the_given_authority(tmp_path: Path) -> None:
    server_context, client_context = _tls_contexts(tmp_path)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request_body(reader)
        await _chunked(writer, [b"secure"])
        await reader.read()  # keeps the connection until the client closes it

    server = await _serve(handler, server_context)
    async with server:
        async with await _client(_url(server, "https"), verify=client_context) as client:
            async with client.stream("POST", "/", content=b"x") as response:
                stream = response.extensions["network_stream"]
                assert stream.get_extra_info("ssl_object") is not None  # TLS, while open
                assert await response.aread() == b"secure"
        async with await _client(_url(server, "https")) as untrusting:  # the system's CAs
            with pytest.raises(httpx.ConnectError):
                await untrusting.post("/", content=b"x")


async def test_each_read_keeps_its_own_timeout() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await reader.read(100):
            if request == b"slow":  # the stimulus: an answer later than 0.1 s
                await asyncio.sleep(0.3)
            writer.write(request)
            await writer.drain()

    server = await _serve(echo)
    async with server:
        stream = await AsyncioNetworkBackend().connect_tcp("127.0.0.1", _port(server))
        await stream.write(b"1")
        assert await stream.read(10, timeout=30.0) == b"1"  # the connection's timer: +30 s
        async with asyncio.timeout(10.0):  # a shorter timeout fires on its own time
            with pytest.raises(httpcore.ReadTimeout):
                await stream.read(10, timeout=0.05)
        await stream.write(b"2")
        assert await stream.read(10, timeout=0.1) == b"2"  # leaves a timer at +0.1 s
        await stream.write(b"slow")
        assert await stream.read(10, timeout=None) == b"slow"  # no timeout: that timer is moot
        await stream.aclose()
