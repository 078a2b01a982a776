"""The JSON bodies and server-sent events of OpenAI's chat-completions API."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from tandem.sdk import Answer, Decision, ToolCall, Usage

SSE_DONE = b"data: [DONE]\n\n"
OWNER = "tandem"
# Tandem's finish reasons as OpenAI's: a refusal is a content filter's doing.
_FINISH = {
    "stop": "stop",
    "length": "length",
    "refused": "content_filter",
    "tool_calls": "tool_calls",
}


def finish_reason(name: str) -> str:
    return _FINISH.get(name, "stop")


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def usage_json(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def tool_call_json(call: ToolCall, index: int | None = None) -> dict[str, Any]:
    """A call as OpenAI writes it: ``arguments`` a JSON string; ``index`` in a chunk."""
    body: dict[str, Any] = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": json.dumps(dict(call.arguments))},
    }
    return body if index is None else {"index": index, **body}


def model_card(model: str, created: int) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": created, "owned_by": OWNER}


def decision_headers(decision: Decision, request_id: str) -> dict[str, str]:
    """The gateway's decision, for clients that want it without parsing the body."""
    headers = {
        "x-request-id": request_id,
        "x-tandem-verdict": decision.verdict,
        "x-tandem-difficulty": decision.difficulty,
        "x-tandem-tier": decision.tier,
    }
    if decision.task_type:
        headers["x-tandem-task-type"] = decision.task_type
    if decision.threats:
        headers["x-tandem-threats"] = ",".join(decision.threats)
    return headers


@dataclass(frozen=True, slots=True)
class CompletionShape:
    """What every body of one completion shares: its id, time and model name."""

    id: str
    model: str
    created: int = field(default_factory=lambda: int(time.time()))

    def completion(self, answer: Answer, calls: tuple[ToolCall, ...] = ()) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": answer.content if answer.content or not calls else None,
            "refusal": None,
        }
        if calls:
            message["tool_calls"] = [tool_call_json(call) for call in calls]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish_reason(answer.finish_reason),
                }
            ],
            "usage": usage_json(answer.usage),
        }

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def usage_chunk(self, usage: Usage) -> dict[str, Any]:
        """The extra last chunk ``stream_options.include_usage`` asks for."""
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage_json(usage),
        }
