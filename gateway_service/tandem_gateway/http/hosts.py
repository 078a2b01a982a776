"""DNS rebinding guard: a listener on loopback answers only requests addressed to
loopback, so a web page elsewhere cannot read the dashboard through a browser on
the same Mac by pointing its own host name at 127.0.0.1."""

from __future__ import annotations

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tandem.security.server import is_loopback


def host_name(header: str) -> str:
    """``[::1]:9461`` → ``::1``, ``localhost:9461`` → ``localhost``."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


class LoopbackHostOnly:
    """Refuses (400) HTTP requests whose Host header is not a loopback name."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            host = headers.get(b"host", b"").decode("latin-1")
            if not is_loopback(host_name(host)):
                response = PlainTextResponse(
                    "this listener only answers requests addressed to 127.0.0.1 / localhost\n",
                    status_code=400,
                )
                await response(scope, receive, send)
                return
        await self._app(scope, receive, send)
