"""Checked conversions between the wire types (``tandem.v1``) and backend types.

Every check names the offending field, so a bad request ends with an
INVALID_ARGUMENT status that says exactly what to fix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from google.protobuf import json_format, struct_pb2

from tandem.backends.base import ChatTurn, Done, RoleName, SamplingOptions, ToolCall
from tandem.errors import InvalidArgument
from tandem.v1 import common_pb2

_ROLE_NAMES: dict[int, RoleName] = {
    common_pb2.ROLE_SYSTEM: "system",
    common_pb2.ROLE_USER: "user",
    common_pb2.ROLE_ASSISTANT: "assistant",
    common_pb2.ROLE_TOOL: "tool",
}
_ROLE_VALUES = {name: value for value, name in _ROLE_NAMES.items()}
MAX_STOP_SEQUENCES = 16
MAX_TOKENS_LIMIT = 1_000_000


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
        total += len(message.content)
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
                tool_calls=tuple(tool_call_from_proto(call) for call in message.tool_calls),
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
    struct.update(value)  # type: ignore[arg-type]
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


def finish_reason_to_proto(done: Done) -> common_pb2.FinishReason.ValueType:
    if done.finish_reason == "length":
        return common_pb2.FINISH_REASON_LENGTH
    return common_pb2.FINISH_REASON_STOP


def usage_to_proto(done: Done) -> common_pb2.Usage:
    return common_pb2.Usage(
        prompt_tokens=done.prompt_tokens, completion_tokens=done.completion_tokens
    )
