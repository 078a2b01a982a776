"""After a run, ask each Tandem service whether it still serves (grpc.health.v1 Check).

The load generator does this (it has gRPC loaded anyway), so the orchestrator
learns of a service that stopped serving during a run without loading gRPC.
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

_TIMEOUT_S = 3.0


def parse_target(text: str) -> tuple[str, str, str]:
    """``NAME=HOST:PORT=SERVICE`` → its three parts."""
    name, address, service = text.split("=", 2)
    return name, address, service


async def health_of(targets: list[str]) -> dict[str, str]:
    statuses: dict[str, str] = {}
    for text in targets:
        name, address, service = parse_target(text)
        async with grpc.aio.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                reply = await stub.Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=_TIMEOUT_S
                )
            except grpc.aio.AioRpcError as exc:
                statuses[name] = f"UNREACHABLE ({exc.code().name})"
                continue
            statuses[name] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return statuses
