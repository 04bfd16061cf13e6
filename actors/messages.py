"""Messages the trading actors exchange, in one module so that no two actors import each other.

Flow: state-builder → engine (StopsTriggered); strategies → engine (Wake, DirectIntent,
CancelStrategy); degradation → engine (Flatten) → degradation (FlattenDone); pipeline →
engine (RateLimited); position-manager → engine (SettlePending); user-data stream → engine
(VenueOrderEvent); engine → position-manager (CorrectExcess); feed:<S> → state-builder
(PriceUpdate, BookTop, FeedState) and state-builder/operator → feed:<S> (ReportFeedState,
ResyncBook); monitor:store, degradation, engine → position-manager (Reconcile) → Reconciled;
engine → strategy:<id> (OrderUpdate, with its Fill).
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.core.order_book import Level
from actors.core.stop_index import StopHit
from actors.node_ids import STATE_BUILDER, STORE_MONITOR
from actors.orders import OrderIntent
from runtime.store.runtime_state import Runtime
from runtime.venue.user_events import OrderUpdate as VenueOrderUpdate


@dataclass(frozen=True)
class Fill:
    purpose: str  # entry | exit | stop_loss | flatten
    side: str
    quantity: float
    price: float
    client_order_id: str
    position: str  # the strategy's position after the fill


@dataclass(frozen=True)
class OrderUpdate:
    """From the engine: what became of one of this strategy's intents."""

    verdict: str
    reason: str
    fill: Fill | None
    runtime: Runtime | None


@dataclass(frozen=True)
class Wake:
    """Tells the engine that the Redis order queue has new entries."""


@dataclass(frozen=True)
class DirectIntent:
    """A risk-reducing intent handed to the engine in memory (the store is down)."""

    intent: OrderIntent


@dataclass(frozen=True)
class CancelStrategy:
    """F25: stop retrying this strategy's order in flight; settle what was sent."""

    strategy_id: str


@dataclass(frozen=True)
class StopsTriggered:
    """From the state builder: stops popped from the stop book by one tick."""

    symbol: str
    hits: tuple[StopHit, ...]
    tick_perf: float  # perf_counter when the tick was received


@dataclass(frozen=True)
class Flatten:
    """Close every open position in scope at market (EMERGENCY, breaker, stale policy)."""

    reason: str
    symbol: str | None = None
    strategy_id: str | None = None


@dataclass(frozen=True)
class FlattenDone:
    """From the engine: the requested flatten finished; HARD_SHUTDOWN may flush."""

    reason: str = ""


@dataclass(frozen=True)
class RateLimited:
    """From the order pipeline (a worker thread): the venue or the budget rate-limited a send."""

    at: float


@dataclass(frozen=True)
class SettlePending:
    """To the engine: this strategy has an order in doubt (found by the cold start); re-drive
    it until it settles (DESIGN §3: UNKNOWN is a state to leave)."""

    strategy_id: str


@dataclass(frozen=True)
class VenueOrderEvent:
    """From the user-data stream (its thread) to the engine: an order of the account changed."""

    update: VenueOrderUpdate


@dataclass(frozen=True)
class CorrectExcess:
    """From the engine to position-manager: a fill arrived for an intent already settled as not
    executed (late, duplicate): correct the excess at once, limited to it (actors.excess).
    `first_seen`: monotonic time of the first try, set when it is tried again (symbol not quiet)."""

    symbol: str
    client_order_id: str
    quantity: float
    side: str
    venue_order_id: int
    first_seen: float = 0.0


@dataclass(frozen=True)
class Reconcile:
    """To position-manager: reconcile positions and open orders with the venue now.

    Sent by monitor:store after Redis came back (caches invalidated), by degradation after a
    feed reconnect and by the engine after the user-data stream (re)connects: every reconnect
    is a reconciliation barrier. When done, position-manager may answer
    ``Reconciled(request_id, ok)`` to ``reply_to``.
    """

    reason: str
    reply_to: str = STORE_MONITOR
    request_id: int = 0


@dataclass(frozen=True)
class Reconciled:
    """From position-manager: the reconciliation asked by ``Reconcile(request_id)`` finished."""

    request_id: int
    ok: bool = True
    detail: str = ""


@dataclass(frozen=True)
class StrategyDisabled:
    """To position-manager: a strategy's supervisor disabled it; its open position is handed over."""

    strategy_id: str
    reason: str


# --- market data: feed:<S> -> state-builder, and back ------------------------------------


@dataclass(frozen=True)
class PriceUpdate:
    """One accepted price (aggTrade or markPrice), for the state builder's hot path."""

    symbol: str
    price: float
    ts: float  # event time on the local clock, epoch s (receive time when the venue's was suspect)
    kind: str  # "trade" | "mark"
    fresh: bool  # feed not blind (LIVE/RECOVERING) and timestamp in order: may move the stop index
    status: str  # the feed's FeedStatus value after this update
    tick_perf: float  # time.perf_counter() when the frame left the socket
    open_interest: float | None = None
    funding_rate: float | None = None
    index_price: float | None = None


@dataclass(frozen=True)
class BookTop:
    """The best levels of a LIVE book after an applied depth event."""

    symbol: str
    bids: tuple[Level, ...]  # best first
    asks: tuple[Level, ...]  # best first
    last_update_id: int
    ts: float  # receive time, epoch s


@dataclass(frozen=True)
class FeedState:
    """The feed's status after a change (or on request)."""

    symbol: str
    status: str  # FeedStatus value
    since: float | None
    reason: str
    book: str  # BookState value


@dataclass(frozen=True)
class ReportFeedState:
    """Ask the feed for a ``FeedState`` (the state builder after its restart)."""

    reply_to: str = STATE_BUILDER


@dataclass(frozen=True)
class ResyncBook:
    """Drop the book and rebuild it from a fresh snapshot (operator, validation)."""

    reason: str = "requested"
