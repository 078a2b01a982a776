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
Tandem's models take text only and call no tools; ``model_info`` says so, and
AutoGen checks it before asking for either.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Literal, Self

from pydantic import BaseModel, Field

from tandem.sdk import AsyncTandemClient, ChatTurn, Decision, SamplingOptions, Text
from tandem.sdk.convert import AnswerBuilder
from tandem.sdk.models import Answer
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
        ModelCapabilities,  # type: ignore[attr-defined]  # deprecated, still abstract
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
}
_OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(SamplingOptions))
_CHARS_PER_TOKEN = 4  # count_tokens is an estimate: the models' tokenizers live on the nodes
_TOKENS_PER_MESSAGE = 4

DEFAULT_MODEL_INFO = ModelInfo(
    vision=False,
    function_calling=False,
    json_output=False,
    family=ModelFamily.UNKNOWN,
    structured_output=False,
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
        turns, options = self._prepare(messages, tools, json_output, extra_create_args)
        task = asyncio.ensure_future(self._tandem().ask(turns, options, timeout_s=self._timeout_s))
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
        turns, options = self._prepare(messages, tools, json_output, extra_create_args)
        builder = AnswerBuilder()
        events = self._tandem().route(turns, options, timeout_s=self._timeout_s)
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
        json_output: bool | type[BaseModel] | None,
        extra_create_args: Mapping[str, Any],
    ) -> tuple[list[ChatTurn], SamplingOptions]:
        if tools:
            raise ValueError("Tandem models do not call tools (model_info function_calling=False)")
        if json_output is not None and json_output is not False:
            raise ValueError("Tandem models have no JSON mode or structured output")
        unknown = set(extra_create_args) - _OPTION_NAMES
        if unknown:
            raise ValueError(
                f"unsupported extra_create_args {sorted(unknown)}; use {sorted(_OPTION_NAMES)}"
            )
        overrides = dict(extra_create_args)
        if "stop" in overrides:
            overrides["stop"] = tuple(overrides["stop"])
        return to_turns(messages), dataclasses.replace(self._options, **overrides)

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
        """An estimate (4 characters a token): the real tokenizers run on the nodes."""
        return sum(
            _TOKENS_PER_MESSAGE + math.ceil(len(turn.content) / _CHARS_PER_TOKEN)
            for turn in to_turns(messages)
        )

    def remaining_tokens(
        self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []
    ) -> int:
        return self._token_limit - self.count_tokens(messages, tools=tools)

    @property
    def capabilities(self) -> ModelCapabilities:  # type: ignore[override]
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


def to_turns(messages: Sequence[LLMMessage]) -> list[ChatTurn]:
    """AutoGen messages as Tandem turns. Turns with no text are left out."""
    turns: list[ChatTurn] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            turns.append(ChatTurn("system", message.content))
        elif isinstance(message, UserMessage):
            turns.append(ChatTurn("user", _user_text(message.content)))
        elif isinstance(message, AssistantMessage):
            turns.append(ChatTurn("assistant", _assistant_text(message.content)))
        elif isinstance(message, FunctionExecutionResultMessage):
            turns.extend(ChatTurn("tool", result.content) for result in message.content)
        else:
            raise ValueError(f"unsupported message type {type(message).__name__}")
    return [turn for turn in turns if turn.content.strip()]


def _user_text(content: str | list[str | Image]) -> str:
    if isinstance(content, str):
        return content
    if any(isinstance(part, Image) for part in content):
        raise ValueError("Tandem models take text only (model_info vision=False)")
    return "\n".join(str(part) for part in content)


def _assistant_text(content: str | list[FunctionCall]) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(f"[called {call.name}({call.arguments})]" for call in content)
