"""The raw-protobuf gateway client ``tandem status`` uses; new code uses ``tandem.sdk``.

``GatewayClient`` returns ``tandem.v1`` messages and raises
``grpc.aio.AioRpcError``; ``tandem.sdk.AsyncTandemClient`` is the typed client
(typed events and status, ``TandemError`` exceptions) on the same channel
setup. Kept only until ``tandem status`` moves to the SDK.
"""

from __future__ import annotations

from tandem.sdk.aio import AsyncClientBase
from tandem.sdk.calls import STATUS_TIMEOUT_S
from tandem.v1 import gateway_pb2


class GatewayClient(AsyncClientBase):
    """``async with GatewayClient("127.0.0.1:50051") as client: ...``"""

    async def cluster_status(self) -> gateway_pb2.ClusterStatus:
        return await self._stub.GetClusterStatus(
            gateway_pb2.GetClusterStatusRequest(), **self._call_kwargs(cap_s=STATUS_TIMEOUT_S)
        )
