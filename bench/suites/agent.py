"""Agent conversations (issue 14): the judge's cost per turn of a growing conversation.

A 20-turn agent conversation (system prompt, task, then a tool call and a 2-8 KB
tool result per turn) through a gateway whose judge is the judge-mode stand-in:
llama3.1:8b's published MacBook figures by default (prompt 225 tokens/s and output
20 tokens/s, the M4 base end of the 225-700 / 20-50 range; prefix reuse modelled).
Played on fresh services with speculative dispatch off (the default); on, with the
worker's first token at once (nothing for the judge to hide behind); and on, with the
worker's prompt reading modelled at an ASSUMED rate (no published figure for
qwen3-coder-next on the Mac Mini is used here; the rate is a parameter). Then again
at the fast end of the published range (700 and 50 tokens/s, M3 Max), off and on
with the modelled worker.

    make bench BENCH_ARGS="--suite agent"
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from dataclasses import dataclass
from typing import Any

from bench.procs import get_json
from bench.stack import Stack, Tools

_TIMEOUT_S = 1800.0


@dataclass(frozen=True)  # no slots: bench/__main__ reads the defaults off the class
class AgentBenchOptions:
    turns: int = 20
    judge_prompt_tps: float = 225.0
    judge_output_tps: float = 20.0
    assumed_worker_prompt_tps: float = 300.0
    fast_judge_prompt_tps: float = 700.0  # the fast end of the published range (M3 Max)
    fast_judge_output_tps: float = 50.0
    quick: bool = False  # a smoke run: 2 turns at 20x the rates, off and on only


def run_agent(tools: Tools, log: Any, options: AgentBenchOptions, scratch: Any) -> dict[str, Any]:
    modelled = ("speculative_on_worker_prompt_modelled", True, options.assumed_worker_prompt_tps)
    figures = (
        (
            "published_slow_end",
            options.judge_prompt_tps,
            options.judge_output_tps,
            (("speculative_off", False, 0.0), ("speculative_on", True, 0.0), modelled),
        ),
        (
            "published_fast_end",
            options.fast_judge_prompt_tps,
            options.fast_judge_output_tps,
            (("speculative_off", False, 0.0), modelled),
        ),
    )
    if options.quick:  # the shape of the run only; its numbers mean nothing
        figures = (
            (
                "quick_smoke",
                options.judge_prompt_tps * 20,
                options.judge_output_tps * 20,
                (("speculative_off", False, 0.0), modelled),
            ),
        )
    result: dict[str, Any] = {
        "assumed_worker_prompt_tps": options.assumed_worker_prompt_tps,
        "turns": options.turns,
        "figures": {},
    }
    for figure, prompt_tps, output_tps, modes in figures:
        runs: dict[str, Any] = {}
        for name, speculative, worker_tps in modes:
            log(f"  agent: judge at {prompt_tps:g}/{output_tps:g} tokens/s, {name}")
            rows = _play(
                tools,
                options.turns,
                (prompt_tps, output_tps, worker_tps),
                scratch,
                f"{figure}-{name}",
                speculative,
            )
            runs[name] = {"rows": rows, **_summary(rows)}
        result["figures"][figure] = {
            "judge_prompt_tps": prompt_tps,
            "judge_output_tps": output_tps,
            "modes": runs,
        }
    return result


def _play(
    tools: Tools,
    turns: int,
    rates: tuple[float, float, float],
    scratch: Any,
    name: str,
    speculative: bool,
) -> list[dict[str, Any]]:
    stack = Stack(tools)
    try:
        standin = stack.standin(
            f"agent-standin-{name}",
            answer_tokens=8,
            extra=(
                "--judge-prompt-tps",
                str(rates[0]),
                "--judge-output-tps",
                str(rates[1]),
                "--worker-prompt-tps",
                str(rates[2]),
            ),
        )
        worker = stack.worker(f"agent-worker-{name}", standin.url)
        flag = "--speculative-dispatch" if speculative else "--no-speculative-dispatch"
        gateway = stack.gateway(
            f"agent-gateway-{name}",
            worker.address,
            standin.url,
            extra=(flag, "--judge-timeout-s", "600"),
        )
        get_json(f"{standin.url}/bench/model-calls")  # reachable before the first turn
        scratch.mkdir(parents=True, exist_ok=True)
        out = scratch / f"agent-{name}.json"
        done = subprocess.run(  # noqa: S603 - our own argv
            [
                tools.tandem_python,
                "-m",
                "bench.agent_conversation",
                "--gateway",
                gateway.address,
                "--standin",
                standin.url,
                "--turns",
                str(turns),
                "--tag",
                name,
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            cwd=tools.repo,
            timeout=_TIMEOUT_S,
            env={**os.environ, **tools.bench_env()},
            check=False,
        )
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(
                f"agent conversation failed ({done.returncode}): {done.stderr[-2000:]}"
            )
        rows: list[dict[str, Any]] = json.loads(out.read_text())
        out.unlink()
        return rows
    finally:
        stack.close()


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by_turn = {row["turn"]: row for row in rows}
    added = [
        row["added_ttft_s"]
        for row in rows
        if row["verdict"] == "VERDICT_ALLOW" and row["added_ttft_s"] is not None
    ]
    summary: dict[str, Any] = {
        "refused_turns": [row["turn"] for row in rows if row["verdict"] != "VERDICT_ALLOW"],
        "added_ttft_p50_ms": statistics.median(added) * 1000 if added else None,
        "judge_prompt_tokens_max": max(row["judge_prompt_tokens"] for row in rows),
        "judge_new_tokens_max": max(row["judge_new_tokens"] for row in rows),
    }
    first, last = by_turn.get(2), by_turn.get(max(by_turn))
    if first and last and first["added_ttft_s"] and last["added_ttft_s"] is not None:
        ratio = last["added_ttft_s"] / first["added_ttft_s"]
        summary["last_over_turn2_added"] = ratio
        summary["goal_last_within_1_5x_turn2"] = ratio <= 1.5
    return summary


def table(result: dict[str, Any]) -> str:
    """The per-turn tables (markdown), one per judge figure."""
    parts = []
    for figure, runs in result["figures"].items():
        parts.append(
            f"### Judge at {runs['judge_prompt_tps']:g} prompt / "
            f"{runs['judge_output_tps']:g} output tokens/s ({figure}); modelled worker "
            f"prompt reading: {result['assumed_worker_prompt_tps']:g} tokens/s "
            "(an assumption)\n"
        )
        parts.append(_figure_table(runs["modes"]))
        for name, run in runs["modes"].items():
            summary = {k: v for k, v in run.items() if k != "rows"}
            parts.append(f"- {name}: {json.dumps(summary)}")
        parts.append("")
    return "\n".join(parts)


def _figure_table(modes: dict[str, Any]) -> str:
    names = list(modes)
    head = (
        "| turn | new KB | conversation chars | judge calls | judge prompt tok (new) | "
        "judge output tok | " + " | ".join(f"added TTFT ms: {n}" for n in names) + " |"
    )
    lines = [head, "|" + "---|" * (6 + len(names))]
    base = modes[names[0]]["rows"]
    for index, row in enumerate(base):
        cells = [
            str(row["turn"]),
            str(row["new_tool_result_kb"]),
            str(row["conversation_chars"]),
            str(row["judge_calls"]),
            f"{row['judge_prompt_tokens']} ({row['judge_new_tokens']})",
            str(row["judge_output_tokens"]),
        ]
        for name in names:
            added = modes[name]["rows"][index]["added_ttft_s"]
            cells.append("-" if added is None else f"{added * 1000:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
