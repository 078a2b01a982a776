"""The backend interface and the plain types that cross it."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, TypeAlias

RoleName = Literal["system", "user", "assistant", "tool"]
FinishName = Literal["stop", "length", "tool_calls"]
ToolChoiceMode = Literal["auto", "none", "required", "function"]
ResponseFormatName = Literal["text", "json", "json_schema"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call of a tool by the model: whole, with its arguments as a JSON object."""

    id: str
    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """A function the model may call; ``parameters`` is a JSON-schema object schema."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """Whether the model may, must or must not call tools, or which one it must call.

    ``mode`` "function" means: call ``function`` (a ToolDefinition name).
    """

    mode: ToolChoiceMode = "auto"
    function: str = ""

    @classmethod
    def named(cls, function: str) -> ToolChoice:
        return cls("function", function)

    @property
    def forces_a_call(self) -> bool:
        return self.mode in ("required", "function")


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """The shape of the answer: free text, any JSON, or JSON matching ``schema``."""

    type: ResponseFormatName = "text"
    schema: Mapping[str, Any] | None = None
    name: str = ""

    @classmethod
    def json(cls) -> ResponseFormat:
        return cls("json")

    @classmethod
    def json_schema(cls, schema: Mapping[str, Any], name: str = "") -> ResponseFormat:
        return cls("json_schema", schema, name)


@dataclass(frozen=True, slots=True)
class ChatTurn:
    role: RoleName
    content: str
    # role "assistant": the tools it called; role "tool": the call it answers.
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    tool_name: str = ""


@dataclass(frozen=True, slots=True)
class SamplingOptions:
    max_tokens: int | None = None
    temperature: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    top_p: float | None = None


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of generated text."""

    text: str


@dataclass(frozen=True, slots=True)
class Done:
    """The end of a generation, with the backend's own counts and timings."""

    finish_reason: FinishName = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    load_s: float = 0.0
    prompt_eval_s: float = 0.0
    eval_s: float = 0.0


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What a chat asks of a backend beyond the conversation and sampling.

    ``model`` None means the backend's own model. ``tools`` empty means none.
    """

    tools: tuple[ToolDefinition, ...] = ()
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    response_format: ResponseFormat = field(default_factory=ResponseFormat)
    model: str | None = None


# A ToolCall event is one whole call (name and complete arguments); a stream
# with tool calls ends with Done(finish_reason="tool_calls").
StreamEvent: TypeAlias = Delta | ToolCall | Done


def same_model(candidate: str, wanted: str) -> bool:
    """Model names as Ollama compares them: an untagged name means ':latest'."""
    return _tagged(candidate) == _tagged(wanted)


def _tagged(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


@dataclass(frozen=True, slots=True)
class LoadedModelInfo:
    name: str
    size_bytes: int = 0
    expires_at: datetime | None = None
    size_vram_bytes: int = 0


@dataclass(frozen=True, slots=True)
class BackendProbe:
    """What one health probe of a backend found."""

    reachable: bool
    model_available: bool
    model_loaded: bool
    model_expires_at: datetime | None = None
    loaded_models: tuple[LoadedModelInfo, ...] = ()
    available_models: tuple[str, ...] = ()
    version: str = ""
    error: str = ""
    latency_s: float = 0.0

    @property
    def usable(self) -> bool:
        return self.reachable and self.model_available


class ChatBackend(Protocol):
    """A model that answers chat conversations as a stream of events."""

    @property
    def kind(self) -> Literal["ollama", "embedded"]: ...

    model: str
    location: str  # Ollama base URL, or the GGUF path

    def chat_stream(
        self,
        turns: Sequence[ChatTurn],
        options: SamplingOptions,
        request: ChatRequest | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Yield Delta and ToolCall events, then exactly one Done.

        ``request`` carries tools, tool choice, response format and model
        (None: no tools, free text, the backend's model). A backend that cannot
        honour them raises BackendUnsupported before generating anything.
        Closing the iterator early (the caller was cancelled) must stop the
        generation at once. Raises BackendError subclasses on failure.
        """
        ...

    async def probe(self) -> BackendProbe: ...

    async def warm_up(self) -> None:
        """Load the model so the first request does not pay for it."""
        ...

    async def generate_one_token(self, keep_alive_s: int | None = None) -> None:
        """A tiny real generation, to prove inference works (not just listing).

        ``keep_alive_s`` overrides the residency it asks for, so a liveness
        check does not extend how long the model stays loaded.
        Raises BackendError subclasses on failure.
        """
        ...

    async def aclose(self) -> None: ...
