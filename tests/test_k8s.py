"""deploy/k8s/: valid against the Kubernetes JSON schemas (offline, kubernetes-validate),
a Deployment and Service per role, native gRPC probes naming the services, Secrets for
certificates and tokens, several workers behind the gateway, and TANDEM_* settings and
commands that exist."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tandem.cli.main import build_parser
from tandem.settings import ClientSettings, GatewaySettings, OpenAISettings, WorkerSettings

K8S = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
KUBERNETES_VERSION = "1.37.0"
SETTINGS = {
    "TANDEM_GATEWAY_": GatewaySettings,
    "TANDEM_WORKER_": WorkerSettings,
    "TANDEM_CLIENT_": ClientSettings,
    "TANDEM_OPENAI_": OpenAISettings,
}
SERVICE_OF_ROLE = {"gateway": "tandem.v1.GatewayService", "worker": "tandem.v1.WorkerService"}


def _documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append((path.name, document))
    return found


DOCUMENTS = _documents()


def _of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in DOCUMENTS if d["kind"] == kind}


@pytest.mark.parametrize(
    ("source", "document"),
    DOCUMENTS,
    ids=[f"{s}:{d['kind']}/{d['metadata']['name']}" for s, d in DOCUMENTS],
)
def test_every_manifest_is_valid_against_the_kubernetes_schema(
    source: str, document: dict[str, Any]
) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_a_broken_manifest_is_refused() -> None:
    deployment = yaml.safe_load((K8S / "gateway.yaml").read_text().split("---")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["grpc"]["port"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def _role(document: dict[str, Any]) -> str:
    return str(document["metadata"]["labels"]["app.kubernetes.io/component"])


def _tandem_container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["image"].startswith("tandem"))


def test_a_deployment_and_a_service_per_role_and_several_workers() -> None:
    deployments, services = _of_kind("Deployment"), _of_kind("Service")
    by_role: dict[str, list[str]] = defaultdict(list)
    for name, deployment in deployments.items():
        by_role[_role(deployment)].append(name)
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert name in services, f"{name} has no Service"
        assert services[name]["spec"]["selector"] == selector
    assert len(by_role["gateway"]) == 1 and len(by_role["worker"]) >= 2
    gateway_env = _env(_tandem_container(deployments["tandem-gateway"]))
    workers = gateway_env["TANDEM_GATEWAY_WORKERS"].split(",")
    assert sorted(w.split(":")[0] for w in workers) == sorted(by_role["worker"])


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def test_probes_are_native_grpc_with_the_service_names() -> None:
    for name, deployment in _of_kind("Deployment").items():
        container = _tandem_container(deployment)
        port = container["ports"][0]["containerPort"]
        readiness = container["readinessProbe"]["grpc"]
        assert readiness == {
            "port": port,
            "service": SERVICE_OF_ROLE[_role(deployment)],
            "mode": "TLS",
        }, name
        assert container["livenessProbe"]["grpc"]["port"] == port


def test_settings_and_commands_exist_and_secrets_hold_every_mounted_key() -> None:
    secrets = {name: set(doc["stringData"]) for name, doc in _of_kind("Secret").items()}
    parser = build_parser()
    for name, deployment in _of_kind("Deployment").items():
        container = _tandem_container(deployment)
        assert parser.parse_args(container["args"]).command == _role(deployment)
        for variable in _env(container):
            prefix = next(p for p in SETTINGS if variable.startswith(p))
            field = variable.removeprefix(prefix).lower()
            assert field in SETTINGS[prefix].model_fields, f"{name}: unknown setting {variable}"
        for env in container["env"]:
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in secrets[ref["name"]], env
        for volume in deployment["spec"]["template"]["spec"]["volumes"]:
            if "secret" in volume:
                keys = {item["key"] for item in volume["secret"]["items"]}
                assert keys <= secrets[volume["secret"]["secretName"]], volume
        mounted = {f"{m['mountPath']}/" for m in container["volumeMounts"]}
        for value in _env(container).values():
            if value.startswith("/etc/tandem/"):
                assert any(value.startswith(m) for m in mounted), value
