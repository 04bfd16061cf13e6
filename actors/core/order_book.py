"""Local L2 order book, sequenced the way Binance says to (DESIGN §4, F9).

Binance USD-M "How to manage a local order book correctly":

1. open ``<sym>@depth@100ms`` and buffer the diff events;
2. fetch a REST snapshot (``lastUpdateId``);
3. drop buffered events with ``u < lastUpdateId``;
4. the first event applied must have ``U <= lastUpdateId <= u``;
5. afterwards every event's ``pu`` must equal the previous event's ``u``,
   otherwise the book is wrong: drop it and start again from step 2;
6. quantities are absolute; a quantity of 0 removes the level (removing a
   level the book does not have is normal).

``OrderBookSequencer`` is that algorithm as a pure state machine. It never
fetches a snapshot itself: when ``state`` becomes ``NEEDS_RESYNC`` the feed
actor asks the venue for one and hands it to ``apply_snapshot``. It keeps
buffering events meanwhile, so the bridging event is not lost.

A book that is not ``LIVE`` is not trusted: ``best_bid``/``best_ask``/``top``
return nothing until the sequence is proven, so nobody trades on a half-built
book. Never blocks, never sleeps, no I/O.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterable, Mapping, Sequence

Level = tuple[float, float]
"""(price, quantity)."""


class BookState(str, Enum):
    """Where the sequencer is in the Binance algorithm."""

    SYNCING = "SYNCING"
    """Buffering events; no snapshot yet, or a snapshot waiting for its bridging event."""
    LIVE = "LIVE"
    """Snapshot + contiguous events applied: the book is trusted."""
    NEEDS_RESYNC = "NEEDS_RESYNC"
    """Book dropped (gap, or snapshot too old): a new snapshot is needed."""


class EventResult(str, Enum):
    """What ``on_event`` did with one diff event."""

    BUFFERED = "BUFFERED"
    DROPPED = "DROPPED"  # u < lastUpdateId: already contained in the snapshot
    APPLIED = "APPLIED"
    GAP = "GAP"  # sequence broken: book dropped, state NEEDS_RESYNC


@dataclass(frozen=True)
class DepthEvent:
    """One ``depthUpdate`` diff: update ids ``U``..``u``, previous final id ``pu``."""

    first_update_id: int  # U
    final_update_id: int  # u
    prev_final_update_id: int  # pu
    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()
    event_time_ms: int | None = None  # E

    @classmethod
    def from_binance(cls, msg: Mapping[str, Any]) -> "DepthEvent":
        """Parse the WS payload (``{"e":"depthUpdate","U":..,"u":..,"pu":..,"b":[[p,q]],"a":..}``).

        Raises ``KeyError``/``ValueError``/``TypeError`` on a malformed message;
        the feed counts those as corrupt (F12).
        """
        return cls(
            first_update_id=int(msg["U"]),
            final_update_id=int(msg["u"]),
            prev_final_update_id=int(msg["pu"]),
            bids=_parse_levels(msg.get("b", ())),
            asks=_parse_levels(msg.get("a", ())),
            event_time_ms=int(msg["E"]) if "E" in msg else None,
        )


@dataclass(frozen=True)
class DepthSnapshot:
    """A REST ``/fapi/v1/depth`` answer."""

    last_update_id: int
    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()

    @classmethod
    def from_binance(cls, payload: Mapping[str, Any]) -> "DepthSnapshot":
        return cls(
            last_update_id=int(payload["lastUpdateId"]),
            bids=_parse_levels(payload.get("bids", ())),
            asks=_parse_levels(payload.get("asks", ())),
        )


@dataclass(frozen=True)
class SequenceGap:
    """Why the book was dropped: the sequence proof failed (F9)."""

    expected_pu: int | None  # the previous u, or the snapshot's lastUpdateId for the first event
    got_first: int  # the offending event's U
    got_pu: int  # ... and its pu
    reason: str


def _parse_levels(raw: Iterable[Sequence[Any]]) -> tuple[Level, ...]:
    out = []
    for level in raw:
        price, qty = float(level[0]), float(level[1])
        if price <= 0 or qty < 0 or price != price or qty != qty:
            raise ValueError(f"bad depth level {level!r}")
        out.append((price, qty))
    return tuple(out)


class _Side:
    """One side of the book: price -> qty, plus prices kept sorted ascending."""

    __slots__ = ("qty", "prices")

    def __init__(self) -> None:
        self.qty: dict[float, float] = {}
        self.prices: list[float] = []

    def clear(self) -> None:
        self.qty.clear()
        self.prices.clear()

    def set(self, price: float, qty: float) -> None:
        if qty == 0.0:
            if self.qty.pop(price, None) is not None:
                del self.prices[bisect.bisect_left(self.prices, price)]
            return
        if price not in self.qty:
            bisect.insort(self.prices, price)
        self.qty[price] = qty


@dataclass
class BookCounters:
    """Counters for the status tree and metrics."""

    applied: int = 0
    dropped: int = 0
    gaps: int = 0
    snapshots: int = 0
    buffer_overflows: int = 0


class OrderBookSequencer:
    """Buffers, sequences and applies depth diffs for one symbol.

    Usage by the feed actor::

        seq = OrderBookSequencer("BTCUSDT")
        seq.on_event(DepthEvent.from_binance(msg))    # from the WS, always
        seq.apply_snapshot(DepthSnapshot.from_binance(rest_json))  # when SYNCING/NEEDS_RESYNC
        if seq.state is BookState.NEEDS_RESYNC: fetch another snapshot

    ``reset()`` is for a new WebSocket connection: buffered events of the old
    connection are useless.
    """

    def __init__(self, symbol: str, *, max_buffer: int = 10_000) -> None:
        self.symbol = symbol
        self._max_buffer = max_buffer
        self._buffer: deque[DepthEvent] = deque()
        self._bids = _Side()
        self._asks = _Side()
        self._state = BookState.SYNCING
        self._snapshot_id: int | None = None  # set while waiting for the bridging event
        self._last_u: int | None = None  # last applied u, once LIVE
        self.last_gap: SequenceGap | None = None
        self.counters = BookCounters()

    # -- state ---------------------------------------------------------------

    @property
    def state(self) -> BookState:
        return self._state

    @property
    def last_update_id(self) -> int | None:
        """The ``u`` of the last applied event (or the snapshot id before that)."""
        return self._last_u if self._last_u is not None else self._snapshot_id

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def reset(self) -> None:
        """Forget everything (new connection): back to SYNCING with an empty buffer."""
        self._buffer.clear()
        self._drop_book()
        self._state = BookState.SYNCING

    # -- inputs --------------------------------------------------------------

    def on_event(self, event: DepthEvent) -> EventResult:
        """Feed one diff event from the stream, in arrival order."""
        if self._state is BookState.LIVE:
            return self._apply_live(event)
        if self._snapshot_id is not None:  # SYNCING with a snapshot, waiting for the bridge
            return self._apply_first(event)
        self._buffer_event(event)
        return EventResult.BUFFERED

    def apply_snapshot(self, snapshot: DepthSnapshot) -> BookState:
        """Install a REST snapshot and replay the buffer on top of it.

        Meant for SYNCING / NEEDS_RESYNC; on a LIVE book it drops the book and
        starts a fresh sync from this snapshot.

        Returns the resulting state: LIVE if the buffer bridged the snapshot,
        SYNCING if the bridging event has not arrived yet, NEEDS_RESYNC if the
        snapshot is older than every buffered event (fetch a newer one) or the
        buffer has a gap after the bridge.
        """
        self._drop_book()
        self.counters.snapshots += 1
        for price, qty in snapshot.bids:
            self._bids.set(price, qty)
        for price, qty in snapshot.asks:
            self._asks.set(price, qty)
        self._snapshot_id = snapshot.last_update_id
        self._state = BookState.SYNCING
        pending, self._buffer = self._buffer, deque()
        while pending:
            event = pending.popleft()
            result = self.on_event(event)
            if result is EventResult.GAP:
                # keep what came after the failure for the next snapshot
                self._buffer.extend(pending)
                break
        return self._state

    # -- reads (only a LIVE book answers) ------------------------------------

    def best_bid(self) -> Level | None:
        if self._state is not BookState.LIVE or not self._bids.prices:
            return None
        price = self._bids.prices[-1]
        return price, self._bids.qty[price]

    def best_ask(self) -> Level | None:
        if self._state is not BookState.LIVE or not self._asks.prices:
            return None
        price = self._asks.prices[0]
        return price, self._asks.qty[price]

    def mid_price(self) -> float | None:
        bid, ask = self.best_bid(), self.best_ask()
        if bid is None or ask is None:
            return None
        return (bid[0] + ask[0]) / 2.0

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """The best ``n`` bids (highest first) and asks (lowest first); empty unless LIVE."""
        if self._state is not BookState.LIVE or n <= 0:
            return [], []
        bid_prices = self._bids.prices[-n:][::-1]
        ask_prices = self._asks.prices[:n]
        return (
            [(p, self._bids.qty[p]) for p in bid_prices],
            [(p, self._asks.qty[p]) for p in ask_prices],
        )

    def depth(self) -> tuple[dict[float, float], dict[float, float]]:
        """Copies of the whole book ``(bids, asks)`` as price -> qty; empty unless LIVE."""
        if self._state is not BookState.LIVE:
            return {}, {}
        return dict(self._bids.qty), dict(self._asks.qty)

    def crossed(self) -> bool:
        """True if best bid >= best ask: a LIVE book that is crossed is suspect."""
        bid, ask = self.best_bid(), self.best_ask()
        return bid is not None and ask is not None and bid[0] >= ask[0]

    # -- internals -----------------------------------------------------------

    def _buffer_event(self, event: DepthEvent) -> None:
        if len(self._buffer) >= self._max_buffer:
            # Dropping the oldest can only lose the bridge, which the first-event
            # check then reports as NEEDS_RESYNC; it never corrupts the book.
            self._buffer.popleft()
            self.counters.buffer_overflows += 1
        self._buffer.append(event)

    def _apply_first(self, event: DepthEvent) -> EventResult:
        snapshot_id = self._snapshot_id
        assert snapshot_id is not None
        if event.final_update_id < snapshot_id:
            self.counters.dropped += 1
            return EventResult.DROPPED
        if event.first_update_id > snapshot_id:
            return self._gap(
                event,
                expected=snapshot_id,
                reason=f"first event U={event.first_update_id} > lastUpdateId={snapshot_id}: snapshot too old",
            )
        self._apply(event)
        self._snapshot_id = None
        self._state = BookState.LIVE
        return EventResult.APPLIED

    def _apply_live(self, event: DepthEvent) -> EventResult:
        if event.prev_final_update_id != self._last_u:
            return self._gap(
                event,
                expected=self._last_u,
                reason=f"pu={event.prev_final_update_id} != previous u={self._last_u}",
            )
        self._apply(event)
        return EventResult.APPLIED

    def _apply(self, event: DepthEvent) -> None:
        for price, qty in event.bids:
            self._bids.set(price, qty)
        for price, qty in event.asks:
            self._asks.set(price, qty)
        self._last_u = event.final_update_id
        self.counters.applied += 1

    def _gap(self, event: DepthEvent, *, expected: int | None, reason: str) -> EventResult:
        self.last_gap = SequenceGap(
            expected_pu=expected,
            got_first=event.first_update_id,
            got_pu=event.prev_final_update_id,
            reason=reason,
        )
        self.counters.gaps += 1
        self._drop_book()
        self._state = BookState.NEEDS_RESYNC
        # The offending event is newer than anything we have: it may be the
        # bridge for the next snapshot, so it starts the new buffer.
        self._buffer.clear()
        self._buffer_event(event)
        return EventResult.GAP

    def _drop_book(self) -> None:
        self._bids.clear()
        self._asks.clear()
        self._snapshot_id = None
        self._last_u = None


__all__ = [
    "BookCounters",
    "BookState",
    "DepthEvent",
    "DepthSnapshot",
    "EventResult",
    "Level",
    "OrderBookSequencer",
    "SequenceGap",
]
