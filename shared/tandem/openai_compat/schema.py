"""The OpenAI chat-completions request, validated, and its mapping to a Route.

Unknown fields are ignored, as OpenAI-compatible servers usually do; fields
that would change the meaning of the answer and that Tandem cannot honour
(several choices, images, the legacy ``functions``) are refused with a 400
naming them. Tools, tool choice, tool messages and ``response_format``
(``json_object``, ``json_schema``) map onto the Route's own fields.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tandem.backends.base import ChatRequest
from tandem.conversions import check_object_schema
from tandem.errors import InvalidArgument
from tandem.sdk import (
    ChatTurn,
    ResponseFormat,
    SamplingOptions,
    ToolCall,
    ToolChoice,
    ToolDefinition,
)

_ROLES: dict[str, Literal["system", "user", "assistant", "tool"]] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
}


class UnsupportedRequest(ValueError):
    """A valid OpenAI request that asks for something Tandem does not do."""

    def __init__(self, param: str, message: str, code: str = "unsupported_parameter") -> None:
        super().__init__(message)
        self.param = param
        self.code = code


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class FunctionCallBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    arguments: str = "{}"  # a JSON object, as a string


class MessageToolCall(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    type: Literal["function"] = "function"
    function: FunctionCallBody


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[MessageToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    description: str = ""
    parameters: dict[str, Any] | None = None


class ToolSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["function"]
    function: NamedFunction


class JsonSchemaSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = ""
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")


class ResponseFormatSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = None
    tools: list[ToolSpec] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    functions: list[Any] | None = None
    response_format: ResponseFormatSpec | None = None

    def check_supported(self) -> None:
        if self.n not in (None, 1):
            raise UnsupportedRequest("n", "Tandem returns one choice; n must be 1")
        if self.functions:
            raise UnsupportedRequest(
                "functions", "the legacy functions field is not supported; use tools"
            )

    def turns(self) -> list[ChatTurn]:
        """Index for index the request's messages, so a gateway error's field
        (``messages[2].content``) names the same message in the request."""
        return [_turn(message, index) for index, message in enumerate(self.messages)]

    def chat_request(self, default_model: str) -> ChatRequest:
        """Tools, tool choice, format and model; ``default_model`` (the endpoint's
        own name) means the cluster's default model."""
        tools = tuple(_tool(spec, index) for index, spec in enumerate(self.tools or ()))
        return ChatRequest(
            tools=tools,
            tool_choice=self._tool_choice(),
            response_format=self._response_format(),
            model=None if self.model in (None, "", default_model) else self.model,
        )

    @property
    def single_tool_call(self) -> bool:
        """``parallel_tool_calls: false``: the answer carries the first call only."""
        return self.parallel_tool_calls is False

    def _tool_choice(self) -> ToolChoice:
        choice = self.tool_choice
        if isinstance(choice, NamedToolChoice):
            return ToolChoice.named(choice.function.name)
        return ToolChoice(choice or "auto")

    def _response_format(self) -> ResponseFormat:
        spec = self.response_format
        if spec is None or spec.type == "text":
            return ResponseFormat()
        if spec.type == "json_object":
            return ResponseFormat.json()
        if spec.json_schema is None or spec.json_schema.schema_ is None:
            raise UnsupportedRequest(
                "response_format.json_schema.schema", "json_schema needs a schema", _INVALID
            )
        schema = spec.json_schema.schema_
        _check_schema(schema, "response_format.json_schema.schema")
        return ResponseFormat.json_schema(schema, spec.json_schema.name)

    def options(self) -> SamplingOptions:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return SamplingOptions(
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature,
            stop=tuple(stop),
            seed=self.seed,
            top_p=self.top_p,
        )

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


def _turn(message: ChatMessage, index: int) -> ChatTurn:
    calls = tuple(
        ToolCall(call.id, call.function.name, _arguments(call, index, number))
        for number, call in enumerate(message.tool_calls or ())
    )
    return ChatTurn(
        _ROLES[message.role],
        _text(message.content, index),
        tool_calls=calls,
        tool_call_id=message.tool_call_id or "",
        tool_name=message.name or "" if message.role in ("tool", "function") else "",
    )


def _arguments(call: MessageToolCall, index: int, number: int) -> dict[str, Any]:
    param = f"messages[{index}].tool_calls[{number}].function.arguments"
    try:
        arguments = json.loads(call.function.arguments or "{}")
    except json.JSONDecodeError as exc:
        raise UnsupportedRequest(param, f"{param}: is not JSON: {exc.msg}", _INVALID) from exc
    if not isinstance(arguments, dict):
        raise UnsupportedRequest(param, f"{param}: must be a JSON object", _INVALID)
    return arguments


def _tool(spec: ToolSpec, index: int) -> ToolDefinition:
    function = spec.function
    parameters = function.parameters or {"type": "object", "properties": {}}
    _check_schema(parameters, f"tools[{index}].function.parameters")
    return ToolDefinition(function.name, function.description, parameters)


def _check_schema(schema: dict[str, Any], param: str) -> None:
    try:
        check_object_schema(schema, param)
    except InvalidArgument as exc:
        raise UnsupportedRequest(exc.field, exc.message, _INVALID) from exc


_INVALID = "invalid_argument"


def _text(content: str | list[ContentPart] | None, index: int) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for part_index, part in enumerate(content):
        if part.type != "text" or part.text is None:
            raise UnsupportedRequest(
                f"messages[{index}].content[{part_index}]",
                f"only text content is supported, not {part.type!r}",
            )
        texts.append(part.text)
    return "\n".join(texts)
