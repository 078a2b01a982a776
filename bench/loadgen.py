"""The load generator, a process of its own: one run, its result as JSON in ``--out``.

    python -m bench.loadgen closed --kind gateway --address 127.0.0.1:50051 \\
        --concurrency 32 --warmup-s 0.5 --duration-s 2 --max-tokens 256 --rate 0 --out r.json
    python -m bench.loadgen cancel --kind worker --address ... --standin 127.0.0.1:11500 ...
    python -m bench.loadgen kill --kind gateway --address ... --kill-pid 1234 ...
    python -m bench.loadgen sequence --kind gateway --address ... --requests 3 ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.health_probe import health_of
from bench.kinds import TARGET_KINDS
from bench.load_cancel import CancelSpec, run_cancel
from bench.load_closed import ClosedLoopSpec, run_closed_loop
from bench.load_kill import KillSpec, run_kill
from bench.load_sequence import SequenceSpec, run_sequence
from bench.prompts import BASE_PROMPT

_SETTLE_S = 5.0


def _watch(items: list[str] | None) -> dict[str, int]:
    watched: dict[str, int] = {}
    for item in items or []:
        name, _, pid = item.partition("=")
        watched[name] = int(pid)
    return watched


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.loadgen",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Off by default: grpc.aio on uvloop polls from a thread of its own, which costs
    # the gRPC targets more than it saves and can hang the loop's shutdown.
    parser.add_argument(
        "--uvloop",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="run on uvloop (when installed; HTTP targets only)",
    )
    modes = parser.add_subparsers(dest="mode", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--kind", choices=TARGET_KINDS, required=True)
    common.add_argument("--address", required=True, help="host:port of the target")
    common.add_argument("--out", type=Path, required=True, help="where to write the JSON result")
    common.add_argument(
        "--health",
        action="append",
        default=[],
        metavar="NAME=ADDR=SERVICE",
        help="after the run, report this service's gRPC health (repeatable)",
    )

    closed = modes.add_parser("closed", parents=[common], help="closed-loop load, timed window")
    closed.add_argument("--concurrency", type=int, required=True)
    closed.add_argument("--warmup-s", type=float, default=0.5)
    closed.add_argument("--duration-s", type=float, default=2.0)
    closed.add_argument("--max-tokens", type=int, default=256)
    closed.add_argument("--rate", type=float, default=0.0, help="stand-in tokens/s per stream")
    closed.add_argument(
        "--unique-prompts",
        action="store_true",
        help="every request differs (no verdict cache can answer)",
    )
    closed.add_argument(
        "--watch",
        action="append",
        metavar="NAME=PID",
        help="a process whose CPU and RSS to sample (repeatable)",
    )
    closed.add_argument(
        "--probe-tokens",
        type=int,
        default=0,
        help="also run a probe stream of requests this long (0: none)",
    )

    cancel = modes.add_parser("cancel", parents=[common], help="cancel N streams at once")
    cancel.add_argument("--standin", required=True, help="host:port of the stand-in")
    cancel.add_argument("--concurrency", type=int, required=True)
    cancel.add_argument("--rate", type=float, default=10.0)
    cancel.add_argument("--answer-tokens", type=int, default=60)
    cancel.add_argument("--after-tokens", type=int, default=2)
    cancel.add_argument("--observe-s", type=float, default=3.0)

    kill = modes.add_parser("kill", parents=[common], help="SIGKILL a process mid-stream")
    kill.add_argument("--kill-pid", type=int, required=True)
    kill.add_argument("--concurrency", type=int, default=8)
    kill.add_argument("--rate", type=float, default=20.0)
    kill.add_argument("--answer-tokens", type=int, default=200)
    kill.add_argument("--observe-s", type=float, default=5.0)

    sequence = modes.add_parser("sequence", parents=[common], help="requests one by one")
    sequence.add_argument("--prompt", default=BASE_PROMPT)
    sequence.add_argument("--max-tokens", type=int, default=64)
    sequence.add_argument("--requests", type=int, default=3)
    sequence.add_argument("--timeout-s", type=float, default=120.0)
    sequence.add_argument(
        "--unique-prompts",
        action="store_true",
        help="every request differs (no verdict cache can answer)",
    )
    return parser


def _job(args: argparse.Namespace) -> Callable[[], Awaitable[dict[str, Any]]]:
    if args.mode == "closed":
        spec: Any = ClosedLoopSpec(
            args.kind,
            args.address,
            args.concurrency,
            args.warmup_s,
            args.duration_s,
            args.max_tokens,
            args.rate,
            args.unique_prompts,
            _watch(args.watch),
            args.probe_tokens,
        )
        return lambda: run_closed_loop(spec)
    if args.mode == "cancel":
        spec = CancelSpec(
            args.kind,
            args.address,
            args.standin,
            args.concurrency,
            args.rate,
            args.answer_tokens,
            args.after_tokens,
            args.observe_s,
        )
        return lambda: run_cancel(spec)
    if args.mode == "kill":
        spec = KillSpec(
            args.kind,
            args.address,
            args.concurrency,
            args.rate,
            args.answer_tokens,
            args.kill_pid,
            args.observe_s,
        )
        return lambda: run_kill(spec)
    spec = SequenceSpec(
        args.kind,
        args.address,
        args.prompt,
        args.max_tokens,
        args.requests,
        args.timeout_s,
        args.unique_prompts,
    )
    return lambda: run_sequence(spec)


async def _settled(
    job: Callable[[], Awaitable[dict[str, Any]]], health: list[str]
) -> dict[str, Any]:
    """Run the job and the health checks, then let grpc.aio's own call tasks finish
    (bounded): cancelling them at interpreter exit instead can hang the shutdown,
    joining grpc's poller thread."""
    result = await job()
    result["health"] = await health_of(health)
    deadline = time.monotonic() + _SETTLE_S
    me = asyncio.current_task()
    while time.monotonic() < deadline:
        if not [task for task in asyncio.all_tasks() if task is not me]:
            break
        await asyncio.sleep(0.01)
    return result


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    job = _job(args)
    runner: Callable[[Any], Any] = asyncio.run
    if args.uvloop:
        with contextlib.suppress(ImportError):
            import uvloop  # noqa: PLC0415 - optional speed-up

            runner = uvloop.run
    result = runner(_settled(job, args.health))
    result["loop"] = "uvloop" if runner is not asyncio.run else "asyncio"
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
