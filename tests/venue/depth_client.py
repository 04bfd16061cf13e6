"""A test client that keeps a local order book the way Binance documents for USD-M futures.

"How to manage a local order book correctly": open the stream and buffer
events; fetch a snapshot; drop events with ``u < lastUpdateId``; the first
applied event must have ``U <= lastUpdateId <= u``; every later event must have
``pu`` equal to the previous event's ``u``, else the book is dropped and
rebuilt from a new snapshot (F9). Quantities are absolute; 0 removes a level.

Test-only on purpose: the runtime's own sequencer belongs to the market feed.
It uses the runtime's parsers, so a corrupt frame is counted with the parser's
message (F12) and the gap it leaves is caught by ``pu``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

import websocket

from runtime.venue import BinanceFuturesConnector
from runtime.venue.ws import DepthUpdate, MalformedMessage, combined_stream_url, depth_stream, parse_depth_update, \
    parse_stream_message


class LocalBook:
    """Pure sequencing state; ``feed`` returns True when the event was applied."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.last_update_id: int | None = None  # u of the last applied event (or the snapshot id)
        self.synced = False
        self.buffer: list[DepthUpdate] = []
        self.gaps = 0
        self.snapshots = 0

    def load_snapshot(self, last_update_id: int, bids, asks) -> None:
        self.bids = {p: q for p, q in bids if q}
        self.asks = {p: q for p, q in asks if q}
        self.last_update_id = last_update_id
        self.synced = False
        self.snapshots += 1
        pending, self.buffer = self.buffer, []
        for event in pending:
            self.feed(event)

    def needs_snapshot(self) -> bool:
        """True when a (new) snapshot is required: never loaded, or the buffer starts after it."""
        if self.last_update_id is None:
            return bool(self.buffer)
        return not self.synced and bool(self.buffer) and self.buffer[0].first_update_id > self.last_update_id

    def feed(self, event: DepthUpdate) -> bool:
        if self.last_update_id is None:
            self.buffer.append(event)
            return False
        if not self.synced:
            if event.final_update_id < self.last_update_id:
                return False  # already in the snapshot
            if event.first_update_id > self.last_update_id:
                self.buffer.append(event)  # snapshot too old for this stream position
                return False
            self.synced = True
        elif event.prev_final_update_id != self.last_update_id:
            self.gaps += 1
            self.bids, self.asks, self.last_update_id, self.synced = {}, {}, None, False
            self.buffer = [event]
            return False
        for side, levels in ((self.bids, event.bids), (self.asks, event.asks)):
            for price, qty in levels:
                if qty == 0:
                    side.pop(price, None)
                else:
                    side[price] = qty
        self.last_update_id = event.final_update_id
        return True


class DepthFollower:
    """Drives a ``LocalBook`` from a real WebSocket and the connector's depth snapshots."""

    def __init__(self, ws_url: str, connector: BinanceFuturesConnector, symbol: str) -> None:
        self.connector = connector
        self.symbol = symbol
        self.book = LocalBook()
        self.malformed: list[str] = []
        self.frames = 0
        self.ws = websocket.create_connection(combined_stream_url(ws_url, [depth_stream(symbol)]), timeout=0.2)

    def close(self) -> None:
        self.ws.close()

    def run_until(self, done: Callable[[LocalBook], bool], timeout_s: float) -> bool:
        """Pump frames until ``done(book)`` or the deadline; True if done."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if done(self.book):
                return True
            try:
                raw = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            self.frames += 1
            try:
                event = parse_depth_update(parse_stream_message(raw).data)
            except MalformedMessage as exc:
                self.malformed.append(str(exc))
                continue
            self.book.feed(event)
            if self.book.needs_snapshot():
                snapshot = self.connector.depth(self.symbol, 1000)
                assert snapshot.ok, snapshot.describe()
                self.book.load_snapshot(snapshot.data.last_update_id, snapshot.data.bids, snapshot.data.asks)
        return done(self.book)


def exchange_book(snapshot: dict) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
    """``SimExchange.book_snapshot`` as Decimal dicts, comparable with a ``LocalBook``."""
    return ({Decimal(p): Decimal(q) for p, q in snapshot["bids"]},
            {Decimal(p): Decimal(q) for p, q in snapshot["asks"]})
