"""The floor a Python relay hop costs per token: each hop with nothing of Tandem's (issue 18).

    .venv/bin/python -m bench.floor worker --listen 127.0.0.1:52000 --ollama-url http://127.0.0.1:11500
    .venv/bin/python -m bench.floor gateway --listen 127.0.0.1:52001 --worker 127.0.0.1:52000

``worker`` serves ``WorkerService/Generate`` as plainly as grpc.aio and httpx
allow: one Ollama ``/api/chat`` stream per call (through the worker's own
``AsyncioHTTPTransport``), each NDJSON line decoded and yielded as one delta,
a summary at the end. ``gateway`` serves ``GatewayService/Route``: an allow
decision, then the worker's deltas re-wrapped one by one, then a summary. No
interceptors, admission, guard, pool, metrics or validation: run under
``bench.loadgen`` with ``--watch`` beside the real ``tandem worker`` /
``tandem gateway`` on the same load, the difference is what Tandem's own code
costs per token, and the floor is what grpc.aio + httpx cost
(docs/relay-performance.md, "The floor").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import grpc
import httpx

from tandem.backends.asyncio_transport import AsyncioHTTPTransport
from tandem.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc, worker_pb2, worker_pb2_grpc

_MODEL = "qwen3-coder-next"


class FloorWorker(worker_pb2_grpc.WorkerServiceServicer):
    """Ollama's stream as Generate responses, one per line, nothing else."""

    def __init__(self, ollama: httpx.AsyncClient) -> None:
        self._ollama = ollama

    async def Generate(  # noqa: N802 - the gRPC method's name
        self, request: worker_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[worker_pb2.GenerateResponse]:
        body = {
            "model": _MODEL,
            "messages": [{"role": "user", "content": m.content} for m in request.messages],
            "stream": True,
            "options": {"num_predict": request.options.max_tokens},
        }
        async with self._ollama.stream("POST", "/api/chat", json=body) as response:
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                chunk = json.loads(line)
                content = (chunk.get("message") or {}).get("content")
                if content:
                    delta = common_pb2.TextDelta(text=content, tokens=1)
                    yield worker_pb2.GenerateResponse(delta=delta)
                if chunk.get("done"):
                    summary = worker_pb2.GenerateSummary(model=_MODEL)
                    yield worker_pb2.GenerateResponse(summary=summary)


class FloorGateway(gateway_pb2_grpc.GatewayServiceServicer):
    """A decision, then one worker's Generate stream as Route events, nothing else."""

    def __init__(self, worker: worker_pb2_grpc.WorkerServiceStub) -> None:
        self._worker = worker

    async def Route(  # noqa: N802 - the gRPC method's name
        self, request: gateway_pb2.RouteRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gateway_pb2.RouteResponse]:
        decision = gateway_pb2.Decision(verdict=gateway_pb2.VERDICT_ALLOW)
        yield gateway_pb2.RouteResponse(decision=decision)
        ask = worker_pb2.GenerateRequest(messages=request.messages, options=request.options)
        call = self._worker.Generate(ask)
        try:
            async for response in call:
                kind = response.WhichOneof("event")
                if kind == "delta":
                    yield gateway_pb2.RouteResponse(delta=response.delta)
                elif kind == "summary":
                    summary = gateway_pb2.RouteSummary(usage=response.summary.usage)
                    yield gateway_pb2.RouteResponse(summary=summary)
        finally:
            call.cancel()


async def _serve(args: argparse.Namespace) -> None:
    server = grpc.aio.server()
    async with contextlib.AsyncExitStack() as resources:
        if args.role == "worker":
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
            transport = AsyncioHTTPTransport(limits=limits)
            ollama = httpx.AsyncClient(base_url=args.ollama_url, transport=transport, timeout=None)
            await resources.enter_async_context(ollama)
            worker_pb2_grpc.add_WorkerServiceServicer_to_server(FloorWorker(ollama), server)
        else:
            channel = await resources.enter_async_context(grpc.aio.insecure_channel(args.worker))
            stub = worker_pb2_grpc.WorkerServiceStub(channel)
            gateway_pb2_grpc.add_GatewayServiceServicer_to_server(FloorGateway(stub), server)
        server.add_insecure_port(args.listen)
        await server.start()
        print(f"floor {args.role} serving on {args.listen}", flush=True)
        await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.floor", description=__doc__.split("\n")[0]
    )
    roles = parser.add_subparsers(dest="role", required=True)
    worker = roles.add_parser("worker", help="Generate over an Ollama URL, nothing else")
    worker.add_argument("--listen", required=True)
    worker.add_argument("--ollama-url", required=True)
    gateway = roles.add_parser("gateway", help="Route over one worker, nothing else")
    gateway.add_argument("--listen", required=True)
    gateway.add_argument("--worker", required=True)
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
