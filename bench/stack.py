"""The systems under test, each started as its own process through its real CLI.

- the stand-in: ``python -m bench.standin``;
- a worker: ``tandem worker --listen … --ollama-url <stand-in> --model qwen3-coder-next``
  (or without ``--ollama-url``: the embedded default);
- a gateway: ``tandem gateway --listen … --worker … --ollama-url <stand-in> --model llama3.1:8b``;
- the LiteLLM proxy: ``litellm --config …`` in its own virtual environment.

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import Service, ServiceFailed, free_port, wait_http, wait_ready

WORKER_MODEL = "qwen3-coder-next"
JUDGE_MODEL = "llama3.1:8b"
WORKER_HEALTH = "tandem.v1.WorkerService"
GATEWAY_HEALTH = "tandem.v1.GatewayService"
# Limits that protect a production node from one client would throttle the benchmark,
# whose one load generator is that client. The stand-in, like Ollama with a high
# OLLAMA_NUM_PARALLEL, serves every stream at once, so the worker's admission limit is
# raised to match. Each flag is passed only if the role's --help lists it.
_LOAD_FLAGS: dict[str, tuple[tuple[str, str], ...]] = {
    "worker": (
        ("--max-concurrent-generations", "1024"),
        ("--max-queued-generations", "1024"),
        ("--max-streams-per-client", "0"),
        ("--requests-per-second", "0"),
    ),
    "gateway": (
        ("--max-streams-per-client", "0"),
        ("--requests-per-second", "0"),
    ),
}
_READY_S = 60.0
_EMBEDDED_READY_S = 240.0
_LITELLM_READY_S = 120.0
_HEALTH_POLL_S = 0.2


@dataclass(frozen=True)
class Tools:
    """Where each program lives."""

    repo: Path
    bench_python: str
    tandem_bin: str
    tandem_python: str
    litellm_bin: str | None
    logs: Path

    def bench_env(self) -> dict[str, str]:
        """The bench modules and the generated ``tandem.v1`` code importable anywhere."""
        paths = [str(self.repo), str(self.repo / "shared")]
        if os.environ.get("PYTHONPATH"):
            paths.append(os.environ["PYTHONPATH"])
        return {"PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}


@dataclass
class Running:
    service: Service
    address: str
    health: str = ""

    @property
    def url(self) -> str:
        return f"http://{self.address}"


@dataclass
class Stack:
    """Starts services on free loopback ports; ``close`` stops them all."""

    tools: Tools
    _started: list[Service] = field(default_factory=list)
    _help: dict[str, str] = field(default_factory=dict)

    def _launch(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Service:
        service = Service(
            name, argv, self.tools.logs / f"{name}.log", env or {}, cwd=self.tools.repo
        )
        self._started.append(service.start())
        return service

    def standin(
        self, name: str = "standin", answer_tokens: int = 256, extra: tuple[str, ...] = ()
    ) -> Running:
        address = f"127.0.0.1:{free_port()}"
        service = self._launch(
            name,
            [
                self.tools.bench_python,
                "-m",
                "bench.standin",
                "--host",
                "127.0.0.1",
                "--port",
                address.rsplit(":", 1)[1],
                "--answer-tokens",
                str(answer_tokens),
                *extra,
            ],
            self.tools.bench_env(),
        )
        wait_http(service, f"http://{address}/", _READY_S)
        return Running(service, address)

    def worker(self, name: str, ollama_url: str | None) -> Running:
        model = ["--ollama-url", ollama_url, "--model", WORKER_MODEL] if ollama_url else []
        return self._tandem("worker", name, model, WORKER_HEALTH, embedded=ollama_url is None)

    def restart(self, running: Running) -> Running:
        """Start a stopped (or killed) service again with the same command and port."""
        old = running.service
        old.stop()
        self._started.remove(old)
        service = self._launch(old.name, old.argv, old.env)
        self._wait_serving(service, running.address, running.health, _READY_S)
        return Running(service, running.address, running.health)

    def gateway(
        self, name: str, worker: str, ollama_url: str | None, extra: tuple[str, ...] = ()
    ) -> Running:
        model = ["--ollama-url", ollama_url, "--model", JUDGE_MODEL] if ollama_url else []
        return self._tandem(
            "gateway",
            name,
            ["--worker", worker, *model, *extra],
            GATEWAY_HEALTH,
            embedded=ollama_url is None,
        )

    def _tandem(
        self, role: str, name: str, args: list[str], health: str, *, embedded: bool
    ) -> Running:
        """``tandem ROLE --listen <free port> --node-name NAME ARGS <load flags>``, ready."""
        address = f"127.0.0.1:{free_port()}"
        argv = [
            self.tools.tandem_bin,
            role,
            "--listen",
            address,
            "--node-name",
            name,
            *args,
            *self._load_flags(role),
        ]
        service = self._launch(name, argv)
        self._wait_serving(service, address, health, _EMBEDDED_READY_S if embedded else _READY_S)
        return Running(service, address, health)

    def supports(self, role: str, flag: str) -> bool:
        """Whether ``tandem ROLE --help`` lists ``flag`` (the CLI grows as Tandem does)."""
        if role not in self._help:
            self._help[role] = subprocess.run(  # noqa: S603 - our own binary
                [self.tools.tandem_bin, role, "--help"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            ).stdout
        return flag in self._help[role]

    def litellm(self, ollama_url: str) -> Running | None:
        if not self.tools.litellm_bin or not Path(self.tools.litellm_bin).exists():
            return None
        port = free_port()
        config = self.tools.logs / "litellm.yaml"
        config.write_text(
            "model_list:\n"
            "  - model_name: bench-model\n"
            "    litellm_params:\n"
            f"      model: ollama_chat/{WORKER_MODEL}\n"
            f"      api_base: {ollama_url}\n"
            "litellm_settings:\n"
            "  telemetry: false\n"
        )
        service = self._launch(
            "litellm",
            [
                self.tools.litellm_bin,
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--num_workers",
                "1",
            ],
            _litellm_env(),
        )
        wait_http(service, f"http://127.0.0.1:{port}/health/liveliness", _LITELLM_READY_S)
        return Running(service, f"127.0.0.1:{port}")

    def serving_within(self, running: Running, timeout_s: float) -> bool:
        try:
            self._wait_serving(running.service, running.address, running.health, timeout_s)
        except ServiceFailed:
            return False
        return True

    def wait_serving(self, running: Running, timeout_s: float = _READY_S) -> None:
        self._wait_serving(running.service, running.address, running.health, timeout_s)

    def _wait_serving(self, service: Service, address: str, health: str, timeout_s: float) -> None:
        """Until ``tandem health`` (grpc.health.v1 Check) says SERVING."""

        def serving() -> bool:
            done = subprocess.run(  # noqa: S603 - our own binary
                [
                    self.tools.tandem_bin,
                    "health",
                    "--address",
                    address,
                    "--service",
                    health,
                    "--timeout-s",
                    "2",
                ],
                capture_output=True,
                timeout=60,
                check=False,
            )
            return done.returncode == 0

        wait_ready(service, serving, f"{health} not SERVING", timeout_s, _HEALTH_POLL_S)

    def stop(self, running: Running) -> None:
        running.service.stop()
        if running.service in self._started:
            self._started.remove(running.service)

    def close(self) -> None:
        for service in reversed(self._started):
            service.stop()
        self._started.clear()

    def _load_flags(self, role: str) -> list[str]:
        return [
            arg
            for flag, value in _LOAD_FLAGS[role]
            if self.supports(role, flag)
            for arg in (flag, value)
        ]


def _litellm_env() -> dict[str, str]:
    """LiteLLM stays on this machine: its cost map from the package, and any outside
    HTTP(S) it might attempt sent to a closed loopback port instead."""
    return {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
