"""Checked conversions between the wire types (``tandem.v1``) and backend types.

Every check names the offending field, so a bad request ends with an
INVALID_ARGUMENT status that says exactly what to fix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from google.protobuf import duration_pb2

from tandem.backends.base import ChatTurn, Done, RoleName, SamplingOptions
from tandem.status import RichStatusError, invalid_argument
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
    messages: Sequence[common_pb2.ChatMessage], *, max_chars: int
) -> list[ChatTurn]:
    """Validate a request's messages and convert them."""
    if not messages:
        raise RichStatusError(invalid_argument("messages", "at least one message is required"))
    turns: list[ChatTurn] = []
    total = 0
    for index, message in enumerate(messages):
        role = _ROLE_NAMES.get(message.role)
        if role is None:
            label = "ROLE_UNSPECIFIED" if message.role == 0 else f"unknown value {message.role}"
            raise RichStatusError(
                invalid_argument(
                    f"messages[{index}].role",
                    f"{label}; use ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT or ROLE_TOOL",
                )
            )
        if not message.content.strip():
            raise RichStatusError(
                invalid_argument(f"messages[{index}].content", "must not be empty")
            )
        total += len(message.content)
        if total > max_chars:
            raise RichStatusError(
                invalid_argument(
                    "messages",
                    f"the conversation exceeds the limit of {max_chars} characters "
                    f"(at messages[{index}])",
                )
            )
        turns.append(ChatTurn(role=role, content=message.content))
    if turns[-1].role == "assistant":
        raise RichStatusError(
            invalid_argument(
                f"messages[{len(turns) - 1}].role",
                "the last message must not be ROLE_ASSISTANT; there is nothing to answer",
            )
        )
    return turns


def turns_to_proto(turns: Sequence[ChatTurn]) -> list[common_pb2.ChatMessage]:
    return [common_pb2.ChatMessage(role=_ROLE_VALUES[t.role], content=t.content) for t in turns]


def options_from_proto(options: common_pb2.GenerationOptions) -> SamplingOptions:
    """Validate generation options and convert them."""
    max_tokens = options.max_tokens if options.HasField("max_tokens") else None
    if max_tokens is not None and not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
        raise RichStatusError(
            invalid_argument("options.max_tokens", f"must be between 1 and {MAX_TOKENS_LIMIT}")
        )
    temperature = options.temperature if options.HasField("temperature") else None
    if temperature is not None and not (math.isfinite(temperature) and 0.0 <= temperature <= 2.0):
        raise RichStatusError(invalid_argument("options.temperature", "must be between 0 and 2"))
    top_p = options.top_p if options.HasField("top_p") else None
    if top_p is not None and not (math.isfinite(top_p) and 0.0 < top_p <= 1.0):
        raise RichStatusError(invalid_argument("options.top_p", "must be in (0, 1]"))
    if len(options.stop) > MAX_STOP_SEQUENCES:
        raise RichStatusError(
            invalid_argument("options.stop", f"at most {MAX_STOP_SEQUENCES} stop strings")
        )
    for index, stop in enumerate(options.stop):
        if not stop:
            raise RichStatusError(invalid_argument(f"options.stop[{index}]", "must not be empty"))
    return SamplingOptions(
        max_tokens=max_tokens,
        temperature=temperature,
        stop=tuple(options.stop),
        seed=options.seed if options.HasField("seed") else None,
        top_p=top_p,
    )


def seconds_to_duration(seconds: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(int(max(0.0, seconds) * 1e9))
    return duration


def finish_reason_to_proto(done: Done) -> common_pb2.FinishReason.ValueType:
    if done.finish_reason == "length":
        return common_pb2.FINISH_REASON_LENGTH
    return common_pb2.FINISH_REASON_STOP


def usage_to_proto(done: Done) -> common_pb2.Usage:
    return common_pb2.Usage(
        prompt_tokens=done.prompt_tokens, completion_tokens=done.completion_tokens
    )
