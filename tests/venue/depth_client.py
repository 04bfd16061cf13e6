"""A test client that keeps a local order book the way Binance documents for USD-M futures.

"How to manage a local order book correctly": open the stream and buffer
events; fetch a snapshot; drop events with ``u < lastUpdateId``; the first
applied event must have ``U <= lastUpdateId <= u``; every later event must have
``pu`` equal to the previous event's ``u``, else the book is dropped and
rebuilt from a new snapshot (F9). Quantities are absolute; 0 removes a level.

Test-only on purpose: the runtime's own sequencer belongs to the market feed.
It decodes frames with the feed's own decoder (actors/feed_frames.py), so a corrupt
frame is counted with the decoder's message (F12) and the gap it leaves is caught by
``pu``. Prices and quantities are floats, as in the feed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import websocket

from actors.core.order_book import DepthEvent
from actors.feed_frames import CorruptFrame, FrameDecoder
from runtime.venue import BinanceFuturesConnector
from runtime.venue.ws import combined_stream_url, depth_stream


class LocalBook:
    """Pure sequencing state; ``feed`` returns True when the event was applied."""

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.last_update_id: int | None = None  # u of the last applied event (or the snapshot id)
        self.synced = False
        self.buffer: list[DepthEvent] = []
        self.gaps = 0
        self.snapshots = 0

    def load_snapshot(self, last_update_id: int, bids: Any, asks: Any) -> None:
        self.bids = {float(p): float(q) for p, q in bids if q}
        self.asks = {float(p): float(q) for p, q in asks if q}
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

    def feed(self, event: DepthEvent) -> bool:
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
        self.decoder = FrameDecoder(symbol, "public")  # the legacy root serves what /public does
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
                event = self.decoder.decode(raw)
            except CorruptFrame as exc:
                self.malformed.append(str(exc))
                continue
            assert isinstance(event, DepthEvent), event
            self.book.feed(event)
            if self.book.needs_snapshot():
                snapshot = self.connector.depth(self.symbol, 1000)
                assert snapshot.ok, snapshot.describe()
                self.book.load_snapshot(snapshot.data.last_update_id, snapshot.data.bids, snapshot.data.asks)
        return done(self.book)


def exchange_book(snapshot: dict) -> tuple[dict[float, float], dict[float, float]]:
    """``SimExchange.book_snapshot`` as float dicts (the same doubles the decoder makes of the
    same decimal strings), comparable with a ``LocalBook``."""
    return ({float(p): float(q) for p, q in snapshot["bids"]},
            {float(p): float(q) for p, q in snapshot["asks"]})
