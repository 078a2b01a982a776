"""Typed tool definitions, tool choice and structured output for a Route.

    from tandem.sdk import ResponseFormat, ToolChoice, tool_from_function

    def get_weather(city: str, days: int = 1) -> str:
        '''The forecast for a city.'''

    answer = client.ask("Weather in Paris?", tools=[tool_from_function(get_weather)])
    for call in answer.tool_calls:          # ToolCall(id, name, arguments)
        ...

A JSON schema works as well (``ToolDefinition(name, description, schema)``), and
so does a pydantic model (``tool_from_model``). ``response_format`` takes
``ResponseFormat.json()``, ``ResponseFormat.json_schema(schema)`` or a pydantic
model class (its JSON schema).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

from pydantic import BaseModel, TypeAdapter

from tandem.backends.base import ChatRequest, ResponseFormat, ToolChoice, ToolDefinition

__all__ = [
    "FormatSpec",
    "ToolChoiceSpec",
    "chat_request",
    "response_format_of",
    "tool_choice_of",
    "tool_from_function",
    "tool_from_model",
]

# "auto" / "none" / "required", a function name, or a ToolChoice.
ToolChoiceSpec: TypeAlias = ToolChoice | str | None
# A ResponseFormat, "json", a JSON schema mapping, or a pydantic model class.
FormatSpec: TypeAlias = ResponseFormat | str | Mapping[str, Any] | type[BaseModel] | None

_MODES = frozenset({"auto", "none", "required"})


def tool_from_function(function: Callable[..., Any], *, name: str | None = None) -> ToolDefinition:
    """A tool from a Python function: its name, its docstring, its typed parameters."""
    schema = TypeAdapter(function).json_schema()  # type: ignore[call-overload,arg-type,unused-ignore]
    return ToolDefinition(
        name or function.__name__, inspect.getdoc(function) or "", _object_schema(schema)
    )


def tool_from_model(
    model: type[BaseModel], *, name: str | None = None, description: str | None = None
) -> ToolDefinition:
    """A tool whose arguments are a pydantic model's fields."""
    return ToolDefinition(
        name or model.__name__,
        description if description is not None else inspect.getdoc(model) or "",
        _object_schema(model.model_json_schema()),
    )


def tool_choice_of(choice: ToolChoiceSpec) -> ToolChoice:
    if choice is None:
        return ToolChoice()
    if isinstance(choice, ToolChoice):
        return choice
    return ToolChoice(choice) if choice in _MODES else ToolChoice.named(choice)  # type: ignore[arg-type]


def response_format_of(spec: FormatSpec) -> ResponseFormat:
    if spec is None:
        return ResponseFormat()
    if isinstance(spec, ResponseFormat):
        return spec
    if isinstance(spec, str):
        if spec not in ("text", "json"):
            raise ValueError(f"response_format {spec!r}: use 'text', 'json' or a schema")
        return ResponseFormat(spec)  # type: ignore[arg-type]
    if isinstance(spec, type) and issubclass(spec, BaseModel):
        return ResponseFormat.json_schema(spec.model_json_schema(), spec.__name__)
    return ResponseFormat.json_schema(dict(spec))


def chat_request(
    tools: Sequence[ToolDefinition | Callable[..., Any]] = (),
    tool_choice: ToolChoiceSpec = None,
    response_format: FormatSpec = None,
    model: str | None = None,
) -> ChatRequest:
    """What ``route()``/``ask()`` send beside the conversation; plain functions
    among ``tools`` are turned into definitions."""
    return ChatRequest(
        tools=tuple(
            tool if isinstance(tool, ToolDefinition) else tool_from_function(tool) for tool in tools
        ),
        tool_choice=tool_choice_of(tool_choice),
        response_format=response_format_of(response_format),
        model=model or None,
    )


def _object_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """pydantic writes ``title`` at the top; the name already says it."""
    schema = dict(schema)
    schema.pop("title", None)
    schema.setdefault("type", "object")
    return schema
