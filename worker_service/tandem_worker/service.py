"""``tandem.v1.WorkerService``: stream the node model's answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import grpc

from tandem.backends import BackendError, Delta, Done
from tandem.conversions import (
    finish_reason_to_proto,
    options_from_proto,
    seconds_to_duration,
    turns_from_proto,
    usage_to_proto,
)
from tandem.metadata import request_id_of
from tandem.status import RichStatusError, abort, deadline_exceeded, from_backend_error
from tandem.v1 import common_pb2, worker_pb2, worker_pb2_grpc
from tandem.monitor import BackendMonitor

log = logging.getLogger(__name__)


class WorkerService(worker_pb2_grpc.WorkerServiceServicer):
    def __init__(self, node: BackendMonitor, *, max_prompt_chars: int, max_generation_s: float) -> None:
        self._node = node
        self._max_prompt_chars = max_prompt_chars
        self._max_generation_s = max_generation_s

    async def Generate(
        self, request: worker_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[worker_pb2.GenerateResponse]:
        started = time.monotonic()
        request_id = request_id_of(context)
        try:
            turns = turns_from_proto(request.messages, max_chars=self._max_prompt_chars)
            options = options_from_proto(request.options)
        except RichStatusError as exc:
            await abort(context, exc.status)
        remaining = context.time_remaining()
        budget = self._max_generation_s if remaining is None else min(remaining, self._max_generation_s)
        first_token_at: float | None = None
        node = self._node
        log.info("generate %s: %d messages", request_id, len(turns))
        try:
            with node.calls.track():
                events = node.backend.chat_stream(turns, options)
                async with asyncio.timeout(budget), contextlib.aclosing(events):
                    async for event in events:
                        if isinstance(event, Delta):
                            if first_token_at is None:
                                first_token_at = time.monotonic()
                            yield worker_pb2.GenerateResponse(
                                delta=common_pb2.TextDelta(text=event.text)
                            )
                        elif isinstance(event, Done):
                            yield worker_pb2.GenerateResponse(
                                summary=_summary(event, node, started, first_token_at)
                            )
        except TimeoutError:
            await abort(
                context,
                deadline_exceeded(
                    f"{node.name}: generation did not finish within {budget:.1f}s"
                ),
            )
        except BackendError as exc:
            log.warning("generate %s failed: %s", request_id, exc.message)
            await abort(context, from_backend_error(exc, node.name))

    async def GetNodeStatus(
        self, request: worker_pb2.GetNodeStatusRequest, context: grpc.aio.ServicerContext
    ) -> worker_pb2.NodeStatus:
        await self._node.refresh()
        return self._node.status()


def _summary(
    done: Done, node: BackendMonitor, started: float, first_token_at: float | None
) -> worker_pb2.GenerateSummary:
    now = time.monotonic()
    return worker_pb2.GenerateSummary(
        finish_reason=finish_reason_to_proto(done),
        usage=usage_to_proto(done),
        timings=common_pb2.Timings(
            time_to_first_token=seconds_to_duration((first_token_at or now) - started),
            total=seconds_to_duration(now - started),
            load=seconds_to_duration(done.load_s),
            prompt_eval=seconds_to_duration(done.prompt_eval_s),
            eval=seconds_to_duration(done.eval_s),
        ),
        model=node.backend.model,
        node=node.name,
    )
