"""``tandem health``: exit 0 when a service answers SERVING, 1 otherwise.

For shells and container healthchecks; Kubernetes can use its native gRPC
probe against the same service names instead.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tandem.sdk.channel import ChannelConfig, async_channel


async def check_health(
    address: str, service: str, timeout_s: float, credentials: grpc.ChannelCredentials | None = None
) -> int:
    async with async_channel(address, ChannelConfig(), credentials) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            print(
                f"{address} {service or '(liveness)'}: {exc.code().name}: {exc.details()}",
                file=sys.stderr,
            )
            return 1
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{address} {service or '(liveness)'}: {name}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1
