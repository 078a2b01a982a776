"""The asyncio client: ``async with AsyncTandemClient(address) as client``."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from types import TracebackType
from typing import Any, Self

import grpc

from tandem.sdk import convert
from tandem.sdk.calls import STATUS_TIMEOUT_S, ClientBase
from tandem.sdk.channel import ChannelConfig, async_channel
from tandem.sdk.errors import rpc_errors
from tandem.sdk.models import (
    Answer,
    ClusterStatus,
    Conversation,
    Decision,
    RouteEvent,
    SamplingOptions,
    ToolDefinition,
)
from tandem.sdk.tools import FormatSpec, ToolChoiceSpec, chat_request
from tandem.v1 import gateway_pb2


class AsyncClientBase(ClientBase[grpc.aio.Channel]):
    """An asyncio channel, closed by ``close()`` or at the end of ``async with``."""

    def _open_channel(
        self, address: str, config: ChannelConfig, credentials: grpc.ChannelCredentials | None
    ) -> grpc.aio.Channel:
        return async_channel(address, config, credentials)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()


class AsyncTandemClient(AsyncClientBase):
    """A gateway client for asyncio code (constructor arguments: see ClientBase).

    Failures raise ``TandemError`` subclasses. Cancelling the awaiting task, or
    leaving ``route()`` early, cancels the call, which stops the generation.
    """

    async def route(
        self,
        conversation: Conversation,
        options: SamplingOptions | None = None,
        *,
        tools: Sequence[ToolDefinition | Callable[..., Any]] = (),
        tool_choice: ToolChoiceSpec = None,
        response_format: FormatSpec = None,
        model: str | None = None,
        timeout_s: float | None = None,
        request_id: str | None = None,
    ) -> AsyncGenerator[RouteEvent, None]:
        """Yield the Decision, then Text pieces and ToolCall events as they
        arrive, then the Summary.

        ``tools`` are ToolDefinition values or plain typed functions;
        ``tool_choice`` "auto", "none", "required" or a function name;
        ``response_format`` "json", a JSON schema, a pydantic model class or a
        ResponseFormat; ``model`` a model the cluster serves (default: its own).
        """
        request = chat_request(tools, tool_choice, response_format, model)
        call = self._stub.Route(
            convert.route_request(conversation, options, request),
            **self._call_kwargs(timeout_s=timeout_s, request_id=request_id),
        )
        try:
            with rpc_errors():
                async for response in call:
                    if (event := convert.event_from_proto(response)) is not None:
                        yield event
        finally:
            call.cancel()  # a no-op once finished; otherwise it stops the generation

    async def ask(
        self,
        conversation: Conversation,
        options: SamplingOptions | None = None,
        *,
        tools: Sequence[ToolDefinition | Callable[..., Any]] = (),
        tool_choice: ToolChoiceSpec = None,
        response_format: FormatSpec = None,
        model: str | None = None,
        timeout_s: float | None = None,
        request_id: str | None = None,
    ) -> Answer:
        """The whole answer (``answer.tool_calls`` holds the calls the model made).
        A refusal is returned, not raised: see ``answer.refused``."""
        builder = convert.AnswerBuilder()
        async for event in self.route(
            conversation,
            options,
            tools=tools,
            tool_choice=tool_choice,
            response_format=response_format,
            model=model,
            timeout_s=timeout_s,
            request_id=request_id,
        ):
            builder.add(event)
        return builder.build()

    async def classify(
        self, conversation: Conversation, *, timeout_s: float | None = None
    ) -> Decision:
        """Screen and classify without generating anything."""
        with rpc_errors():
            response = await self._stub.Classify(
                convert.classify_request(conversation), **self._call_kwargs(timeout_s=timeout_s)
            )
        return convert.decision_from_proto(response.decision)

    async def cluster_status(self, *, timeout_s: float | None = None) -> ClusterStatus:
        with rpc_errors():
            status = await self._stub.GetClusterStatus(
                gateway_pb2.GetClusterStatusRequest(),
                **self._call_kwargs(timeout_s=timeout_s, cap_s=STATUS_TIMEOUT_S),
            )
        return convert.cluster_status_from_proto(status)

    async def watch_cluster_status(self) -> AsyncGenerator[ClusterStatus, None]:
        """The current status, then one on every change and heartbeat, until you stop."""
        call = self._stub.WatchClusterStatus(
            gateway_pb2.WatchClusterStatusRequest(), **self._call_kwargs(deadline=False)
        )
        try:
            with rpc_errors():
                async for status in call:
                    yield convert.cluster_status_from_proto(status)
        finally:
            call.cancel()
