"""The LLM judge: one schema-constrained call to the gateway's model."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from tandem.backends import ChatBackend, ChatRequest, Delta, ResponseFormat, SamplingOptions
from tandem.backends.base import ChatTurn
from tandem_gateway.guard.decision import DifficultyName, ThreatName
from tandem_gateway.guard.judge_prompt import OUTPUT_SCHEMA, TASK_TYPES, judge_messages

JUDGE_SEED = 42
JUDGE_MAX_TOKENS = 200
_JSON_VERDICT = ChatRequest(response_format=ResponseFormat.json_schema(OUTPUT_SCHEMA))


class JudgeError(Exception):
    """The judge answered something unusable."""


class JudgeOutput(BaseModel):
    verdict: Literal["allow", "refuse"]
    threats: list[ThreatName] = Field(default_factory=list)
    difficulty: DifficultyName
    task_type: str = "general"
    reason: str = ""


class LlmJudge:
    """Screens and classifies a conversation in a single model call."""

    def __init__(self, backend: ChatBackend) -> None:
        self.backend = backend

    async def judge(self, turns: Sequence[ChatTurn]) -> JudgeOutput:
        options = SamplingOptions(max_tokens=JUDGE_MAX_TOKENS, temperature=0.0, seed=JUDGE_SEED)
        pieces: list[str] = []
        events = self.backend.chat_stream(
            judge_messages(turns), options, _JSON_VERDICT
        )
        async with contextlib.aclosing(events):
            async for event in events:
                if isinstance(event, Delta):
                    pieces.append(event.text)
        return parse_judge_output("".join(pieces))


def parse_judge_output(text: str) -> JudgeOutput:
    """Parse and validate the judge's JSON; raise JudgeError on anything else."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise JudgeError(f"judge answered no JSON object: {text[:120]!r}")
    try:
        data = json.loads(text[start : end + 1])
        output = JudgeOutput.model_validate(data)
    except (json.JSONDecodeError, ValidationError) as exc:
        raise JudgeError(f"judge answered malformed JSON: {exc}") from exc
    if output.task_type not in TASK_TYPES:
        output.task_type = "general"
    output.reason = " ".join(output.reason.split())[:200]
    return output
