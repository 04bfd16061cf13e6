"""Typed decoding of one market-data frame (F12): bytes in, one event or ``CorruptFrame`` out.

Binance USD-M combined-stream frames (``{"stream": name, "data": event}``) are decoded by
msgspec straight into Structs tagged on the event type ``e``, as NautilusTrader's Binance
adapter does: prices and quantities arrive as JSON strings and are converted to floats
in C (msgspec's lax mode), with their ranges checked on the way (prices > 0, quantities
>= 0, both finite). What msgspec cannot check is checked after it: the stream and the
event are this feed's symbol, the event belongs on this connection's route, and a
depth event's ``U <= u``.

Every failure is one ``CorruptFrame`` whose message names what was wrong (the field's
JSON path, the stream, the route), so the feed drops and counts the frame and its log
says why. Pure: no I/O, no threads; the socket thread calls ``FrameDecoder.decode``.
"""

from __future__ import annotations

import sys
from typing import Annotated, Union

import msgspec

from actors.core.order_book import DepthEvent

_MAX = sys.float_info.max  # the bound that rejects "inf" (and "nan" fails every comparison)
Price = Annotated[float, msgspec.Meta(gt=0.0, le=_MAX)]
Quantity = Annotated[float, msgspec.Meta(ge=0.0, le=_MAX)]
Finite = Annotated[float, msgspec.Meta(ge=-_MAX, le=_MAX)]
Level = tuple[Price, Quantity]


class CorruptFrame(ValueError):
    """A frame that is not valid JSON, lacks a field, has a value out of range, or is not this feed's."""


class DepthUpdate(msgspec.Struct, tag_field="e", tag="depthUpdate", frozen=True, gc=False):
    """``depthUpdate``: a diff of the book, sequenced by ``U``/``u``/``pu``."""

    symbol: str = msgspec.field(name="s")
    event_time: int = msgspec.field(name="E")
    first_update_id: int = msgspec.field(name="U")
    final_update_id: int = msgspec.field(name="u")
    prev_final_update_id: int = msgspec.field(name="pu")
    bids: tuple[Level, ...] = msgspec.field(name="b")
    asks: tuple[Level, ...] = msgspec.field(name="a")


class BookTicker(msgspec.Struct, tag_field="e", tag="bookTicker", frozen=True, gc=False):
    """``bookTicker``: best bid and ask."""

    symbol: str = msgspec.field(name="s")
    event_time: int = msgspec.field(name="E")
    update_id: int = msgspec.field(name="u")
    bid_price: Price = msgspec.field(name="b")
    bid_qty: Quantity = msgspec.field(name="B")
    ask_price: Price = msgspec.field(name="a")
    ask_qty: Quantity = msgspec.field(name="A")


class MarkPriceUpdate(msgspec.Struct, tag_field="e", tag="markPriceUpdate", frozen=True, gc=False):
    """``markPriceUpdate``: mark (``p``), index (``i``), funding rate (``r``)."""

    symbol: str = msgspec.field(name="s")
    event_time: int = msgspec.field(name="E")
    mark_price: Price = msgspec.field(name="p")
    index_price: Quantity = msgspec.field(name="i")
    funding_rate: Finite = msgspec.field(name="r")


class AggTrade(msgspec.Struct, tag_field="e", tag="aggTrade", frozen=True, gc=False):
    """``aggTrade``: one aggregated trade."""

    symbol: str = msgspec.field(name="s")
    event_time: int = msgspec.field(name="E")
    price: Price = msgspec.field(name="p")
    quantity: Quantity = msgspec.field(name="q")


class LiquidationOrder(msgspec.Struct, frozen=True, gc=False):
    """The order under a ``forceOrder`` event's ``o``."""

    symbol: str = msgspec.field(name="s")
    side: str = msgspec.field(name="S")
    price: Price = msgspec.field(name="p")
    quantity: Quantity = msgspec.field(name="q")
    status: str = msgspec.field(name="X")


class ForceOrder(msgspec.Struct, tag_field="e", tag="forceOrder", frozen=True, gc=False):
    """``forceOrder``: one liquidation."""

    event_time: int = msgspec.field(name="E")
    order: LiquidationOrder = msgspec.field(name="o")

    @property
    def symbol(self) -> str:
        return self.order.symbol


StreamEvent = Union[DepthUpdate, BookTicker, MarkPriceUpdate, AggTrade, ForceOrder]
FeedEvent = Union[DepthEvent, BookTicker, MarkPriceUpdate, AggTrade, ForceOrder]


class CombinedFrame(msgspec.Struct, frozen=True, gc=False):
    """The combined-stream wrapper: which stream, and its event."""

    stream: str
    data: StreamEvent


ROUTE_EVENTS: dict[str, tuple[type, ...]] = {
    "public": (DepthUpdate, BookTicker),
    "market": (MarkPriceUpdate, AggTrade, ForceOrder),
}
"""Which events each WebSocket route serves (DESIGN §4): an event on the wrong route is corrupt."""

_DECODER = msgspec.json.Decoder(CombinedFrame, strict=False)


class FrameDecoder:
    """Decodes the frames of one connection (one symbol, one route)."""

    def __init__(self, symbol: str, route: str) -> None:
        if route not in ROUTE_EVENTS:
            raise ValueError(f"unknown WebSocket route {route!r}; expected one of {sorted(ROUTE_EVENTS)}")
        self.symbol = symbol.upper()
        self.route = route
        self._prefix = f"{symbol.lower()}@"
        self._events = ROUTE_EVENTS[route]

    def decode(self, raw: bytes | str) -> FeedEvent:
        """One frame -> its event (a depth diff as the sequencer's ``DepthEvent``); raises ``CorruptFrame``."""
        try:
            frame = _DECODER.decode(raw)
        except msgspec.ValidationError as exc:
            raise CorruptFrame(f"{exc} in {_excerpt(raw)}") from None
        except msgspec.DecodeError as exc:
            raise CorruptFrame(f"not JSON ({exc}): {_excerpt(raw)}") from None
        event = frame.data
        if not frame.stream.startswith(self._prefix):
            raise CorruptFrame(f"frame of stream {frame.stream!r} on the {self.symbol} feed")
        if event.symbol != self.symbol:
            raise CorruptFrame(f"{type(event).__name__} for symbol {event.symbol!r} on the {self.symbol} feed")
        if not isinstance(event, self._events):
            raise CorruptFrame(f"{type(event).__name__} on the /{self.route} connection "
                               f"(stream {frame.stream!r} is not served there)")
        if isinstance(event, DepthUpdate):
            if event.first_update_id > event.final_update_id:
                raise CorruptFrame(f"depthUpdate: U={event.first_update_id} > u={event.final_update_id}")
            return DepthEvent(event.first_update_id, event.final_update_id, event.prev_final_update_id,
                              event.bids, event.asks, event.event_time)
        return event


def _excerpt(raw: bytes | str) -> str:
    return repr(raw[:80])


__all__ = [
    "AggTrade",
    "BookTicker",
    "CombinedFrame",
    "CorruptFrame",
    "DepthUpdate",
    "FeedEvent",
    "ForceOrder",
    "FrameDecoder",
    "LiquidationOrder",
    "MarkPriceUpdate",
    "ROUTE_EVENTS",
]
