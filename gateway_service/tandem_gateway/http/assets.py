"""The dashboard's files, shipped in tandem_gateway/dashboard and served by the gateway
itself (the Macs may have no internet): a fixed list read once, no path from a URL."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
PAGE = "index.html"
ASSETS = ("dashboard.css", "dashboard.js", "charts.js", "icon.svg")


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str


def load_assets() -> dict[str, Asset]:
    """Every dashboard file by name, the page included."""
    folder = resources.files("tandem_gateway") / "dashboard"
    loaded = {}
    for name in (PAGE, *ASSETS):
        suffix = name[name.rindex(".") :]
        loaded[name] = Asset((folder / name).read_bytes(), _TYPES[suffix])
    return loaded
