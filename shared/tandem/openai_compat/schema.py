"""The OpenAI chat-completions request, validated, and its mapping to a Route.

Unknown fields are ignored, as OpenAI-compatible servers usually do; fields
that would change the meaning of the answer and that Tandem cannot honour
(tools, JSON mode, several choices, images) are refused with a 400 naming them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tandem.sdk import ChatTurn, SamplingOptions

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

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


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
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    response_format: dict[str, Any] | None = None

    def check_supported(self) -> None:
        if self.n not in (None, 1):
            raise UnsupportedRequest("n", "Tandem returns one choice; n must be 1")
        if self.tools or self.functions:
            raise UnsupportedRequest(
                "tools" if self.tools else "functions", "Tandem models do not call tools"
            )
        if self.response_format and self.response_format.get("type", "text") != "text":
            raise UnsupportedRequest(
                "response_format", "Tandem has no JSON mode; only response_format text"
            )

    def turns(self) -> list[ChatTurn]:
        """Index for index the request's messages, so a gateway error's field
        (``messages[2].content``) names the same message in the request."""
        return [
            ChatTurn(_ROLES[message.role], _text(message.content, index))
            for index, message in enumerate(self.messages)
        ]

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
