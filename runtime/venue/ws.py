"""Market-data stream names, URLs and strict message parsing (Binance USD-M futures).

Combined streams: ``{ws_url}/stream?streams=btcusdt@depth@100ms/btcusdt@markPrice@1s``
deliver ``{"stream": name, "data": event}``; raw streams ``{ws_url}/ws/<name>``
deliver the event alone. Symbols are lowercase in stream names.

Parsing raises ``MalformedMessage`` naming the stream, event and field, so a
feed can drop and count a corrupt frame (F12) with a log an engineer can act on.
This module does no I/O; the feed owns the socket and the sequencer.
"""

from __future__ import annotations

import json
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from runtime.venue.models import Level, decimal_field, int_field, parse_levels
from runtime.venue.outcomes import MalformedReply


class MalformedMessage(MalformedReply):
    """A stream frame that is not JSON or lacks what its event type requires."""


T = TypeVar("T")


def _strict(parser: Callable[[Mapping[str, Any]], T]) -> Callable[[Mapping[str, Any]], T]:
    """Field helpers raise MalformedReply; stream parsers promise MalformedMessage."""

    @functools.wraps(parser)
    def wrapper(data: Mapping[str, Any]) -> T:
        if not isinstance(data, Mapping):
            raise MalformedMessage(f"{parser.__name__}: event is not an object: {data!r:.80}")
        try:
            return parser(data)
        except MalformedMessage:
            raise
        except MalformedReply as exc:
            raise MalformedMessage(str(exc)) from None

    return wrapper


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


@dataclass(frozen=True)
class StreamMessage:
    """One combined-stream frame: which stream, and the event object."""

    stream: str
    data: dict[str, Any]


@dataclass(frozen=True)
class DepthUpdate:
    """``depthUpdate``: apply if ``prev_final_update_id`` equals the previous event's ``final_update_id``."""

    symbol: str
    event_time: int
    transaction_time: int
    first_update_id: int  # U
    final_update_id: int  # u
    prev_final_update_id: int  # pu
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


@dataclass(frozen=True)
class MarkPriceUpdate:
    """``markPriceUpdate``: mark (p), index (i), funding rate (r), next funding time (T)."""

    symbol: str
    event_time: int
    mark_price: Decimal
    index_price: Decimal
    funding_rate: Decimal
    next_funding_time: int


@dataclass(frozen=True)
class AggTrade:
    """``aggTrade``: price, quantity, trade time, buyer-is-maker."""

    symbol: str
    event_time: int
    agg_id: int
    price: Decimal
    quantity: Decimal
    trade_time: int
    buyer_is_maker: bool


@dataclass(frozen=True)
class ForceOrder:
    """``forceOrder``: one liquidation order."""

    symbol: str
    event_time: int
    side: str
    price: Decimal
    quantity: Decimal
    status: str
    trade_time: int


def parse_stream_message(raw: str | bytes) -> StreamMessage:
    """Parse one combined-stream frame; ``MalformedMessage`` says what was wrong."""
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedMessage(f"frame is not UTF-8: {bytes(raw[:60])!r}") from None
    try:
        frame = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise MalformedMessage(f"frame is not JSON ({exc.msg} at char {exc.pos}): {raw[:80]!r}") from None
    if not isinstance(frame, dict):
        raise MalformedMessage(f"frame is not an object: {raw[:80]!r}")
    if "stream" not in frame or "data" not in frame:
        missing = "stream" if "stream" not in frame else "data"
        raise MalformedMessage(f"combined-stream frame missing field {missing!r}: {raw[:80]!r}")
    if not isinstance(frame["stream"], str) or not isinstance(frame["data"], dict):
        raise MalformedMessage(f"combined-stream frame has wrong types: {raw[:80]!r}")
    return StreamMessage(stream=frame["stream"], data=frame["data"])


def parse_event(data: Mapping[str, Any]) -> DepthUpdate | MarkPriceUpdate | AggTrade | ForceOrder:
    """Dispatch on ``e`` and parse strictly."""
    kind = data.get("e")
    parser = _PARSERS.get(kind)  # type: ignore[arg-type]
    if parser is None:
        raise MalformedMessage(f"unknown event type e={kind!r}")
    return parser(data)


@_strict
def parse_depth_update(data: Mapping[str, Any]) -> DepthUpdate:
    """Parse a ``depthUpdate`` event."""
    what = "depthUpdate"
    _require(data, what, "s", "b", "a")
    return DepthUpdate(
        symbol=str(data["s"]),
        event_time=int_field(data, "E", what),
        transaction_time=int_field(data, "T", what),
        first_update_id=int_field(data, "U", what),
        final_update_id=int_field(data, "u", what),
        prev_final_update_id=int_field(data, "pu", what),
        bids=parse_levels(data["b"], f"{what} b"),
        asks=parse_levels(data["a"], f"{what} a"),
    )


@_strict
def parse_mark_price(data: Mapping[str, Any]) -> MarkPriceUpdate:
    """Parse a ``markPriceUpdate`` event."""
    what = "markPriceUpdate"
    _require(data, what, "s")
    return MarkPriceUpdate(
        symbol=str(data["s"]),
        event_time=int_field(data, "E", what),
        mark_price=decimal_field(data, "p", what),
        index_price=decimal_field(data, "i", what),
        funding_rate=decimal_field(data, "r", what),
        next_funding_time=int_field(data, "T", what),
    )


@_strict
def parse_agg_trade(data: Mapping[str, Any]) -> AggTrade:
    """Parse an ``aggTrade`` event."""
    what = "aggTrade"
    _require(data, what, "s", "m")
    return AggTrade(
        symbol=str(data["s"]),
        event_time=int_field(data, "E", what),
        agg_id=int_field(data, "a", what),
        price=decimal_field(data, "p", what),
        quantity=decimal_field(data, "q", what),
        trade_time=int_field(data, "T", what),
        buyer_is_maker=bool(data["m"]),
    )


@_strict
def parse_force_order(data: Mapping[str, Any]) -> ForceOrder:
    """Parse a ``forceOrder`` event (the order is under ``o``)."""
    what = "forceOrder"
    _require(data, what, "o")
    order = data["o"]
    if not isinstance(order, dict):
        raise MalformedMessage(f"{what}: field 'o' is not an object")
    _require(order, f"{what}.o", "s", "S", "X")
    return ForceOrder(
        symbol=str(order["s"]),
        event_time=int_field(data, "E", what),
        side=str(order["S"]),
        price=decimal_field(order, "p", f"{what}.o"),
        quantity=decimal_field(order, "q", f"{what}.o"),
        status=str(order["X"]),
        trade_time=int_field(order, "T", f"{what}.o"),
    )


def _require(data: Mapping[str, Any], what: str, *fields: str) -> None:
    for field in fields:
        if field not in data:
            raise MalformedMessage(f"{what}: missing field {field!r}")


_PARSERS = {
    "depthUpdate": parse_depth_update,
    "markPriceUpdate": parse_mark_price,
    "aggTrade": parse_agg_trade,
    "forceOrder": parse_force_order,
}
