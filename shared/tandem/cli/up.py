"""``tandem up``: a worker and a gateway on this machine, as two processes.

This is what ``make run`` starts. Ctrl-C (or SIGTERM) stops both cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tandem.services import GATEWAY_SERVICE

_STOP_GRACE_S = 15.0


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "tandem.cli.main", *args)


async def _announce_when_ready(gateway: str) -> None:
    async with grpc.aio.insecure_channel(gateway) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                async for reply in stub.Watch(
                    health_pb2.HealthCheckRequest(service=GATEWAY_SERVICE), wait_for_ready=True
                ):
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        print(
                            f"\n  Tandem is ready. Gateway {gateway}. Try:\n"
                            f"    .venv/bin/tandem ask "
                            f'"Write a Python function that reverses a string"\n'
                            f"    grpcurl -plaintext {gateway} list\n"
                            f"  Dashboard (the gateway's --metrics-listen): "
                            f"http://127.0.0.1:9461/dashboard\n"
                            f"  Ctrl-C stops both services.\n",
                            file=sys.stderr,
                            flush=True,
                        )
                        return
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.5)


async def run_local_pair(gateway: str, worker: str, env_file: str | None) -> int:
    common = ["--env-file", env_file] if env_file else []
    worker_proc = await _spawn(*common, "worker", "--listen", worker)
    gateway_proc = await _spawn(*common, "gateway", "--listen", gateway, "--worker", worker)
    processes = (worker_proc, gateway_proc)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    announce = asyncio.create_task(_announce_when_ready(gateway))
    exited = [asyncio.create_task(p.wait()) for p in processes]
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([*exited, stopper], return_when=asyncio.FIRST_COMPLETED)
    announce.cancel()
    # Stop the gateway first so no new work reaches the worker, then the worker.
    for proc in (gateway_proc, worker_proc):
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), _STOP_GRACE_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    stopper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await announce
    codes = [p.returncode for p in processes]
    if stop.is_set():
        print("tandem: stopped worker and gateway", file=sys.stderr)
        return 0
    print(
        f"tandem: a service exited on its own (worker {codes[0]}, gateway {codes[1]})",
        file=sys.stderr,
    )
    return 1
