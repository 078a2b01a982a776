"""The gateway's HTTP app: /metrics, /health, /dashboard, its assets and its events."""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from tandem_gateway.http.assets import PAGE, load_assets
from tandem_gateway.http.auth import DashboardAuth
from tandem_gateway.http.cluster_json import health_json
from tandem_gateway.http.events import state_events
from tandem_gateway.http.feed import DashboardFeed

# Everything the page loads comes from this listener; nothing from elsewhere.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_EVENT_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def create_app(
    feed: DashboardFeed,
    registry: CollectorRegistry,
    auth: DashboardAuth,
    closing: asyncio.Event,
) -> Starlette:
    assets = load_assets()

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def health(request: Request) -> Response:
        body = health_json(feed.cluster.snapshot())
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    async def page(request: Request) -> Response:
        asset = assets[PAGE]
        return Response(asset.body, media_type=asset.media_type, headers=_PAGE_HEADERS)

    async def asset(request: Request) -> Response:
        found = assets.get(request.path_params["name"])
        if found is None or request.path_params["name"] == PAGE:
            return PlainTextResponse("no such asset\n", status_code=404)
        return Response(found.body, media_type=found.media_type, headers=_PAGE_HEADERS)

    async def events(request: Request) -> Response:
        stream = state_events(feed.state, feed.cluster.changes, closing, feed.sample_s)
        return StreamingResponse(stream, media_type="text/event-stream", headers=_EVENT_HEADERS)

    async def state(request: Request) -> Response:
        return JSONResponse(feed.state(), headers={"Cache-Control": "no-store"})

    return Starlette(
        routes=[
            Route("/metrics", metrics),
            Route("/health", health),
            Route("/dashboard", auth.guard(page)),
            Route("/dashboard/state", auth.guard(state)),
            Route("/dashboard/events", auth.guard(events)),
            Route("/dashboard/assets/{name}", auth.guard(asset)),
        ]
    )
