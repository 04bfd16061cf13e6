"""Messages the trading actors exchange, in one module so that no two actors import each other.

Flow: state-builder → engine (StopsTriggered); strategies → engine (Wake, DirectIntent,
CancelStrategy); degradation → engine (Flatten) → degradation (FlattenDone); feed:<S> →
state-builder (PriceUpdate, BookTop, FeedState) and state-builder/operator → feed:<S>
(ReportFeedState, ResyncBook).
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.core.order_book import Level
from actors.core.stop_index import StopHit
from actors.orders import OrderIntent


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

    reply_to: str = "state-builder"


@dataclass(frozen=True)
class ResyncBook:
    """Drop the book and rebuild it from a fresh snapshot (operator, validation)."""

    reason: str = "requested"
