"""Tokens for the dashboard, checked with the gateway's own TokenTable.

With authentication off (no tokens) every page is open, as the loopback gRPC port
is. With it on, ``/dashboard*`` needs a token whose scopes allow watching the
cluster status (``status``, ``gateway`` or ``*``): ``Authorization: Bearer <token>``,
or for a browser ``/dashboard?token=<token>`` once, which sets an HttpOnly,
SameSite=Strict cookie and redirects to the same page without the token in its URL.
``/health`` and ``/metrics`` stay open, like gRPC health.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from tandem.security.tokens import (
    AUTHORIZATION_KEY,
    GATEWAY_SERVICE,
    Principal,
    TokenTable,
    bearer_token,
)

COOKIE = "tandem_dashboard"
COOKIE_PATH = "/dashboard"
# The gRPC method whose permission the dashboard needs: it shows the same picture.
STATUS_METHOD = f"/{GATEWAY_SERVICE}/WatchClusterStatus"
_TOKEN_PARAM = "token"

Endpoint = Callable[[Request], Awaitable[Response]]


class DashboardAuth:
    """Who may open the dashboard; ``tokens`` None means authentication is off."""

    def __init__(self, tokens: TokenTable | None) -> None:
        self._tokens = tokens

    def _principal(self, token: str | None) -> Principal | None:
        if self._tokens is None or not token:
            return None
        return self._tokens.authenticate(token)

    def _presented(self, request: Request) -> str | None:
        header = request.headers.get(AUTHORIZATION_KEY)
        if header is not None:
            return bearer_token([(AUTHORIZATION_KEY, header)])
        return request.cookies.get(COOKIE)

    def guard(self, endpoint: Endpoint) -> Endpoint:
        """``endpoint`` behind the token check (a no-op with authentication off)."""

        async def guarded(request: Request) -> Response:
            if self._tokens is None:
                return await endpoint(request)
            query_token = request.query_params.get(_TOKEN_PARAM)
            if query_token is not None:
                return self._exchange(request, query_token)
            principal = self._principal(self._presented(request))
            if principal is None:
                return _refused(
                    401,
                    "authentication required: open /dashboard?token=<token> once, or send "
                    "'Authorization: Bearer <token>' (a token with the 'status' scope)",
                )
            if not principal.may_call(STATUS_METHOD):
                return _refused(403, f"token {principal.name!r} lacks the 'status' scope")
            return await endpoint(request)

        return guarded

    def _exchange(self, request: Request, token: str) -> Response:
        """A valid ``?token=`` becomes a cookie; the redirect drops it from the URL."""
        principal = self._principal(token)
        if principal is None:
            return _refused(401, "that token is not accepted")
        if not principal.may_call(STATUS_METHOD):
            return _refused(403, f"token {principal.name!r} lacks the 'status' scope")
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != _TOKEN_PARAM]
        target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE, token, path=COOKIE_PATH, httponly=True, samesite="strict", secure=False
        )
        response.headers["Referrer-Policy"] = "no-referrer"
        return response


def _refused(status: int, message: str) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="tandem"'} if status == 401 else {}
    return PlainTextResponse(message + "\n", status_code=status, headers=headers)
