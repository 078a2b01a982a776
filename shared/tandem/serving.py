"""Start a gRPC asyncio server the same way for both services.

Standard health (``grpc.health.v1``) and server reflection are always on, so
grpcurl and health probes work with no .proto files.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from tandem.health import NOT_SERVING, SERVING, HealthService
from tandem.inflight import InFlight
from tandem.settings import parse_host_port

log = logging.getLogger(__name__)


# Message size and keepalive limits for both services and their channels.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Accept the gateway's keepalive pings (every 2 s), even with no call in flight.
    ("grpc.http2.min_ping_interval_without_data_ms", 1_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.so_reuseport", 0),
)
# A connection that has not finished its HTTP/2 (and TLS) handshake by then is
# closed: silent or garbage-sending sockets cannot pile up.
HANDSHAKE_TIMEOUT_MS = 10_000
# The server pings each connection this often and drops it when a ping goes
# unanswered: a peer that vanished (no FIN, no RST) does not hold its calls.
SERVER_KEEPALIVE_MS = 30_000
SERVER_KEEPALIVE_TIMEOUT_MS = 10_000
# HTTP/2 streams one connection may have open at once (health watches are not
# counted by the per-client limits, so this bounds them per connection).
MAX_STREAMS_PER_CONNECTION = 1_000


def server_options(
    *,
    max_receive_bytes: int,
    idle_s: float,
    age_s: float,
    age_grace_s: float,
) -> tuple[tuple[str, int], ...]:
    """SERVER_OPTIONS with the limits of one server's settings, plus connection hygiene:
    idle connections closed, old ones recycled, dead ones detected, pings enforced."""
    return (
        ("grpc.max_receive_message_length", max_receive_bytes),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        # Keepalive enforcement: a client pinging more often than once a second
        # (with no call) gets strikes, then GOAWAY too_many_pings.
        ("grpc.http2.min_ping_interval_without_data_ms", 1_000),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.keepalive_time_ms", SERVER_KEEPALIVE_MS),
        ("grpc.keepalive_timeout_ms", SERVER_KEEPALIVE_TIMEOUT_MS),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_connection_idle_ms", int(idle_s * 1000)),
        ("grpc.max_connection_age_ms", int(age_s * 1000)),
        ("grpc.max_connection_age_grace_ms", int(age_grace_s * 1000)),
        ("grpc.server_handshake_timeout_ms", HANDSHAKE_TIMEOUT_MS),
        ("grpc.max_concurrent_streams", MAX_STREAMS_PER_CONNECTION),
        ("grpc.so_reuseport", 0),
    )


CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # A dead link (pulled cable: no FIN, no RST) kills the connection, and every
    # call on it, within about 3 s instead of TCP's minutes.
    ("grpc.keepalive_time_ms", 2_000),
    ("grpc.keepalive_timeout_ms", 1_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
)


@dataclass
class RunningServer:
    """A started server, its bound port and its health servicer."""

    server: grpc.aio.Server
    port: int
    health: HealthService
    address: str

    async def set_ready(self, service: str, ready: bool) -> None:
        self.health.set(service, SERVING if ready else NOT_SERVING)

    async def stop(self, work: InFlight, grace_s: float = 10.0) -> None:
        """Turn NOT_SERVING, let the work in flight finish (up to ``grace_s``), then stop.

        Long-lived streams that are not work (health Watch, status watches) are
        cancelled at once rather than holding the shutdown for the whole grace.
        """
        self.health.enter_graceful_shutdown()
        drained = await work.wait_idle(grace_s)
        if not drained:
            log.warning("stopping with %d call(s) still in flight after %.0fs", work.count, grace_s)
        await self.server.stop(0)


async def start_server(
    listen: str,
    register: Callable[[grpc.aio.Server], None],
    service_names: Iterable[str],
    *,
    interceptors: Iterable[grpc.aio.ServerInterceptor] = (),
    credentials: grpc.ServerCredentials | None = None,
    options: Sequence[tuple[str, int]] = SERVER_OPTIONS,
) -> RunningServer:
    """Bind ``listen``, register the services, health and reflection, and start.

    ``""`` (liveness) answers SERVING at once; each named service starts
    NOT_SERVING until its owner declares it ready. With ``credentials`` the
    port serves TLS only.
    """
    host, port = parse_host_port(listen)
    server = grpc.aio.server(options=list(options), interceptors=list(interceptors))
    register(server)
    health_servicer = HealthService()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = list(service_names)
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    bind_host = f"[{host}]" if ":" in host else host
    try:
        if credentials is None:
            bound = server.add_insecure_port(f"{bind_host}:{port}")
        else:
            bound = server.add_secure_port(f"{bind_host}:{port}", credentials)
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {listen}: {exc}") from exc
    if bound == 0:
        raise OSError(f"cannot listen on {listen} (address in use or not on this host)")
    for name in names:
        health_servicer.set(name, NOT_SERVING)
    await server.start()
    return RunningServer(server, bound, health_servicer, f"{host}:{bound}")


# Waiting for a listen address that is not on this host yet (the Thunderbolt
# bridge comes up after launchd starts the worker): retry with this backoff, and
# say so in the log at most this often.
ADDRESS_RETRY_INITIAL_S = 0.25
ADDRESS_RETRY_MAX_S = 5.0
ADDRESS_WAIT_LOG_EVERY_S = 60.0


def _address_missing(host: str, port: int) -> bool:
    """True when binding ``host:port`` fails only because no interface has ``host``
    (EADDRNOTAVAIL); any other outcome is for ``start_server`` to report."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return False
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.errno == errno.EADDRNOTAVAIL
    return False


async def wait_for_listen_address(listen: str) -> None:
    """Return once this host has ``listen``'s address, retrying with backoff and logging
    what it waits for, instead of failing: a worker started at boot before its network
    link is up starts serving when the link comes up."""
    host, port = parse_host_port(listen)
    delay = ADDRESS_RETRY_INITIAL_S
    started = time.monotonic()
    logged_at: float | None = None
    while _address_missing(host, port):
        now = time.monotonic()
        if logged_at is None or now - logged_at >= ADDRESS_WAIT_LOG_EVERY_S:
            log.warning(
                "waiting for address %s to exist on this host before listening on %s "
                "(waited %.0fs; is its network link up?)",
                host,
                listen,
                now - started,
            )
            logged_at = now
        await asyncio.sleep(delay)
        delay = min(delay * 2, ADDRESS_RETRY_MAX_S)
    if logged_at is not None:
        log.info("address %s is up after %.1fs", host, time.monotonic() - started)


async def wait_for_termination_signal() -> None:
    """Return on SIGINT or SIGTERM (Ctrl-C, docker stop, launchd)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
