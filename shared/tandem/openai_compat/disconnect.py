"""Cancel a request's work the moment its HTTP client goes away.

Starlette only notices a vanished client when it next writes to it; a
completion waiting for its first token writes nothing for a long time. Here the
ASGI ``receive`` channel is watched instead, so the Route is cancelled at once,
and with it the worker's generation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from starlette.types import Receive


async def run_until_disconnected(receive: Receive, work: Coroutine[Any, Any, None]) -> bool:
    """Run ``work``; cancel it if the client disconnects first.

    Call only after the request body was read. Returns False when the client
    left, True when the work finished; the work's own exception propagates.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        task.cancel()  # a no-op when it finished; otherwise the client left (or we are stopping)
        await asyncio.wait({task, watcher})
    if task.cancelled():
        return False
    task.result()
    return True


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
