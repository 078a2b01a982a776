"""The gateway's workers as one pool: picking one, calling it, failing over.

``WorkerPool.generate(call)`` is the only way a Route reaches a worker: it
picks a serving worker that serves the call's model (the model loaded first,
then the fewest routes in flight), counts the route while it runs, relays the worker's ``Generate``
stream as Route events, moves to another worker when one fails before its
first token, and raises a ``tandem.errors`` fault the client must see
otherwise (after the first token nothing is replayed).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable

import grpc
from grpc_status import rpc_status

from tandem.backends.base import same_model
from tandem.changes import ChangeSignal
from tandem.conversions import model_not_served
from tandem.errors import Reason, RelayedStatus, TandemFault, Unavailable
from tandem.metadata import REQUEST_ID_KEY
from tandem.protoutil import seconds_to_duration
from tandem.v1 import common_pb2, gateway_pb2, worker_pb2
from tandem_gateway.link import ChannelFactory, LinkTiming, WorkerLink, plaintext_channel
from tandem_gateway.routing import WorkerCall

log = logging.getLogger(__name__)

ChangeSink = Callable[[], Awaitable[None]]


class WorkerPool:
    """Every worker link of the gateway, and the routes running on each."""

    def __init__(
        self,
        addresses: Iterable[str],
        on_change: ChangeSink,
        *,
        timing: LinkTiming | None = None,
        channels: ChannelFactory = plaintext_channel,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self._on_change = on_change
        self._connect_timeout_s = connect_timeout_s
        self.changes = ChangeSignal()
        self.links = [
            WorkerLink(address, self._link_changed, timing or LinkTiming(), channels)
            for address in addresses
        ]
        # Routes relayed per worker address right now (only generate() changes it).
        self.routes: collections.Counter[str] = collections.Counter()

    async def _link_changed(self) -> None:
        self.changes.notify()
        await self._on_change()

    @property
    def any_serving(self) -> bool:
        return any(link.serving for link in self.links)

    def start(self) -> None:
        for link in self.links:
            link.start()

    def pick(
        self, exclude: frozenset[str] = frozenset(), model: str | None = None
    ) -> WorkerLink | None:
        """A serving worker that serves ``model`` (None: its default), preferring
        one where it is loaded, then the one with the fewest routes."""
        candidates = [
            w for w in self.links if w.serving and w.address not in exclude and w.serves(model)
        ]
        if not candidates:
            return None
        return min(candidates, key=lambda w: (not w.has_loaded(model), self.routes[w.address]))

    def routable_models(self) -> list[str]:
        """Every model a worker the gateway has heard from serves, defaults first."""
        names: list[str] = []
        for link in self.links:
            names.extend(n for n in link.served_models if not any(same_model(n, m) for m in names))
        return names

    def check_model(self, model: str) -> None:
        """Raise NOT_FOUND when every worker has told the gateway its models and none
        serves ``model``. While a worker is still unheard (just started, or never
        reached) it may serve it: routing then waits for a worker that does, and
        answers UNAVAILABLE if none comes."""
        heard_from_all = all(link.node is not None for link in self.links)
        if heard_from_all and not any(link.serves(model) for link in self.links):
            raise model_not_served(model, self.routable_models(), "any worker")

    async def wait_for_worker(
        self, exclude: frozenset[str], timeout_s: float, model: str | None = None
    ) -> WorkerLink:
        """A serving worker (for ``model``), waiting up to ``timeout_s`` for one to appear;
        NOT_FOUND as soon as every worker has reported its models and none serves it."""
        deadline = time.monotonic() + timeout_s
        while True:
            link = self.pick(exclude, model)
            if link is not None:
                return link
            if model is not None:
                self.check_model(model)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._no_worker(exclude, model)
            await self.changes.wait(remaining)

    def _no_worker(self, exclude: frozenset[str], model: str | None = None) -> Unavailable:
        states = "; ".join(link.describe() for link in self.links)
        tried = f" (already failed: {', '.join(sorted(exclude))})" if exclude else ""
        serving = f" {model}" if model else ""
        names = ",".join(link.address for link in self.links)
        return Unavailable(
            f"no worker is serving{serving}{tried}: {states}", node=names, reason=Reason.NO_WORKER
        )

    async def generate(self, call: WorkerCall) -> AsyncGenerator[gateway_pb2.RouteResponse, None]:
        """One worker's stream as Route events; the next worker if one fails before
        its first token. Raises a TandemFault for a failure the client must see."""
        tried: frozenset[str] = frozenset()
        while True:
            wait_s = min(self._connect_timeout_s, call.remaining_s())
            link = await self.wait_for_worker(tried, wait_s, call.request.model or None)
            tried |= {link.address}
            self.routes[link.address] += 1
            try:
                events = _relay(link, call)
                async with contextlib.aclosing(events):
                    async for event in events:
                        yield event
                return
            except _RetryElsewhere as exc:
                log.warning(
                    "route %s: worker %s failed before the first token: %s; trying another",
                    call.request_id,
                    link.address,
                    exc,
                )
            finally:
                self.routes[link.address] -= 1

    async def close(self) -> None:
        for link in self.links:
            await link.close()


class _RetryElsewhere(Exception):
    """The worker failed before producing anything: another worker may answer."""


async def _relay(
    link: WorkerLink, call: WorkerCall
) -> AsyncGenerator[gateway_pb2.RouteResponse, None]:
    """Relay one worker's Generate stream as Route events."""
    stream = link.stub.Generate(
        call.request,
        timeout=call.remaining_s(),
        metadata=((REQUEST_ID_KEY, call.request_id),),
    )
    first_token_at: float | None = None
    try:
        async for response in stream:
            link.note_stream_message()
            kind = response.WhichOneof("event")
            if kind == "delta":
                if first_token_at is None:
                    first_token_at = time.monotonic()
                yield gateway_pb2.RouteResponse(delta=response.delta)
            elif kind == "tool_call":
                if first_token_at is None:
                    first_token_at = time.monotonic()
                yield gateway_pb2.RouteResponse(tool_call=response.tool_call)
            elif kind == "summary":
                summary = _summary(response.summary, link.address, call.started, first_token_at)
                # Let the worker's call end by itself (its status follows at once)
                # rather than cancelling a generation that already finished.
                await stream.code()
                yield gateway_pb2.RouteResponse(summary=summary)
                return
        raise Unavailable(
            f"worker {link.address} ended its stream without a summary", node=link.address
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNAVAILABLE and first_token_at is None:
            raise _RetryElsewhere(f"{exc.code().name}: {exc.details()}") from exc
        raise _worker_fault(link.address, exc) from exc
    finally:
        # No-op when the call finished; otherwise (our caller cancelled, or we
        # failed) it cancels the worker's generation at once.
        stream.cancel()


def _summary(
    summary: worker_pb2.GenerateSummary,
    worker: str,
    started: float,
    first_token_at: float | None,
) -> gateway_pb2.RouteSummary:
    now = time.monotonic()
    timings = common_pb2.Timings()
    timings.CopyFrom(summary.timings)
    timings.time_to_first_token.CopyFrom(seconds_to_duration((first_token_at or now) - started))
    timings.total.CopyFrom(seconds_to_duration(now - started))
    return gateway_pb2.RouteSummary(
        finish_reason=summary.finish_reason,
        usage=summary.usage,
        timings=timings,
        worker=worker,
        model=summary.model,
    )


def _worker_fault(address: str, exc: grpc.aio.AioRpcError) -> TandemFault:
    """The worker's status, with its rich details, said to come from that worker."""
    message = f"worker {address}: {exc.details()}"
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        return Unavailable(message, node=address, reason=Reason.WORKER_UNAVAILABLE)
    if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        # The worker refused the gateway's own credentials: a deployment fault, not
        # the client's token, so the client must not be told its token is bad.
        return Unavailable(
            f"worker {address} refuses the gateway's credentials ({exc.code().name})",
            node=address,
            reason=Reason.WORKER_REFUSES_GATEWAY,
        )
    try:
        original = rpc_status.from_call(exc)
    except ValueError:
        original = None
    details = tuple(original.details) if original is not None else ()
    return RelayedStatus(exc.code(), message, details)
