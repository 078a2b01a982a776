"""One worker as the gateway sees it: its channel, watched over gRPC health.

Each worker's health is followed with the standard ``Health/Watch`` stream, so
the gateway learns of a worker turning ready, not ready, or unreachable as it
happens, not on a polling tick. Choosing a worker and calling it is the
pool's job (``tandem_gateway.pool``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tandem.backends.base import same_model
from tandem.protoutil import timestamp
from tandem.services import WORKER_SERVICE
from tandem.serving import CHANNEL_OPTIONS
from tandem.v1 import gateway_pb2, worker_pb2, worker_pb2_grpc

log = logging.getLogger(__name__)

_WATCH_RETRY_S = 0.5
_STATUS_TIMEOUT_S = 3.0
_NODE_REFRESH_EVERY = 10  # link probes between two GetNodeStatus refreshes

ChangeSink = Callable[[], Awaitable[None]]
# Opens the channel to one worker address (plaintext by default; see
# tandem.security.client.worker_channels for TLS and the gateway's token).
ChannelFactory = Callable[[str], grpc.aio.Channel]
_CREDENTIAL_CODES = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


def plaintext_channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)


def _connection_recycled(exc: grpc.aio.AioRpcError) -> bool:
    """The worker closed an old connection on purpose (max connection age): the
    worker is fine, only the stream must be opened again, at once."""
    details = exc.details() or ""
    return exc.code() == grpc.StatusCode.UNAVAILABLE and "max connection age" in details


@dataclass(frozen=True, slots=True)
class LinkTiming:
    """How the gateway checks a link: a health Check every ``probe_interval_s``,
    failing after ``timeout_s`` (a pulled cable sends no FIN and no RST)."""

    probe_interval_s: float = 0.5
    timeout_s: float = 1.0


class WorkerLink:
    """One worker as the gateway sees it.

    Two loops feed its state: the health ``Watch`` stream reports the worker's
    own readiness changes the moment they happen, and a health ``Check`` every
    probe interval measures the link's round trip and notices a dead link
    (no FIN, no RST) within one timeout.

    A check that times out while the worker's relayed streams kept delivering
    (``note_stream_message``: a message arrived after the check was sent) means a
    busy worker, not a dead link: its event loop answers the check behind the
    tokens it is streaming. The link then stays as it was (the failure is counted), rather
    than turning every new request away from a worker that is serving. A dead
    link delivers nothing, so the next check marks it unreachable: with streams
    in flight at the cut, within two timeouts instead of one.
    """

    def __init__(
        self,
        address: str,
        on_change: ChangeSink,
        timing: LinkTiming,
        channels: ChannelFactory = plaintext_channel,
    ) -> None:
        self.address = address
        self.channel = channels(address)
        self.stub = worker_pb2_grpc.WorkerServiceStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)
        self._on_change = on_change
        self._timing = timing
        self.state: gateway_pb2.WorkerState = gateway_pb2.WORKER_STATE_UNREACHABLE
        self.error = "not contacted yet"
        self.last_seen: datetime | None = None
        self.rtt_s: float | None = None
        self.consecutive_failures = 0
        self._last_message_at = float("-inf")  # time.monotonic() of the newest relayed message
        self.node: worker_pb2.NodeStatus | None = None
        # Set when the worker refuses the gateway's token or certificate: the
        # link then counts as NOT_SERVING, with this as the reason.
        self.credentials_error = ""
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def serving(self) -> bool:
        return self.state == gateway_pb2.WORKER_STATE_SERVING

    @property
    def served_models(self) -> list[str]:
        """The models it advertised (an older worker: just its own model)."""
        if self.node is None:
            return []
        return list(self.node.served_models) or ([self.node.model] if self.node.model else [])

    def serves(self, model: str | None) -> bool:
        return model is None or any(same_model(name, model) for name in self.served_models)

    def has_loaded(self, model: str | None) -> bool:
        if self.node is None:
            return False
        if model is None:
            return self.node.model_loaded
        return any(same_model(loaded.name, model) for loaded in self.node.loaded_models)

    def note_stream_message(self) -> None:
        """A message of a relayed stream arrived from this worker (called per message:
        one clock read)."""
        self._last_message_at = time.monotonic()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._watch(), name=f"watch-{self.address}"),
            asyncio.create_task(self._probe(), name=f"probe-{self.address}"),
        ]

    async def _watch(self) -> None:
        while True:
            try:
                call = self._health.Watch(health_pb2.HealthCheckRequest(service=WORKER_SERVICE))
                async for response in call:
                    await self._heard(response.status)
                await self._lost("health stream ended")
            except grpc.aio.AioRpcError as exc:
                if _connection_recycled(exc):
                    continue
                await self._lost(f"{exc.code().name}: {exc.details()}")
            await asyncio.sleep(_WATCH_RETRY_S)

    async def _probe(self) -> None:
        request = health_pb2.HealthCheckRequest(service=WORKER_SERVICE)
        probes = 0
        while True:
            started = time.monotonic()
            try:
                reply = await self._health.Check(request, timeout=self._timing.timeout_s)
            except grpc.aio.AioRpcError as exc:
                self.consecutive_failures += 1
                self.rtt_s = None
                if self._busy(exc, started):
                    log.info(
                        "worker %s: health check slower than %.1f s while its streams deliver: "
                        "busy, not unreachable",
                        self.address,
                        self._timing.timeout_s,
                    )
                else:
                    await self._lost(f"health check failed: {exc.code().name}: {exc.details()}")
            else:
                self.rtt_s = time.monotonic() - started
                self.consecutive_failures = 0
                probes += 1
                if probes % _NODE_REFRESH_EVERY == 0:
                    await self._refresh_node()
                await self._heard(reply.status)
            await asyncio.sleep(
                max(0.0, self._timing.probe_interval_s - (time.monotonic() - started))
            )

    def _busy(self, exc: grpc.aio.AioRpcError, check_sent: float) -> bool:
        return (
            exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            and self.state != gateway_pb2.WORKER_STATE_UNREACHABLE
            and self._last_message_at >= check_sent
        )

    async def _heard(self, status: int) -> None:
        self.last_seen = datetime.now(UTC)
        serving = status == health_pb2.HealthCheckResponse.SERVING
        state = (
            gateway_pb2.WORKER_STATE_SERVING if serving else gateway_pb2.WORKER_STATE_NOT_SERVING
        )
        if state != self.state:
            await self._refresh_node()
        if serving and self.credentials_error:
            await self._set(gateway_pb2.WORKER_STATE_NOT_SERVING, self.credentials_error)
            return
        error = ""
        if not serving:
            error = (
                self.node.error if self.node and self.node.error else "worker reports NOT_SERVING"
            )
        await self._set(state, error)

    async def _lost(self, why: str) -> None:
        await self._set(gateway_pb2.WORKER_STATE_UNREACHABLE, why)

    async def _refresh_node(self) -> None:
        try:
            self.node = await self.stub.GetNodeStatus(
                worker_pb2.GetNodeStatusRequest(), timeout=_STATUS_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            log.debug("worker %s: GetNodeStatus failed: %s", self.address, exc.code().name)
            if exc.code() in _CREDENTIAL_CODES:
                self.credentials_error = "the worker refuses the gateway's credentials: " + (
                    f"{exc.code().name}: {exc.details()}"
                )
        else:
            self.credentials_error = ""

    async def _set(self, state: gateway_pb2.WorkerState, error: str) -> None:
        changed = state != self.state
        self.state, self.error = state, error
        if not changed:
            return
        log.log(
            logging.INFO if state == gateway_pb2.WORKER_STATE_SERVING else logging.WARNING,
            "worker %s: %s %s",
            self.address,
            gateway_pb2.WorkerState.Name(state),
            error,
        )
        await self._on_change()

    def describe(self) -> str:
        return f"{self.address} ({gateway_pb2.WorkerState.Name(self.state)}: {self.error or 'ok'})"

    def to_proto(self) -> gateway_pb2.WorkerStatus:
        status = gateway_pb2.WorkerStatus(
            address=self.address,
            state=self.state,
            error=self.error,
            consecutive_failures=self.consecutive_failures,
        )
        if self.node is not None and self.state != gateway_pb2.WORKER_STATE_UNREACHABLE:
            status.node.CopyFrom(self.node)
        if self.last_seen is not None:
            status.last_seen.CopyFrom(timestamp(self.last_seen))
        if self.rtt_s is not None:
            status.link_rtt.FromNanoseconds(int(self.rtt_s * 1e9))
        return status

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.channel.close()
