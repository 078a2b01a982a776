"""The fixed contract: package, services, methods and enum zero values."""

from __future__ import annotations

import importlib

from google.protobuf import descriptor

from tandem.v1 import common_pb2, gateway_pb2, worker_pb2


def test_generated_code_is_a_normal_package() -> None:
    module = importlib.import_module("tandem.v1.gateway_pb2_grpc")
    assert module.GatewayServiceStub.__module__ == "tandem.v1.gateway_pb2_grpc"
    assert gateway_pb2.DESCRIPTOR.package == "tandem.v1"


def _methods(service: descriptor.ServiceDescriptor) -> dict[str, tuple[str, str, bool]]:
    return {
        m.name: (m.input_type.name, m.output_type.name, m.server_streaming) for m in service.methods
    }


def test_gateway_service_methods() -> None:
    service = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"]
    assert service.full_name == "tandem.v1.GatewayService"
    assert _methods(service) == {
        "Route": ("RouteRequest", "RouteResponse", True),
        "Classify": ("ClassifyRequest", "ClassifyResponse", False),
        "GetClusterStatus": ("GetClusterStatusRequest", "ClusterStatus", False),
        "WatchClusterStatus": ("WatchClusterStatusRequest", "ClusterStatus", True),
    }


def test_worker_service_methods() -> None:
    service = worker_pb2.DESCRIPTOR.services_by_name["WorkerService"]
    assert service.full_name == "tandem.v1.WorkerService"
    assert _methods(service) == {
        "Generate": ("GenerateRequest", "GenerateResponse", True),
        "GetNodeStatus": ("GetNodeStatusRequest", "NodeStatus", False),
    }


def test_every_enum_starts_with_unspecified() -> None:
    for module in (common_pb2, gateway_pb2, worker_pb2):
        for enum in module.DESCRIPTOR.enum_types_by_name.values():
            zero = enum.values_by_number[0].name
            assert zero.endswith("_UNSPECIFIED"), f"{enum.name} zero value is {zero}"


def test_route_response_is_a_oneof_of_decision_delta_summary_tool_call() -> None:
    oneof = gateway_pb2.RouteResponse.DESCRIPTOR.oneofs_by_name["event"]
    # Additive only: the first three keep their numbers, tool calls came later.
    assert [(f.name, f.number) for f in oneof.fields] == [
        ("decision", 1),
        ("delta", 2),
        ("summary", 3),
        ("tool_call", 4),
    ]
    assert [v.name for v in common_pb2.Role.DESCRIPTOR.values] == [
        "ROLE_UNSPECIFIED",
        "ROLE_SYSTEM",
        "ROLE_USER",
        "ROLE_ASSISTANT",
        "ROLE_TOOL",
    ]
    assert [v.name for v in gateway_pb2.ThreatCategory.DESCRIPTOR.values] == [
        "THREAT_CATEGORY_UNSPECIFIED",
        "THREAT_CATEGORY_PROMPT_INJECTION",
        "THREAT_CATEGORY_JAILBREAK",
        "THREAT_CATEGORY_HARMFUL",
        "THREAT_CATEGORY_MALICIOUS_CODE",
        "THREAT_CATEGORY_EXFILTRATION",
    ]
