"""``tandem.v1.WorkerService``: stream the node model's answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Sequence

import grpc

from tandem.backends import (
    BackendError,
    BackendUnavailable,
    ChatRequest,
    ChatTurn,
    Delta,
    Done,
    SamplingOptions,
    ToolCall,
)
from tandem.backends.base import same_model
from tandem.conversions import (
    finish_reason_to_proto,
    model_not_served,
    options_from_proto,
    request_from_proto,
    tool_call_to_proto,
    turns_from_proto,
    usage_to_proto,
)
from tandem.errors import DeadlineExceeded
from tandem.metadata import request_id_of
from tandem.monitor import BackendMonitor
from tandem.protoutil import seconds_to_duration
from tandem.v1 import common_pb2, worker_pb2, worker_pb2_grpc
from tandem_worker.admission import Admission
from tandem_worker.coalesce import coalesced

log = logging.getLogger(__name__)

# One quick retry when the backend cannot be reached before anything was sent
# (Ollama restarting); never once a token has gone out.
_RETRY_DELAY_S = 0.25


class WorkerService(worker_pb2_grpc.WorkerServiceServicer):
    def __init__(
        self,
        node: BackendMonitor,
        admission: Admission,
        *,
        max_prompt_chars: int,
        max_generation_s: float,
        coalesce_after_s: float = 0.0,
        served_models: Sequence[str] = (),
    ) -> None:
        self._node = node
        # The models a request may name; the backend's own first (the default).
        self.served_models = served_model_list(node.backend.model, served_models)
        self._admission = admission
        self._max_prompt_chars = max_prompt_chars
        self._max_generation_s = max_generation_s
        self._coalesce_after_s = coalesce_after_s

    async def Generate(
        self, request: worker_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncGenerator[worker_pb2.GenerateResponse, None]:
        started = time.monotonic()
        request_id = request_id_of(context)
        turns = turns_from_proto(request.messages, max_chars=self._max_prompt_chars)
        options = options_from_proto(request.options)
        chat = request_from_proto(
            request.tools, request.tool_choice, request.response_format, request.model
        )
        served = self.served_models
        if chat.model is not None and not any(same_model(m, chat.model) for m in served):
            raise model_not_served(chat.model, served, self._node.name)
        remaining = context.time_remaining()
        budget = (
            self._max_generation_s if remaining is None else min(remaining, self._max_generation_s)
        )
        node = self._node
        log.info("generate %s: %d messages", request_id, len(turns))
        relay = _Relay(node, started)
        try:
            with node.calls.track():
                async with asyncio.timeout(budget), self._admission.slot(request.priority):
                    events = relay.run(turns, options, chat)
                    if self._coalesce_after_s > 0:
                        events = coalesced(events, behind_after_s=self._coalesce_after_s)
                    async with contextlib.aclosing(events):
                        async for response in events:
                            yield response
        except TimeoutError:
            where = "generating" if relay.started else "waiting for a free slot"
            raise DeadlineExceeded(f"deadline of {budget:.1f}s passed while {where}") from None
        except BackendError as exc:
            log.warning("generate %s failed: %s", request_id, exc.message)
            raise

    async def GetNodeStatus(
        self, request: worker_pb2.GetNodeStatusRequest, context: grpc.aio.ServicerContext
    ) -> worker_pb2.NodeStatus:
        await self._node.refresh()
        status = self._node.status(queued=self._admission.queued)
        status.generations_in_flight = self._admission.running
        status.served_models.extend(self.served_models)
        return status


def served_model_list(own: str, configured: Sequence[str]) -> list[str]:
    """The backend's own model first, then the configured ones not already listed."""
    served = [own]
    for name in configured:
        if not any(same_model(name, known) for known in served):
            served.append(name)
    return served


class _Relay:
    """Runs one generation on the backend and turns its events into responses."""

    def __init__(self, node: BackendMonitor, started: float) -> None:
        self._node = node
        self._started = started
        self.started = False
        self.first_token_at: float | None = None
        self._model = node.backend.model

    async def run(
        self, turns: Sequence[ChatTurn], options: SamplingOptions, chat: ChatRequest
    ) -> AsyncGenerator[worker_pb2.GenerateResponse, None]:
        self.started = True
        self._model = chat.model or self._node.backend.model
        for attempt in (1, 2):
            events = self._node.backend.chat_stream(turns, options, chat)
            try:
                async with contextlib.aclosing(events):
                    async for event in events:
                        if isinstance(event, Delta):
                            if self.first_token_at is None:
                                self.first_token_at = time.monotonic()
                            yield worker_pb2.GenerateResponse(
                                delta=common_pb2.TextDelta(text=event.text, tokens=1)
                            )
                        elif isinstance(event, ToolCall):
                            if self.first_token_at is None:
                                self.first_token_at = time.monotonic()
                            yield worker_pb2.GenerateResponse(tool_call=tool_call_to_proto(event))
                        elif isinstance(event, Done):
                            self._node.note_generation_succeeded()
                            yield worker_pb2.GenerateResponse(summary=self._summary(event))
                return
            except BackendUnavailable as exc:
                if attempt == 2 or self.first_token_at is not None:
                    raise
                log.info(
                    "%s: %s; retrying once before the first token", self._node.name, exc.message
                )
                await asyncio.sleep(_RETRY_DELAY_S)

    def _summary(self, done: Done) -> worker_pb2.GenerateSummary:
        now = time.monotonic()
        return worker_pb2.GenerateSummary(
            finish_reason=finish_reason_to_proto(done),
            usage=usage_to_proto(done),
            timings=common_pb2.Timings(
                time_to_first_token=seconds_to_duration(
                    (self.first_token_at or now) - self._started
                ),
                total=seconds_to_duration(now - self._started),
                load=seconds_to_duration(done.load_s),
                prompt_eval=seconds_to_duration(done.prompt_eval_s),
                eval=seconds_to_duration(done.eval_s),
            ),
            model=self._model,
            node=self._node.name,
        )
