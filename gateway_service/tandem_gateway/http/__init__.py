"""The gateway's HTTP listener: /metrics, /health (JSON) and the live /dashboard.

One asyncio app (starlette, served by uvicorn) on the gateway's own event loop;
loopback by default (``--metrics-listen``). See docs/dashboard.md.
"""
