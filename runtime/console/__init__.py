"""The web console: static files served by the status server at `/`, plus `GET /history`.

No build step and no CDN: index.html, console.js and console.css ship in this package and
are read once. The page polls `/status` and `/history` every second and sends operator
commands to `POST /commands/<name>` with the bearer token and a reason, as the CLI does.
"""

from __future__ import annotations

import importlib.resources
import json
from typing import Any, Callable, Mapping

from runtime.history import orders, parse_since

__all__ = ["Page", "pages"]

# A GET route: query parameters -> (HTTP status, body, content type).
Page = Callable[[Mapping[str, list[str]]], tuple[int, bytes, str]]
_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
          "/console/console.js": ("console.js", "text/javascript; charset=utf-8"),
          "/console/console.css": ("console.css", "text/css; charset=utf-8")}
MAX_HISTORY_ROWS = 1000


def _static(name: str, content_type: str) -> Page:
    body = importlib.resources.files(__name__).joinpath(name).read_bytes()
    return lambda _query: (200, body, content_type)


def _json(code: int, payload: Any) -> tuple[int, bytes, str]:
    return code, (json.dumps(payload, default=str) + "\n").encode(), "application/json"


def history_page(entries: Callable[[float | None], list[Any]]) -> Page:
    """`GET /history?strategy=ID&since=10m&limit=N`: orders from the journal, newest first."""

    def page(query: Mapping[str, list[str]]) -> tuple[int, bytes, str]:
        one = {k: v[-1] for k, v in query.items() if v}
        try:
            since = parse_since(one["since"]) if one.get("since") else None
            limit = int(one.get("limit") or MAX_HISTORY_ROWS)
            if not 0 < limit <= MAX_HISTORY_ROWS:
                raise ValueError(f"limit must be 1..{MAX_HISTORY_ROWS}, got {limit}")
        except ValueError as exc:
            return _json(400, {"ok": False, "error": str(exc)})
        try:
            journal = entries(since)
        except Exception as exc:  # noqa: BLE001 - e.g. Redis down: say so, never crash the server
            return _json(503, {"ok": False, "error": f"journal unavailable: {type(exc).__name__}: {exc}"})
        return _json(200, {"ok": True, "orders": orders(journal, one.get("strategy") or None, since, limit)})

    return page


def pages(journal_entries: Callable[[float | None], list[Any]]) -> dict[str, Page]:
    """The console's routes for StatusServer(pages=...); `journal_entries(since)` reads the
    journal from `since` (epoch seconds; None = all of it), oldest first."""
    routes = {path: _static(name, ctype) for path, (name, ctype) in _FILES.items()}
    routes["/history"] = history_page(journal_entries)
    return routes
