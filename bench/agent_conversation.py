"""The agent conversation the agent suite plays: 20 turns, tool results of 2-8 KB.

Runs in Tandem's environment (it speaks tandem.v1 gRPC) against a running
gateway whose judge and worker are the judge-mode stand-in, and writes one row
per turn: the judge's prompt tokens (all, cached, new), its output tokens, the
time to first token through the gateway, and the time added to it (TTFT less
the worker's own modelled prompt reading, which an unguarded request pays too).

    .venv/bin/python -m bench.agent_conversation --gateway H:P --standin URL --out F
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import urllib.request
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import struct_pb2

from tandem.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

SYSTEM = (
    "You are a careful coding agent working in the user's repository. Use the tools to "
    "read files and run commands; explain what you change. "
) * 8
TASK = "The test suite fails on the parser module. Find out why and fix it."
# Tool-result sizes in KB, one per turn from turn 2: drawn in 2-8 KB, except that
# turns 2 and 20 get the same size, so the two are compared on equal new content.
_FIXED_KB = 5


def result_sizes(turns: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    sizes = [rng.randint(2, 8) for _ in range(turns)]
    sizes[0] = 0  # turn 1: the task alone
    if turns >= 2:
        sizes[1] = _FIXED_KB
        sizes[-1] = _FIXED_KB
    return sizes


def source_text(kb: int, turn: int) -> str:
    """Plausible file content: code and log lines (benign, with 'password' and 'ignore')."""
    lines: list[str] = []
    i = 0
    while sum(len(line) + 1 for line in lines) < kb * 1024:
        lines += [
            f"def parse_field_{turn}_{i}(tokens, *, strict=False):",
            f"    # ignore blank tokens; field {i} of record type {turn}",
            "    value = tokens.pop(0) if tokens else None",
            "    if strict and value is None: raise ParseError('missing password field')",
            f"2026-12-06T04:{i % 60:02d}:{turn:02d} WARN parser: retry {i} (ignore_errors=False)",
            "",
        ]
        i += 1
    return "\n".join(lines)


def conversation(turn: int, sizes: list[int], tag: str) -> list[common_pb2.ChatMessage]:
    messages = [
        common_pb2.ChatMessage(role=common_pb2.ROLE_SYSTEM, content=f"[{tag}] {SYSTEM}"),
        common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=TASK),
    ]
    for t in range(2, turn + 1):
        call_id = f"call_{t}"
        arguments = struct_pb2.Struct()
        arguments.update({"path": f"src/parser/part_{t}.py"})
        messages.append(
            common_pb2.ChatMessage(
                role=common_pb2.ROLE_ASSISTANT,
                tool_calls=[common_pb2.ToolCall(id=call_id, name="read_file", arguments=arguments)],
            )
        )
        messages.append(
            common_pb2.ChatMessage(
                role=common_pb2.ROLE_TOOL,
                content=source_text(sizes[t - 1], t),
                tool_call_id=call_id,
                tool_name="read_file",
            )
        )
    return messages


def model_calls(standin: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{standin}/bench/model-calls", timeout=10) as response:  # noqa: S310
        calls: list[dict[str, Any]] = json.loads(response.read())["calls"]
    return calls


async def play(gateway: str, standin: str, turns: int, seed: int, tag: str) -> list[dict[str, Any]]:
    sizes = result_sizes(turns, seed)
    rows: list[dict[str, Any]] = []
    async with grpc.aio.insecure_channel(gateway) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        for turn in range(1, turns + 1):
            before = len(model_calls(standin))
            request = gateway_pb2.RouteRequest(
                messages=conversation(turn, sizes, tag),
                options=common_pb2.GenerationOptions(max_tokens=8),
            )
            started = time.monotonic()
            ttft: float | None = None
            decision: gateway_pb2.Decision | None = None
            async for event in stub.Route(request, timeout=600):
                kind = event.WhichOneof("event")
                if kind == "decision":
                    decision = event.decision
                elif kind == "delta" and ttft is None:
                    ttft = time.monotonic() - started
            calls = model_calls(standin)[before:]
            judge = [c for c in calls if c["kind"] == "judge"]
            worker_prompt_s = sum(c["prompt_s"] for c in calls if c["kind"] == "worker")
            assert decision is not None
            rows.append(
                {
                    "turn": turn,
                    "new_tool_result_kb": sizes[turn - 1],
                    "conversation_chars": sum(len(m.content) for m in request.messages),
                    "verdict": gateway_pb2.Verdict.Name(decision.verdict),
                    "tier": gateway_pb2.DecisionTier.Name(decision.tier),
                    "judge_calls": len(judge),
                    "judge_prompt_tokens": sum(c["prompt_tokens"] for c in judge),
                    "judge_cached_tokens": sum(c["cached_tokens"] for c in judge),
                    "judge_new_tokens": sum(c["prompt_tokens"] - c["cached_tokens"] for c in judge),
                    "judge_output_tokens": sum(c["output_tokens"] for c in judge),
                    "judge_modelled_s": sum(c["prompt_s"] + c["output_s"] for c in judge),
                    "worker_prompt_s": worker_prompt_s,
                    "ttft_s": ttft,
                    "added_ttft_s": None if ttft is None else max(0.0, ttft - worker_prompt_s),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.agent_conversation", description=__doc__)
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--standin", required=True, help="the stand-in's base URL")
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--tag", default="agent")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    rows = asyncio.run(play(args.gateway, args.standin, args.turns, args.seed, args.tag))
    args.out.write_text(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
