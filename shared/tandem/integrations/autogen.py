"""An AutoGen model client backed by a Tandem gateway (autogen-core 0.7).

    from autogen_agentchat.agents import AssistantAgent
    from tandem.integrations.autogen import TandemChatCompletionClient

    agent = AssistantAgent("coder", model_client=TandemChatCompletionClient("127.0.0.1:50051"))
    # With no address: $TANDEM_CLIENT_GATEWAY, else 127.0.0.1:50051.

Every call is one ``Route``: the gateway screens the conversation, then a
worker generates. A refusal comes back as a normal assistant message whose
``finish_reason`` is ``"content_filter"`` and whose content is the gateway's
refusal message (also logged, and kept in ``last_decision``). The
cancellation token cancels the gRPC call, which stops the worker's model.

Tools: ``tools`` (Tool or ToolSchema) and ``tool_choice`` go to the worker's
model; its calls come back as ``list[FunctionCall]`` with ``finish_reason``
"function_calls", and the agent's ``FunctionExecutionResultMessage`` goes back
as tool turns naming the call ids. ``json_output=True`` asks for JSON, a
pydantic model class for JSON matching its schema. The embedded default model
refuses tools (FAILED_PRECONDITION): run the worker on Ollama for agents.
Images are not taken (``vision=False``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Literal, Self

from pydantic import BaseModel, Field

from tandem.sdk import (
    AsyncTandemClient,
    ChatTurn,
    Decision,
    ResponseFormat,
    SamplingOptions,
    Text,
    ToolCall,
    ToolChoice,
    ToolDefinition,
)
from tandem.sdk.convert import AnswerBuilder
from tandem.sdk.models import Answer
from tandem.sdk.tools import response_format_of
from tandem.settings import ClientSettings

try:
    from autogen_core import CancellationToken, Component, FunctionCall, Image
    from autogen_core.models import (
        AssistantMessage,
        ChatCompletionClient,
        CreateResult,
        FinishReasons,
        FunctionExecutionResultMessage,
        LLMMessage,
        ModelCapabilities,  # deprecated, still abstract
        ModelFamily,
        ModelInfo,
        RequestUsage,
        SystemMessage,
        UserMessage,
    )
    from autogen_core.tools import Tool, ToolSchema
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "tandem.integrations.autogen needs autogen-core 0.7: pip install 'tandem-router[autogen]'"
    ) from exc

log = logging.getLogger(__name__)

_FINISH: dict[str, FinishReasons] = {
    "stop": "stop",
    "length": "length",
    "refused": "content_filter",
    "tool_calls": "function_calls",
}
_OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(SamplingOptions))
_CHARS_PER_TOKEN = 4  # count_tokens is an estimate: the models' tokenizers live on the nodes
_TOKENS_PER_MESSAGE = 4

DEFAULT_MODEL_INFO = ModelInfo(
    vision=False,
    function_calling=True,
    json_output=True,
    family=ModelFamily.UNKNOWN,
    structured_output=True,
    multiple_system_messages=True,
)


class TandemChatCompletionClientConfig(BaseModel):
    """The declarative form (``dump_component`` / ``load_component``)."""

    gateway: str | None = Field(
        default=None,
        description="Gateway host:port (default: $TANDEM_CLIENT_GATEWAY or 127.0.0.1:50051).",
    )
    timeout_s: float | None = Field(default=600.0, description="Deadline of each call, in seconds.")
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    token_limit: int = Field(
        default=8192, description="Context window remaining_tokens counts against."
    )
    model_info: ModelInfo | None = None


class TandemChatCompletionClient(ChatCompletionClient, Component[TandemChatCompletionClientConfig]):
    """``autogen_core.models.ChatCompletionClient`` over Tandem's ``GatewayService/Route``.

    ``options`` are the default sampling settings; ``extra_create_args`` may
    override any of them per call (``max_tokens``, ``temperature``, ``top_p``,
    ``seed``, ``stop``). Pass ``client`` to reuse a configured AsyncTandemClient
    (auth hook, TLS, channel settings); it is then yours to close.
    """

    component_type = "model"
    component_config_schema = TandemChatCompletionClientConfig
    component_provider_override = "tandem.integrations.autogen.TandemChatCompletionClient"

    def __init__(
        self,
        gateway: str | None = None,
        *,
        options: SamplingOptions | None = None,
        timeout_s: float | None = 600.0,
        token_limit: int = 8192,
        model_info: ModelInfo | None = None,
        client: AsyncTandemClient | None = None,
    ) -> None:
        self._gateway = gateway or (client.address if client else ClientSettings().gateway)
        self._options = options or SamplingOptions()
        self._timeout_s = timeout_s
        self._token_limit = token_limit
        self._model_info = model_info or DEFAULT_MODEL_INFO
        self._client = client
        self._owns_client = client is None
        self._usage = RequestUsage(prompt_tokens=0, completion_tokens=0)
        self.last_decision: Decision | None = None

    def _tandem(self) -> AsyncTandemClient:
        # Created on first use, inside the event loop that will use its channel.
        if self._client is None:
            self._client = AsyncTandemClient(self._gateway, timeout_s=self._timeout_s)
        return self._client

    async def create(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> CreateResult:
        call = self._prepare(messages, tools, tool_choice, json_output, extra_create_args)
        task = asyncio.ensure_future(self._tandem().ask(**call))
        if cancellation_token is not None:
            cancellation_token.link_future(task)
        return self._finish(await task)

    async def create_stream(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> AsyncGenerator[str | CreateResult, None]:
        call = self._prepare(messages, tools, tool_choice, json_output, extra_create_args)
        builder = AnswerBuilder()
        events = self._tandem().route(**call)
        async with contextlib.aclosing(events):
            while True:
                step = asyncio.ensure_future(anext(events, None))
                if cancellation_token is not None:
                    cancellation_token.link_future(step)
                event = await step
                if event is None:
                    break
                builder.add(event)
                if isinstance(event, Text) and event.text:
                    yield event.text
        answer = builder.build()
        if answer.refused:
            yield answer.content
        yield self._finish(answer)

    def _prepare(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[Tool | ToolSchema],
        tool_choice: Tool | Literal["auto", "required", "none"],
        json_output: bool | type[BaseModel] | None,
        extra_create_args: Mapping[str, Any],
    ) -> dict[str, Any]:
        """The keyword arguments of one ``route``/``ask`` call."""
        unknown = set(extra_create_args) - _OPTION_NAMES
        if unknown:
            raise ValueError(
                f"unsupported extra_create_args {sorted(unknown)}; use {sorted(_OPTION_NAMES)}"
            )
        overrides = dict(extra_create_args)
        if "stop" in overrides:
            overrides["stop"] = tuple(overrides["stop"])
        return {
            "conversation": to_turns(messages),
            "options": dataclasses.replace(self._options, **overrides),
            "tools": [tool_definition(tool) for tool in tools],
            "tool_choice": _tool_choice(tool_choice) if tools else None,
            "response_format": _response_format(json_output),
            "timeout_s": self._timeout_s,
        }

    def _finish(self, answer: Answer) -> CreateResult:
        self.last_decision = answer.decision
        if answer.refused:
            log.warning(
                "Tandem refused the request (%s, threats %s): %s",
                answer.decision.tier,
                ",".join(answer.decision.threats) or "none",
                answer.decision.reason,
            )
        usage = RequestUsage(
            prompt_tokens=answer.usage.prompt_tokens,
            completion_tokens=answer.usage.completion_tokens,
        )
        self._usage = RequestUsage(
            prompt_tokens=self._usage.prompt_tokens + usage.prompt_tokens,
            completion_tokens=self._usage.completion_tokens + usage.completion_tokens,
        )
        if answer.tool_calls:
            return CreateResult(
                finish_reason="function_calls",
                content=[_function_call(call) for call in answer.tool_calls],
                usage=usage,
                cached=False,
                thought=answer.text or None,
            )
        return CreateResult(
            finish_reason=_FINISH.get(answer.finish_reason, "unknown"),
            content=answer.content,
            usage=usage,
            cached=False,
        )

    async def close(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.close()
            self._client = None

    def actual_usage(self) -> RequestUsage:
        return dataclasses.replace(self._usage)

    def total_usage(self) -> RequestUsage:
        return dataclasses.replace(self._usage)  # nothing is cached, so the same

    def count_tokens(
        self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []
    ) -> int:
        """An estimate (4 characters a token): the real tokenizers run on the nodes.
        Tool calls and tool definitions count as their JSON."""
        chars = [
            len(turn.content) + sum(len(_json(c.arguments)) + len(c.name) for c in turn.tool_calls)
            for turn in to_turns(messages)
        ]
        definitions = sum(len(_json(dataclasses.asdict(tool_definition(t)))) for t in tools)
        return sum(_TOKENS_PER_MESSAGE + math.ceil(n / _CHARS_PER_TOKEN) for n in chars) + (
            math.ceil(definitions / _CHARS_PER_TOKEN)
        )

    def remaining_tokens(
        self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []
    ) -> int:
        return self._token_limit - self.count_tokens(messages, tools=tools)

    @property
    def capabilities(self) -> ModelCapabilities:
        info = self._model_info
        return ModelCapabilities(
            vision=info["vision"],
            function_calling=info["function_calling"],
            json_output=info["json_output"],
        )

    @property
    def model_info(self) -> ModelInfo:
        return self._model_info

    def _to_config(self) -> TandemChatCompletionClientConfig:
        return TandemChatCompletionClientConfig(
            gateway=self._gateway,
            timeout_s=self._timeout_s,
            token_limit=self._token_limit,
            model_info=self._model_info,
            **dataclasses.asdict(self._options),
        )

    @classmethod
    def _from_config(cls, config: TandemChatCompletionClientConfig) -> Self:
        options = config.model_dump(include=set(_OPTION_NAMES))
        return cls(
            config.gateway,
            options=SamplingOptions(**{**options, "stop": tuple(config.stop)}),
            timeout_s=config.timeout_s,
            token_limit=config.token_limit,
            model_info=config.model_info,
        )


def tool_definition(tool: Tool | ToolSchema) -> ToolDefinition:
    """An AutoGen Tool (its ``schema``) or ToolSchema as a Tandem tool definition."""
    schema: Mapping[str, Any] = tool.schema if isinstance(tool, Tool) else tool
    parameters = dict(schema.get("parameters") or {"type": "object", "properties": {}})
    return ToolDefinition(schema["name"], schema.get("description", ""), parameters)


def _tool_choice(choice: Tool | Literal["auto", "required", "none"]) -> ToolChoice:
    if isinstance(choice, Tool):
        return ToolChoice.named(choice.name)
    return ToolChoice(choice)


def _response_format(json_output: bool | type[BaseModel] | None) -> ResponseFormat:
    if json_output is True:
        return ResponseFormat.json()
    if isinstance(json_output, type):
        return response_format_of(json_output)
    return ResponseFormat()


def _function_call(call: ToolCall) -> FunctionCall:
    return FunctionCall(id=call.id, name=call.name, arguments=_json(call.arguments))


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value))


def to_turns(messages: Sequence[LLMMessage]) -> list[ChatTurn]:
    """AutoGen messages as Tandem turns: an assistant's FunctionCalls as its tool
    calls, each FunctionExecutionResult as a tool turn answering its call id.
    Turns with neither text nor calls are left out."""
    turns: list[ChatTurn] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            turns.append(ChatTurn("system", message.content))
        elif isinstance(message, UserMessage):
            turns.append(ChatTurn("user", _user_text(message.content)))
        elif isinstance(message, AssistantMessage):
            turns.append(_assistant_turn(message))
        elif isinstance(message, FunctionExecutionResultMessage):
            turns.extend(
                ChatTurn(
                    "tool",
                    result.content or "(no output)",
                    tool_call_id=result.call_id,
                    tool_name=result.name,
                )
                for result in message.content
            )
        else:
            raise ValueError(f"unsupported message type {type(message).__name__}")
    return [turn for turn in turns if turn.content.strip() or turn.tool_calls]


def _user_text(content: str | list[str | Image]) -> str:
    if isinstance(content, str):
        return content
    if any(isinstance(part, Image) for part in content):
        raise ValueError("Tandem models take text only (model_info vision=False)")
    return "\n".join(str(part) for part in content)


def _assistant_turn(message: AssistantMessage) -> ChatTurn:
    if isinstance(message.content, str):
        return ChatTurn("assistant", message.content)
    calls = tuple(ToolCall(call.id, call.name, _arguments(call)) for call in message.content)
    return ChatTurn("assistant", message.thought or "", tool_calls=calls)


def _arguments(call: FunctionCall) -> dict[str, Any]:
    try:
        arguments = json.loads(call.arguments or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"FunctionCall {call.id} arguments are not JSON: {exc.msg}") from exc
    if not isinstance(arguments, dict):
        raise ValueError(f"FunctionCall {call.id} arguments are not a JSON object")
    return arguments
