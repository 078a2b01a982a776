"""``tandem ask``: stream an answer through the gateway.

The answer goes to stdout as it arrives; the decision and the summary go to
stderr. Exit status: 0 answered, 3 refused, 1 error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from dataclasses import dataclass

from rich.console import Console
from rich.status import Status

from tandem.sdk import (
    AsyncTandemClient,
    ChatTurn,
    Decision,
    RouteEvent,
    SamplingOptions,
    Summary,
    TandemError,
    Text,
    ToolCall,
)
from tandem.security.client import ClientSecurity

EXIT_ANSWERED = 0
EXIT_ERROR = 1
EXIT_REFUSED = 3


@dataclass(frozen=True)
class AskRequest:
    prompt: str
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    as_json: bool = False


def read_prompt(prompt: str) -> str:
    return sys.stdin.read() if prompt == "-" else prompt


async def ask(gateway: str, timeout_s: float, request: AskRequest, security: ClientSecurity) -> int:
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    turns = [ChatTurn("system", request.system)] if request.system else []
    turns.append(ChatTurn("user", request.prompt))
    options = SamplingOptions(
        max_tokens=request.max_tokens, temperature=request.temperature, seed=request.seed
    )
    refused = False
    progress = _Progress(err)
    try:
        async with AsyncTandemClient(
            gateway,
            timeout_s=timeout_s,
            auth=security.auth_hook(),
            credentials=security.credentials,
        ) as client:
            progress.show("screening…")
            try:
                async with contextlib.aclosing(client.route(turns, options)) as events:
                    async for event in events:
                        if not isinstance(event, Decision):
                            progress.hide()
                        if request.as_json:
                            print(_event_json(event), flush=True)
                        elif isinstance(event, Decision):
                            refused = event.refused
                            progress.hide()
                            err.print(_describe_decision(event), style="dim", markup=False)
                            progress.show("waiting for the first token…")
                        elif isinstance(event, Text):
                            sys.stdout.write(event.text)
                            sys.stdout.flush()
                        elif isinstance(event, ToolCall):
                            # tandem ask offers no tools; a model may still name one.
                            err.print(f"[tool call {event.name}({event.arguments})]", markup=False)
                        else:
                            _print_summary(event, refused, err)
            finally:
                progress.hide()
    except TandemError as exc:
        err.print(f"tandem: {exc.code.name}: {exc.message}", style="bold red", markup=False)
        return EXIT_ERROR
    return EXIT_REFUSED if refused else EXIT_ANSWERED


def _event_json(event: RouteEvent) -> str:
    """One JSON line per event: {"decision": {...}}, {"text": "..."}, {"tool_call": {...}}
    or {"summary": {...}}."""
    if isinstance(event, Text):
        return json.dumps({"text": event.text})
    if isinstance(event, ToolCall):
        return json.dumps(
            {"tool_call": {"id": event.id, "name": event.name, "arguments": dict(event.arguments)}}
        )
    kind = "decision" if isinstance(event, Decision) else "summary"
    return json.dumps({kind: dataclasses.asdict(event)})


class _Progress:
    """A spinner on stderr while nothing has arrived yet (only on a terminal)."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._status: Status | None = None

    def show(self, text: str) -> None:
        if self._console.is_terminal and self._status is None:
            self._status = self._console.status(text, spinner="dots")
            self._status.start()

    def hide(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


def _describe_decision(decision: Decision) -> str:
    parts = [f"[tandem] {decision.verdict} by {decision.tier}"]
    if decision.difficulty != "unspecified":
        parts.append(f"difficulty {decision.difficulty}")
    if decision.task_type:
        parts.append(decision.task_type)
    if decision.threats:
        parts.append("threats " + ",".join(decision.threats))
    parts.append(f"{decision.latency_s * 1000:.0f} ms")
    return " · ".join(parts) + (f"\n[tandem] {decision.reason}" if decision.reason else "")


def _print_summary(summary: Summary, refused: bool, err: Console) -> None:
    if refused:
        err.print(summary.message, style="bold yellow", markup=False)
        return
    sys.stdout.write("\n")
    sys.stdout.flush()
    err.print(
        f"[tandem] {summary.usage.completion_tokens} tokens · first token "
        f"{summary.time_to_first_token_s * 1000:.0f} ms · total "
        f"{summary.total_s * 1000:.0f} ms · {summary.finish_reason} · "
        f"{summary.model} on {summary.worker}",
        style="dim",
        markup=False,
    )
