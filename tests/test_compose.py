"""docker-compose.yml describes the two-node topology, and every command in it parses.

No Docker engine runs here, so the file is checked structurally and each
service's command is parsed by the real ``tandem`` argument parser and
turned into the real settings object.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tandem.cli.main import build_parser
from tandem.cli.options import settings_from_args
from tandem.settings import GatewaySettings, WorkerSettings

COMPOSE = Path(__file__).resolve().parents[1] / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_topology_has_each_node_with_its_own_ollama(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"gateway", "worker", "ollama-gateway", "ollama-worker"}
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        assert "healthcheck" in service, name
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    for volume in ("ollama-gateway", "ollama-worker"):
        assert volume in compose["volumes"]


def test_role_commands_parse_into_settings(compose: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in [v for v in __import__("os").environ if v.startswith("TANDEM_")]:
        monkeypatch.delenv(variable)
    parser = build_parser()
    worker_args = parser.parse_args(compose["services"]["worker"]["command"])
    worker = settings_from_args(WorkerSettings, worker_args, None)
    gateway_args = parser.parse_args(compose["services"]["gateway"]["command"])
    gateway = settings_from_args(GatewaySettings, gateway_args, None)
    assert worker.ollama_url == "http://ollama-worker:11434"
    assert worker.model == "qwen3-coder-next" and worker.keep_alive == "2h"
    assert gateway.workers == ["worker:50052"]
    assert gateway.ollama_url == "http://ollama-gateway:11434"
    assert gateway.model == "llama3.1:8b" and gateway.keep_alive == "-1"
    assert gateway.enforce_judge


def test_healthchecks_use_the_health_command_with_service_names(compose: dict) -> None:
    parser = build_parser()
    for role, service_name in (
        ("gateway", "tandem.v1.GatewayService"),
        ("worker", "tandem.v1.WorkerService"),
    ):
        test = compose["services"][role]["healthcheck"]["test"]
        assert test[:2] == ["CMD", "tandem"]
        args = parser.parse_args(test[2:])
        assert args.command == "health" and args.service == service_name


# Ollama 0.15.5 added the qwen3-next architecture that qwen3-coder-next is.
FIRST_OLLAMA_WITH_QWEN3_NEXT = (0, 15, 5)


def test_ollama_images_are_new_enough_and_match_the_nodes(
    compose: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in [v for v in __import__("os").environ if v.startswith("TANDEM_")]:
        monkeypatch.delenv(variable)
    for name in ("ollama-gateway", "ollama-worker"):
        image = compose["services"][name]["image"]
        repository, _, tag = image.partition(":")
        assert repository == "ollama/ollama"
        assert tuple(int(part) for part in tag.split(".")) >= FIRST_OLLAMA_WITH_QWEN3_NEXT, image
    worker_args = build_parser().parse_args(compose["services"]["worker"]["command"])
    worker = settings_from_args(WorkerSettings, worker_args, None)
    ollama = compose["services"]["ollama-worker"]["environment"]
    assert int(ollama["OLLAMA_CONTEXT_LENGTH"]) == worker.num_ctx
    assert int(ollama["OLLAMA_NUM_PARALLEL"]) == worker.max_concurrent_generations


def test_the_image_gets_no_host_build_products_and_says_docker_on_a_mac_has_no_gpu() -> None:
    ignored = (COMPOSE.parent / ".dockerignore").read_text().splitlines()
    for path in (".venv/", ".wheels/", "bench/.venv-bench/", "bench/.venv-litellm/"):
        assert path in ignored, path
    assert "Docker on a Mac has NO GPU" in COMPOSE.read_text()
