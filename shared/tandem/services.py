"""The gRPC service names Tandem serves and checks, taken from the descriptors.

One home for them: health readiness names, token scopes, reflection and the
SDK's retry policy all refer to these.
"""

from __future__ import annotations

from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection

from tandem.v1 import gateway_pb2, worker_pb2

GATEWAY_SERVICE: str = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name
WORKER_SERVICE: str = worker_pb2.DESCRIPTOR.services_by_name["WorkerService"].full_name
HEALTH_SERVICE: str = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
# grpcurl and other clients ask either version of reflection.
REFLECTION_SERVICES: tuple[str, ...] = (
    reflection.SERVICE_NAME,
    reflection.SERVICE_NAME.replace(".v1alpha.", ".v1."),
)
