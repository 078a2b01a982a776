"""Judges: the guard's last tier, behind one Protocol.

A judge reads one window of one message and answers a ``JudgeOutput``. Its
``version`` goes into every cached verdict's key, so a different judge (or
prompt) never reuses another's verdicts. ``LlmJudge`` asks a chat model over
the judge backend (llama3.1:8b on Ollama, or the embedded model);
``NoJudge`` is the judge of a gateway where the classifier decides, and is
never called. A second judge backend is one more class here.
"""

from __future__ import annotations

import contextlib
import json
from typing import Literal, Protocol

from pydantic import BaseModel, Field, ValidationError

from tandem.backends import ChatBackend, ChatRequest, Delta, ResponseFormat, SamplingOptions
from tandem_gateway.guard.decision import DifficultyName, ThreatName
from tandem_gateway.guard.judge_prompt import (
    PROMPT_VERSION,
    TASK_TYPES,
    JudgeWindow,
    judge_messages,
)

JUDGE_SEED = 42
# The longest answer the schemas allow is about 60 tokens; this caps a runaway.
JUDGE_MAX_TOKENS = 96


class JudgeError(Exception):
    """The judge answered something unusable."""


class JudgeOutput(BaseModel):
    verdict: Literal["allow", "refuse"]
    threats: list[ThreatName] = Field(default_factory=list)
    difficulty: DifficultyName | None = None  # only asked of a user's request
    task_type: str = "general"
    reason: str = ""


class Judge(Protocol):
    """Screens one window; raises JudgeError (or a BackendError) when it cannot."""

    @property
    def version(self) -> str: ...

    @property
    def in_use(self) -> bool:
        """False: the guard never calls it (the classifier decides)."""
        ...

    async def judge(self, window: JudgeWindow) -> JudgeOutput: ...


class LlmJudge:
    """One schema-constrained call to a chat model per window."""

    in_use = True

    def __init__(self, backend: ChatBackend) -> None:
        self.backend = backend

    @property
    def version(self) -> str:
        return f"llm:{self.backend.model}:{PROMPT_VERSION}"

    async def judge(self, window: JudgeWindow) -> JudgeOutput:
        options = SamplingOptions(max_tokens=JUDGE_MAX_TOKENS, temperature=0.0, seed=JUDGE_SEED)
        pieces: list[str] = []
        request = ChatRequest(response_format=ResponseFormat.json_schema(window.schema))
        events = self.backend.chat_stream(judge_messages(window), options, request)
        async with contextlib.aclosing(events):
            async for event in events:
                if isinstance(event, Delta):
                    pieces.append(event.text)
        return parse_judge_output("".join(pieces))


class NoJudge:
    """The judge of a classifier-only gateway: never called."""

    in_use = False
    version = "no-judge"

    async def judge(self, window: JudgeWindow) -> JudgeOutput:
        raise JudgeError("no judge is configured on this gateway")


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
    output.reason = " ".join(output.reason.split())[:120]
    return output
