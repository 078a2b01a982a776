"""Checked conversions between the wire types (``tandem.v1``) and backend types.

Every check names the offending field, so a bad request ends with an
INVALID_ARGUMENT status that says exactly what to fix.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import json_format, struct_pb2

from tandem.backends.base import (
    ChatRequest,
    ChatTurn,
    Done,
    ResponseFormat,
    RoleName,
    SamplingOptions,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
    ToolDefinition,
)
from tandem.errors import InvalidArgument, NotFound
from tandem.v1 import common_pb2

_ROLE_NAMES: dict[common_pb2.Role, RoleName] = {
    common_pb2.ROLE_SYSTEM: "system",
    common_pb2.ROLE_USER: "user",
    common_pb2.ROLE_ASSISTANT: "assistant",
    common_pb2.ROLE_TOOL: "tool",
}
_ROLE_VALUES = {name: value for value, name in _ROLE_NAMES.items()}
MAX_STOP_SEQUENCES = 16
MAX_TOKENS_LIMIT = 1_000_000
MAX_TOOLS = 128
# OpenAI's and the contract's rule for function names.
TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def turns_from_proto(
    messages: Sequence[common_pb2.ChatMessage],
    *,
    max_chars: int,
    max_tool_nesting: int | None = None,
) -> list[ChatTurn]:
    """Validate a request's messages and convert them.

    Beyond roles and sizes: NUL characters are refused in every message (C
    clients and many tools treat them as the end of the text, so what the guard
    screens would differ from what a model reads), and a tool message whose
    brackets nest deeper than ``max_tool_nesting`` is refused before any parser
    can recurse into it.
    """
    if not messages:
        raise InvalidArgument("messages", "at least one message is required")
    turns: list[ChatTurn] = []
    total = 0
    calls_made: set[str] = set()
    for index, message in enumerate(messages):
        role = _ROLE_NAMES.get(message.role)
        if role is None:
            label = "ROLE_UNSPECIFIED" if message.role == 0 else f"unknown value {message.role}"
            raise InvalidArgument(
                f"messages[{index}].role",
                f"{label}; use ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT or ROLE_TOOL",
            )
        if not message.content.strip() and not (role == "assistant" and message.tool_calls):
            raise InvalidArgument(f"messages[{index}].content", "must not be empty")
        if "\x00" in message.content:
            raise InvalidArgument(
                f"messages[{index}].content",
                f"contains a NUL character (U+0000) at offset {message.content.index(chr(0))}",
            )
        calls = _checked_calls(message, role, index, calls_made)
        total += len(message.content) + sum(len(_json(call.arguments)) for call in calls)
        if total > max_chars:
            raise InvalidArgument(
                "messages",
                f"the conversation exceeds the limit of {max_chars} characters "
                f"(at messages[{index}])",
            )
        if max_tool_nesting is not None and role == "tool":
            depth = bracket_depth(message.content, stop_above=max_tool_nesting)
            if depth > max_tool_nesting:
                raise InvalidArgument(
                    f"messages[{index}].content",
                    f"tool content nests brackets deeper than the limit of {max_tool_nesting}",
                )
        turns.append(
            ChatTurn(
                role=role,
                content=message.content,
                tool_calls=calls,
                tool_call_id=message.tool_call_id,
                tool_name=message.tool_name,
            )
        )
    if turns[-1].role == "assistant":
        raise InvalidArgument(
            f"messages[{len(turns) - 1}].role",
            "the last message must not be ROLE_ASSISTANT; there is nothing to answer",
        )
    return turns


def _checked_calls(
    message: common_pb2.ChatMessage, role: RoleName, index: int, calls_made: set[str]
) -> tuple[ToolCall, ...]:
    """An assistant message's tool calls (named, ids unique in the conversation);
    a tool message's ``tool_call_id``, which must answer a call made earlier.

    A tool message without ``tool_call_id`` is plain tool output (a fetched page,
    as Ollama takes it with only ``tool_name``) and is accepted as such.
    """
    where = f"messages[{index}]"
    if message.tool_calls and role != "assistant":
        raise InvalidArgument(f"{where}.tool_calls", "only a ROLE_ASSISTANT message calls tools")
    if message.tool_call_id and role != "tool":
        raise InvalidArgument(f"{where}.tool_call_id", "only a ROLE_TOOL message answers a call")
    if role == "tool" and message.tool_call_id and message.tool_call_id not in calls_made:
        raise InvalidArgument(
            f"{where}.tool_call_id",
            f"{message.tool_call_id!r} answers no tool call made earlier in the conversation",
        )
    if message.tool_name and not TOOL_NAME.fullmatch(message.tool_name):
        raise InvalidArgument(f"{where}.tool_name", _BAD_NAME)
    calls = []
    for number, call in enumerate(message.tool_calls):
        field_prefix = f"{where}.tool_calls[{number}]"
        if not TOOL_NAME.fullmatch(call.name):
            raise InvalidArgument(f"{field_prefix}.name", _BAD_NAME)
        if call.id:
            if call.id in calls_made:
                raise InvalidArgument(
                    f"{field_prefix}.id", f"{call.id!r} is used by an earlier tool call"
                )
            calls_made.add(call.id)
        calls.append(tool_call_from_proto(call))
    return tuple(calls)


_BAD_NAME = "must be 1 to 64 letters, digits, '_' or '-'"


def request_from_proto(
    tools: Sequence[common_pb2.ToolDefinition],
    tool_choice: common_pb2.ToolChoice,
    response_format: common_pb2.ResponseFormat,
    model: str,
) -> ChatRequest:
    """Validate a Route's or Generate's tools, tool choice, format and model."""
    definitions = tools_from_proto(tools)
    return ChatRequest(
        tools=definitions,
        tool_choice=tool_choice_from_proto(tool_choice, definitions),
        response_format=response_format_from_proto(response_format),
        model=_model_name(model),
    )


def tools_from_proto(tools: Sequence[common_pb2.ToolDefinition]) -> tuple[ToolDefinition, ...]:
    if len(tools) > MAX_TOOLS:
        raise InvalidArgument("tools", f"at most {MAX_TOOLS} tools")
    seen: set[str] = set()
    definitions = []
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        if not tool.name:
            raise InvalidArgument(f"{where}.name", "a tool needs a name")
        if not TOOL_NAME.fullmatch(tool.name):
            raise InvalidArgument(f"{where}.name", _BAD_NAME)
        if tool.name in seen:
            raise InvalidArgument(f"{where}.name", f"{tool.name!r} is defined twice")
        seen.add(tool.name)
        # No parameters (or {}) is a function without arguments, as OpenAI reads it.
        parameters = struct_to_dict(tool.parameters) or {"type": "object", "properties": {}}
        check_object_schema(parameters, f"{where}.parameters")
        definitions.append(ToolDefinition(tool.name, tool.description, parameters))
    return tuple(definitions)


def check_object_schema(schema: Mapping[str, Any], field: str) -> None:
    """A JSON Schema for a JSON object: ``type`` "object", and ``properties``
    (if given) an object of schemas, ``required`` a list of property names."""
    if schema.get("type") != "object":
        raise InvalidArgument(
            field, 'must be a JSON-schema object schema ({"type": "object", ...})'
        )
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping) or not all(
        isinstance(value, Mapping) for value in properties.values()
    ):
        raise InvalidArgument(f"{field}.properties", "must map each property name to a schema")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
        raise InvalidArgument(f"{field}.required", "must be a list of property names")


def tool_choice_from_proto(
    choice: common_pb2.ToolChoice, tools: Sequence[ToolDefinition]
) -> ToolChoice:
    kind = choice.WhichOneof("choice")
    if kind == "function":
        names = [tool.name for tool in tools]
        if choice.function not in names:
            raise InvalidArgument(
                "tool_choice.function",
                f"{choice.function!r} is not one of the request's tools {names}",
            )
        return ToolChoice.named(choice.function)
    mode: ToolChoiceMode | None = _TOOL_CHOICE_MODES.get(choice.mode) if kind == "mode" else "auto"
    if mode is None:
        raise InvalidArgument("tool_choice.mode", f"unknown value {choice.mode}")
    if mode == "required" and not tools:
        raise InvalidArgument("tool_choice.mode", "TOOL_CHOICE_MODE_REQUIRED needs tools")
    return ToolChoice(mode)


_TOOL_CHOICE_MODES: dict[int, ToolChoiceMode] = {
    common_pb2.TOOL_CHOICE_MODE_UNSPECIFIED: "auto",
    common_pb2.TOOL_CHOICE_MODE_AUTO: "auto",
    common_pb2.TOOL_CHOICE_MODE_NONE: "none",
    common_pb2.TOOL_CHOICE_MODE_REQUIRED: "required",
}


def response_format_from_proto(value: common_pb2.ResponseFormat) -> ResponseFormat:
    has_schema = value.HasField("schema")
    if value.type == common_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA:
        if not has_schema:
            raise InvalidArgument(
                "response_format.schema", "RESPONSE_FORMAT_TYPE_JSON_SCHEMA needs a schema"
            )
        schema = struct_to_dict(value.schema)
        check_object_schema(schema, "response_format.schema")
        return ResponseFormat.json_schema(schema, value.name)
    if value.type not in _PLAIN_FORMATS:
        raise InvalidArgument("response_format.type", f"unknown value {value.type}")
    if has_schema:
        raise InvalidArgument(
            "response_format.schema", "only RESPONSE_FORMAT_TYPE_JSON_SCHEMA takes a schema"
        )
    return ResponseFormat(_PLAIN_FORMATS[value.type])


_PLAIN_FORMATS: dict[int, Any] = {
    common_pb2.RESPONSE_FORMAT_TYPE_UNSPECIFIED: "text",
    common_pb2.RESPONSE_FORMAT_TYPE_TEXT: "text",
    common_pb2.RESPONSE_FORMAT_TYPE_JSON: "json",
}


def _model_name(model: str) -> str | None:
    if not model:
        return None
    if len(model) > 200 or not _MODEL_NAME.fullmatch(model):
        raise InvalidArgument("model", "must be a model name like qwen3-coder-next or llama3.1:8b")
    return model


_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]*")


def model_not_served(model: str, available: Sequence[str], where: str) -> NotFound:
    """NOT_FOUND for a model ``where`` does not serve, listing the ones it does."""
    listed = ", ".join(available) or "none"
    return NotFound(
        f"model {model!r} is not served by {where}; available: {listed}",
        resource_type="model",
        resource_name=model,
        available=available,
    )


def request_to_proto(request: ChatRequest) -> dict[str, Any]:
    """The keyword fields of a RouteRequest/GenerateRequest for ``request``."""
    fields: dict[str, Any] = {
        "tools": [
            common_pb2.ToolDefinition(
                name=tool.name,
                description=tool.description,
                parameters=dict_to_struct(dict(tool.parameters)),
            )
            for tool in request.tools
        ],
        "model": request.model or "",
    }
    choice = request.tool_choice
    if choice.mode == "function":
        fields["tool_choice"] = common_pb2.ToolChoice(function=choice.function)
    elif choice.mode != "auto":
        fields["tool_choice"] = common_pb2.ToolChoice(
            mode={
                "none": common_pb2.TOOL_CHOICE_MODE_NONE,
                "required": common_pb2.TOOL_CHOICE_MODE_REQUIRED,
            }[choice.mode]
        )
    fmt = request.response_format
    if fmt.type == "json":
        fields["response_format"] = common_pb2.ResponseFormat(
            type=common_pb2.RESPONSE_FORMAT_TYPE_JSON
        )
    elif fmt.type == "json_schema":
        fields["response_format"] = common_pb2.ResponseFormat(
            type=common_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA,
            schema=dict_to_struct(dict(fmt.schema or {})),
            name=fmt.name,
        )
    return fields


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))


_OPENERS = frozenset("[{(")
_CLOSERS = frozenset("]})")


def bracket_depth(text: str, *, stop_above: int | None = None) -> int:
    """Deepest nesting of ``[ { (`` outside JSON strings, without recursion.

    Stops scanning once the depth exceeds ``stop_above`` (the answer is then
    ``stop_above + 1``), so a hostile input costs no more than needed.
    """
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in _OPENERS:
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    return deepest
        elif char in _CLOSERS and depth > 0:
            depth -= 1
    return deepest


def struct_to_dict(value: struct_pb2.Struct) -> dict[str, object]:
    """A Struct as plain JSON values; whole numbers come back as ints (Struct keeps
    every number as a double, but ``{"n": 3}`` must stay ``3`` for a tool)."""
    return _whole_numbers(json_format.MessageToDict(value))  # type: ignore[return-value]


def _whole_numbers(value: object) -> object:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


def dict_to_struct(value: object) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


def tool_call_from_proto(call: common_pb2.ToolCall) -> ToolCall:
    return ToolCall(id=call.id, name=call.name, arguments=struct_to_dict(call.arguments))


def tool_call_to_proto(call: ToolCall) -> common_pb2.ToolCall:
    return common_pb2.ToolCall(
        id=call.id, name=call.name, arguments=dict_to_struct(dict(call.arguments))
    )


def turns_to_proto(turns: Sequence[ChatTurn]) -> list[common_pb2.ChatMessage]:
    return [
        common_pb2.ChatMessage(
            role=_ROLE_VALUES[t.role],
            content=t.content,
            tool_calls=[tool_call_to_proto(call) for call in t.tool_calls],
            tool_call_id=t.tool_call_id,
            tool_name=t.tool_name,
        )
        for t in turns
    ]


def options_from_proto(options: common_pb2.GenerationOptions) -> SamplingOptions:
    """Validate generation options and convert them."""
    max_tokens = options.max_tokens if options.HasField("max_tokens") else None
    if max_tokens is not None and not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
        raise InvalidArgument("options.max_tokens", f"must be between 1 and {MAX_TOKENS_LIMIT}")
    temperature = options.temperature if options.HasField("temperature") else None
    if temperature is not None and not (math.isfinite(temperature) and 0.0 <= temperature <= 2.0):
        raise InvalidArgument("options.temperature", "must be between 0 and 2")
    top_p = options.top_p if options.HasField("top_p") else None
    if top_p is not None and not (math.isfinite(top_p) and 0.0 < top_p <= 1.0):
        raise InvalidArgument("options.top_p", "must be in (0, 1]")
    if len(options.stop) > MAX_STOP_SEQUENCES:
        raise InvalidArgument("options.stop", f"at most {MAX_STOP_SEQUENCES} stop strings")
    for index, stop in enumerate(options.stop):
        if not stop:
            raise InvalidArgument(f"options.stop[{index}]", "must not be empty")
    return SamplingOptions(
        max_tokens=max_tokens,
        temperature=temperature,
        stop=tuple(options.stop),
        seed=options.seed if options.HasField("seed") else None,
        top_p=top_p,
    )


def finish_reason_to_proto(done: Done) -> common_pb2.FinishReason:
    if done.finish_reason == "length":
        return common_pb2.FINISH_REASON_LENGTH
    if done.finish_reason == "tool_calls":
        return common_pb2.FINISH_REASON_TOOL_CALLS
    return common_pb2.FINISH_REASON_STOP


def usage_to_proto(done: Done) -> common_pb2.Usage:
    return common_pb2.Usage(
        prompt_tokens=done.prompt_tokens, completion_tokens=done.completion_tokens
    )
