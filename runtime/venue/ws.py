"""Market-data stream names and URLs (Binance USD-M futures), and the stream error type.

Combined streams: ``{ws_url}/stream?streams=btcusdt@depth@100ms/btcusdt@markPrice@1s``
deliver ``{"stream": name, "data": event}``; raw streams ``{ws_url}/ws/<name>``
deliver the event alone. Symbols are lowercase in stream names. Market frames are
decoded by the feed (actors/feed_frames.py), user-data frames by user_events.py,
which raises ``MalformedMessage``. This module does no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from runtime.venue.outcomes import MalformedReply


class MalformedMessage(MalformedReply):
    """A stream frame that is not JSON or lacks what its event type requires."""


def depth_stream(symbol: str, speed_ms: int = 100) -> str:
    """Diff-depth stream, e.g. ``btcusdt@depth@100ms`` (speed 100, 250 or 500 ms)."""
    if speed_ms not in (100, 250, 500):
        raise ValueError(f"depth speed must be 100, 250 or 500 ms, got {speed_ms}")
    return f"{symbol.lower()}@depth" if speed_ms == 250 else f"{symbol.lower()}@depth@{speed_ms}ms"


def mark_price_stream(symbol: str, every_s: int = 1) -> str:
    """Mark price + funding stream, ``btcusdt@markPrice@1s`` (or the 3 s ``btcusdt@markPrice``)."""
    if every_s not in (1, 3):
        raise ValueError(f"markPrice interval must be 1 or 3 s, got {every_s}")
    return f"{symbol.lower()}@markPrice@1s" if every_s == 1 else f"{symbol.lower()}@markPrice"


def agg_trade_stream(symbol: str) -> str:
    """Aggregate trades, ``btcusdt@aggTrade``."""
    return f"{symbol.lower()}@aggTrade"


def force_order_stream(symbol: str) -> str:
    """Liquidation orders, ``btcusdt@forceOrder``."""
    return f"{symbol.lower()}@forceOrder"


def market_streams(symbol: str) -> list[str]:
    """The four streams a feed follows for one symbol."""
    return [depth_stream(symbol), mark_price_stream(symbol), agg_trade_stream(symbol), force_order_stream(symbol)]


def combined_stream_url(ws_url: str, streams: Iterable[str], route: str = "") -> str:
    """``{ws_url}{route}/stream?streams=a/b/c``; raises ValueError on an empty list.

    ``route`` is ``"/public"``, ``"/market"`` or ``""`` (the legacy root, which
    Binance retired on 2026-04-23 and which never carries /market streams).
    """
    names = list(streams)
    if not names:
        raise ValueError("combined_stream_url needs at least one stream")
    if route not in ("", PUBLIC_ROUTE, MARKET_ROUTE):
        raise ValueError(f"route must be {PUBLIC_ROUTE!r}, {MARKET_ROUTE!r} or '', got {route!r}")
    return f"{ws_url.rstrip('/')}{route}/stream?streams={'/'.join(names)}"


PUBLIC_ROUTE = "/public"  # high-frequency public data: depth, bookTicker
MARKET_ROUTE = "/market"  # regular market data: markPrice, aggTrade, forceOrder
PRIVATE_ROUTE = "/private"  # user data: /private/ws/<listenKey>


def stream_route(stream: str) -> str:
    """The route that carries ``stream`` since Binance's base-URL split (``/public`` or ``/market``)."""
    kind = stream.split("@")[1] if "@" in stream and not stream.startswith("!") else stream.split("@")[0]
    if kind in ("depth", "bookTicker"):
        return PUBLIC_ROUTE
    if kind in ("markPrice", "aggTrade", "forceOrder", "!forceOrder"):
        return MARKET_ROUTE
    raise ValueError(f"no known route carries stream {stream!r}")


def routed_stream_urls(ws_url: str, streams: Iterable[str]) -> dict[str, str]:
    """One combined URL per route that carries some of ``streams``: ``{"/public": url, "/market": url}``."""
    by_route: dict[str, list[str]] = {}
    for name in streams:
        by_route.setdefault(stream_route(name), []).append(name)
    return {route: combined_stream_url(ws_url, names, route) for route, names in by_route.items()}


def user_stream_url(ws_url: str, listen_key: str) -> str:
    """``{ws_url}/private/ws/<listenKey>``: the user-data stream of one listenKey."""
    if not listen_key or "/" in listen_key:
        raise ValueError(f"invalid listenKey {listen_key!r}")
    return f"{ws_url.rstrip('/')}{PRIVATE_ROUTE}/ws/{listen_key}"
