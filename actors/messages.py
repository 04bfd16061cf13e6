"""Messages the trading actors exchange, in one module so that no two actors import each other.

Flow: state-builder → engine (StopsTriggered); strategies → engine (Wake, DirectIntent,
CancelStrategy); degradation → engine (Flatten) → degradation (FlattenDone); pipeline →
engine (RateLimited); position-manager → engine (SettlePending).
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class RateLimited:
    """From the order pipeline (a worker thread): the venue or the budget rate-limited a send."""

    at: float


@dataclass(frozen=True)
class SettlePending:
    """To the engine: this strategy has an order in doubt (found by the cold start); re-drive
    it until it settles (DESIGN §3: UNKNOWN is a state to leave)."""

    strategy_id: str
