"""What the relay's own per-token Python steps cost, in CPU microseconds (issue 18).

    .venv/bin/python -m bench.relay_micro [--out bench/results/relay/micro.json]

Each step runs 200,000 times in this process (CPU time, so a busy machine
stretches it little): building and serializing the worker's delta message,
the gateway's parse and rebuild of it as a Route event against re-tagging the
serialized bytes, and one pass-through async-generator layer (what each
interceptor adds per message). Set against the ~150 µs a token costs each hop
(docs/relay-performance.md), they say which ideas are not worth their code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from tandem.v1 import common_pb2, gateway_pb2, worker_pb2

_N = 200_000
_LAYERS = 3


def _cpu_us(step: Callable[[int], None], n: int = _N) -> float:
    started = time.process_time()
    step(n)
    return (time.process_time() - started) / n * 1e6


def _build(n: int) -> None:
    for _ in range(n):
        worker_pb2.GenerateResponse(
            delta=common_pb2.TextDelta(text=" hello", tokens=1)
        ).SerializeToString()


_WIRE = worker_pb2.GenerateResponse(
    delta=common_pb2.TextDelta(text=" hello", tokens=1)
).SerializeToString()


def _rebuild(n: int) -> None:
    for _ in range(n):
        response = worker_pb2.GenerateResponse.FromString(_WIRE)
        if response.WhichOneof("event") == "delta":
            gateway_pb2.RouteResponse(delta=response.delta).SerializeToString()


def _retag(n: int) -> None:
    for _ in range(n):
        if _WIRE[0] == 0x0A:  # GenerateResponse.delta (field 1) → RouteResponse.delta (field 2)
            b"\x12" + _WIRE[1:]


async def _source(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


async def _layer(inner: AsyncIterator[int]) -> AsyncIterator[int]:
    async for item in inner:
        yield item


def _through(layers: int) -> Callable[[int], None]:
    async def drain(n: int) -> None:
        stream = _source(n)
        for _ in range(layers):
            stream = _layer(stream)
        async for _ in stream:
            pass

    return lambda n: asyncio.run(drain(n))


def measure() -> dict[str, float]:
    bare, layered = _cpu_us(_through(0)), _cpu_us(_through(_LAYERS))
    return {
        "worker_build_and_serialize_delta_us": _cpu_us(_build),
        "gateway_parse_rebuild_serialize_us": _cpu_us(_rebuild),
        "gateway_retag_bytes_us": _cpu_us(_retag),
        "async_generator_layer_us": (layered - bare) / _LAYERS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/relay/micro.json"))
    args = parser.parse_args()
    figures = {name: round(value, 3) for name, value in measure().items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"per_call": figures, "calls": _N}, indent=1) + "\n")
    for name, value in figures.items():
        print(f"{name}: {value} µs")


if __name__ == "__main__":
    main()
