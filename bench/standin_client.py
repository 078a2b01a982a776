"""Ask the stand-in what it saw: per-stream disconnect times and its counters."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from bench.http_client import HttpConnection, HttpError


class StandinClient:
    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self._connection = HttpConnection(host, int(port))

    async def _get(self, path: str) -> dict[str, Any]:
        data = json.loads(await self._connection.get_json_bytes(path))
        if not isinstance(data, dict):
            raise HttpError(f"{path}: not a JSON object")
        return data

    async def record(self, bench_id: str) -> dict[str, Any]:
        return await self._get(f"/bench/disconnect/{bench_id}")

    async def stats(self) -> dict[str, Any]:
        return await self._get("/bench/stats")

    async def disconnect_times(
        self, bench_ids: list[str], timeout_s: float, poll_s: float = 0.02
    ) -> dict[str, dict[str, Any]]:
        """Each id's record, waiting (up to ``timeout_s`` in all) until each stream ended."""
        deadline = time.monotonic() + timeout_s
        ended: dict[str, dict[str, Any]] = {}
        pending = list(bench_ids)
        while pending:
            still: list[str] = []
            for bench_id in pending:
                record = await self.record(bench_id)
                if record.get("disconnected_at") is not None or record.get("completed_at"):
                    ended[bench_id] = record
                else:
                    still.append(bench_id)
            pending = still
            if not pending or time.monotonic() >= deadline:
                break
            await asyncio.sleep(poll_s)
        for bench_id in pending:
            ended[bench_id] = {
                "id": bench_id,
                "seen": True,
                "disconnected_at": None,
                "completed_at": None,
            }
        return ended

    async def wait_quiet(self, timeout_s: float, poll_s: float = 0.05) -> bool:
        """True once every stream the stand-in started has ended (completed or hung up)."""
        deadline = time.monotonic() + timeout_s
        while True:
            stats = await self.stats()
            if stats["streams_started"] <= stats["streams_completed"] + stats["disconnects"]:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(poll_s)

    def close(self) -> None:
        self._connection.close()
