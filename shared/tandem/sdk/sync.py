"""The blocking client: ``with TandemClient(address) as client``.

One gRPC channel underneath, safe to share between threads. Do not call it
from the thread of an asyncio loop that serves something it waits for.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from types import TracebackType
from typing import Any

import grpc

from tandem.sdk import convert
from tandem.sdk.calls import STATUS_TIMEOUT_S, ClientBase
from tandem.sdk.channel import ChannelConfig, sync_channel
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


class TandemClient(ClientBase[grpc.Channel]):
    """The blocking twin of AsyncTandemClient, with the same methods.

    Leaving ``route()`` or ``watch_cluster_status()`` early (``break``, or
    closing the iterator) cancels the call, which stops the generation.
    """

    def _open_channel(
        self, address: str, config: ChannelConfig, credentials: grpc.ChannelCredentials | None
    ) -> grpc.Channel:
        return sync_channel(address, config, credentials)

    def __enter__(self) -> TandemClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def route(
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
    ) -> Generator[RouteEvent, None, None]:
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
                for response in call:
                    if (event := convert.event_from_proto(response)) is not None:
                        yield event
        finally:
            call.cancel()

    def ask(
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
        for event in self.route(
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

    def classify(self, conversation: Conversation, *, timeout_s: float | None = None) -> Decision:
        """Screen and classify without generating anything."""
        with rpc_errors():
            response = self._stub.Classify(
                convert.classify_request(conversation), **self._call_kwargs(timeout_s=timeout_s)
            )
        return convert.decision_from_proto(response.decision)

    def cluster_status(self, *, timeout_s: float | None = None) -> ClusterStatus:
        with rpc_errors():
            status = self._stub.GetClusterStatus(
                gateway_pb2.GetClusterStatusRequest(),
                **self._call_kwargs(timeout_s=timeout_s, cap_s=STATUS_TIMEOUT_S),
            )
        return convert.cluster_status_from_proto(status)

    def watch_cluster_status(self) -> Generator[ClusterStatus, None, None]:
        """The current status, then one on every change and heartbeat, until you stop."""
        call = self._stub.WatchClusterStatus(
            gateway_pb2.WatchClusterStatusRequest(), **self._call_kwargs(deadline=False)
        )
        try:
            with rpc_errors():
                for status in call:
                    yield convert.cluster_status_from_proto(status)
        finally:
            call.cancel()
