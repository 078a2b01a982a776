"""A small asyncio client for the gateway (``tandem ask`` and ``tandem status`` use it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from types import TracebackType

import grpc

from tandem.backends.base import ChatTurn
from tandem.conversions import turns_to_proto
from tandem.metadata import REQUEST_ID_KEY, new_request_id
from tandem.serving import CHANNEL_OPTIONS
from tandem.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc


class GatewayClient:
    """``async with GatewayClient("127.0.0.1:50051") as client: ...``"""

    def __init__(self, address: str, *, timeout_s: float = 600.0, wait_for_ready: bool = False) -> None:
        """``wait_for_ready``: queue calls while the gateway is unreachable (until the
        deadline) instead of failing at once with UNAVAILABLE."""
        self.address = address
        self._timeout_s = timeout_s
        self._wait_for_ready = wait_for_ready
        self._channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        self._stub = gateway_pb2_grpc.GatewayServiceStub(self._channel)

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def route(
        self,
        turns: Sequence[ChatTurn],
        options: common_pb2.GenerationOptions | None = None,
        *,
        request_id: str | None = None,
    ) -> AsyncIterator[gateway_pb2.RouteResponse]:
        """Yield the decision, the deltas and the summary. Raises grpc.aio.AioRpcError."""
        request = gateway_pb2.RouteRequest(
            messages=turns_to_proto(turns), options=options or common_pb2.GenerationOptions()
        )
        call = self._stub.Route(
            request,
            timeout=self._timeout_s,
            metadata=((REQUEST_ID_KEY, request_id or new_request_id()),),
            wait_for_ready=self._wait_for_ready,
        )
        try:
            async for response in call:
                yield response
        finally:
            call.cancel()

    async def classify(self, turns: Sequence[ChatTurn]) -> gateway_pb2.Decision:
        response = await self._stub.Classify(
            gateway_pb2.ClassifyRequest(messages=turns_to_proto(turns)),
            timeout=self._timeout_s,
            wait_for_ready=self._wait_for_ready,
        )
        return response.decision

    async def cluster_status(self) -> gateway_pb2.ClusterStatus:
        return await self._stub.GetClusterStatus(
            gateway_pb2.GetClusterStatusRequest(), timeout=min(self._timeout_s, 10.0)
        )

    def watch_cluster_status(self) -> AsyncIterator[gateway_pb2.ClusterStatus]:
        return self._stub.WatchClusterStatus(gateway_pb2.WatchClusterStatusRequest())
