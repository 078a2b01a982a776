"""``tandem ask``: stream an answer through the gateway.

The answer goes to stdout as it arrives; the decision and the summary go to
stderr. Exit status: 0 answered, 3 refused, 1 error.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import grpc
from google.protobuf import json_format
from rich.console import Console
from rich.status import Status

from tandem.backends.base import ChatTurn
from tandem.client import GatewayClient
from tandem.v1 import common_pb2, gateway_pb2

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


async def ask(gateway: str, timeout_s: float, request: AskRequest) -> int:
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    turns = [ChatTurn("system", request.system)] if request.system else []
    turns.append(ChatTurn("user", request.prompt))
    options = common_pb2.GenerationOptions(
        max_tokens=request.max_tokens, temperature=request.temperature, seed=request.seed
    )
    refused = False
    progress = _Progress(err)
    try:
        async with GatewayClient(gateway, timeout_s=timeout_s) as client:
            progress.show("screening…")
            try:
                async for event in client.route(turns, options):
                    kind = event.WhichOneof("event")
                    if kind != "decision":
                        progress.hide()
                    if request.as_json:
                        print(json_format.MessageToJson(event, indent=None), flush=True)
                    elif kind == "decision":
                        refused = event.decision.verdict == gateway_pb2.VERDICT_REFUSE
                        progress.hide()
                        err.print(_describe_decision(event.decision), style="dim", markup=False)
                        progress.show("waiting for the first token…")
                    elif kind == "delta":
                        sys.stdout.write(event.delta.text)
                        sys.stdout.flush()
                    elif kind == "summary":
                        _print_summary(event.summary, refused, err)
            finally:
                progress.hide()
    except grpc.aio.AioRpcError as exc:
        err.print(f"tandem: {exc.code().name}: {exc.details()}", style="bold red", markup=False)
        return EXIT_ERROR
    return EXIT_REFUSED if refused else EXIT_ANSWERED


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


def _describe_decision(decision: gateway_pb2.Decision) -> str:
    verdict = gateway_pb2.Verdict.Name(decision.verdict).removeprefix("VERDICT_").lower()
    tier = gateway_pb2.DecisionTier.Name(decision.tier).removeprefix("DECISION_TIER_").lower()
    parts = [f"[tandem] {verdict} by {tier}"]
    if decision.difficulty:
        parts.append(
            "difficulty " + gateway_pb2.Difficulty.Name(decision.difficulty).removeprefix("DIFFICULTY_").lower()
        )
    if decision.task_type:
        parts.append(decision.task_type)
    if decision.threats:
        parts.append(
            "threats "
            + ",".join(
                gateway_pb2.ThreatCategory.Name(t).removeprefix("THREAT_CATEGORY_").lower()
                for t in decision.threats
            )
        )
    parts.append(f"{decision.latency.ToMilliseconds()} ms")
    return " · ".join(parts) + (f"\n[tandem] {decision.reason}" if decision.reason else "")


def _print_summary(summary: gateway_pb2.RouteSummary, refused: bool, err: Console) -> None:
    if refused:
        err.print(summary.message, style="bold yellow", markup=False)
        return
    sys.stdout.write("\n")
    sys.stdout.flush()
    finish = common_pb2.FinishReason.Name(summary.finish_reason).removeprefix("FINISH_REASON_").lower()
    err.print(
        f"[tandem] {summary.usage.completion_tokens} tokens · first token "
        f"{summary.timings.time_to_first_token.ToMilliseconds()} ms · total "
        f"{summary.timings.total.ToMilliseconds()} ms · {finish} · {summary.model} on {summary.worker}",
        style="dim",
        markup=False,
    )
