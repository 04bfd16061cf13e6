"""Exchange-side protective stops: placed when Warden's own protection is in doubt.

Two moments (DESIGN §3, F26, F28): the daemon stopping gracefully, and Redis down for
longer than `protect_after_s` with positions open. Each open position with a stop-loss
level gets a venue-held STOP_MARKET (POST /fapi/v1/algoOrder, reduce-only) with the
deterministic client id `{strategy}:p{n}`; its intent is journaled first (Redis, or the
fsynced disk buffer when Redis is down) and its outcome after, left unsettled while it
is live at the venue, so `recovery.take_back_protective_stops` finds it later.

While a venue stop holds a position the local stop for it is disarmed, so one crossing
gives one exit (the venue's), never two; `ProtectiveStops` remembers which strategies
are held that way, so nothing re-arms them until the venue stop is taken back.

Never does: place a stop without a journaled intent; place a second one for a position
already held at the venue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from actors import planted
from runtime.logging import log_event
from runtime.store.errors import BufferWriteError, StoreUnavailable
from runtime.store.runtime_state import Position, Runtime
from runtime.venue.budget import Priority
from runtime.venue.outcomes import OutcomeKind, VenueOutcome

PROTECTIVE_STOP = "protective_stop"
ASK_TRIES = 6  # take-back calls answered "rate limited" / transient are asked again, this many times at most
ASK_WAIT_MAX_S = 0.5  # and never wait longer than this between two (the caller may hold a strategy's lock)


def protective_stop_id(strategy_id: str, entry_seq: int) -> str:
    """The venue-side stop placed for position n (F26, F28)."""
    return f"{strategy_id}:p{entry_seq}"


class ProtectiveStops:
    """Strategies whose position is held by a venue-side stop right now (thread-safe)."""

    def __init__(self) -> None:
        self._held: dict[str, str] = {}
        self._lock = threading.Lock()

    def hold(self, strategy_id: str, client_id: str) -> None:
        with self._lock:
            self._held[strategy_id] = client_id

    def release(self, strategy_id: str) -> None:
        with self._lock:
            self._held.pop(strategy_id, None)

    def holds(self, strategy_id: str) -> bool:
        with self._lock:
            return strategy_id in self._held

    def held(self) -> dict[str, str]:
        with self._lock:
            return dict(self._held)


@dataclass
class Protection:
    """What one round of placing did: strategy id -> client id placed, or -> why not."""

    placed: dict[str, str] = field(default_factory=dict)
    unprotected: dict[str, str] = field(default_factory=dict)


def open_positions(strategies: Iterable[Any], runtime_of: Any) -> list[tuple[Any, Runtime]]:
    """(strategy config, runtime) for every strategy `runtime_of(id)` says is long."""
    found = []
    for strategy in strategies:
        runtime = runtime_of(strategy.id)
        if runtime is not None and runtime.position is Position.BOUGHT and runtime.quantity > 0:
            found.append((strategy, runtime))
    return found


def place_protective_stops(services: Any, positions: Iterable[tuple[Any, Runtime]], why: str,
                           *, component: str, give_up: Callable[[], bool] = lambda: False,
                           beside_orders_in_flight: bool = False) -> Protection:
    """One venue-side stop per position not already held; the local stop is disarmed once it is live.
    `give_up()` true (the graceful stop's deadline passed): the positions left are not tried.

    Each is placed under the strategy's in-process serialization, from its last known runtime read
    under it (seed 4242 t36#19): a strategy with an order in progress (an exit between its F30
    remainder rounds, a settle step) is left to that order and tried again next round; a stop placed
    beside it sold the position a second time. `beside_orders_in_flight`: the graceful stop, which
    abandons such an order as the process exits; its position is placed from the runtime given, and
    the order, if it goes on meanwhile, takes the stop back before its next send."""
    done = Protection()
    for strategy, runtime in positions:
        if services.protective.holds(strategy.id):
            continue
        if give_up():
            done.unprotected[strategy.id] = "not tried: the graceful stop's deadline passed"
            continue
        serialization = services.pipeline.local_locks.of(strategy.id)
        held = serialization.acquire(blocking=False)
        if not held and not beside_orders_in_flight:
            done.unprotected[strategy.id] = "an order of the strategy is in progress: not placed beside it"
            continue
        try:
            current = (services.runtime_cache.get(strategy.id) or runtime) if held else runtime
            if current.position is Position.BOUGHT and current.quantity > 0:
                _place_one(services, strategy, current, why, component, done)
        finally:
            if held:
                serialization.release()
    for strategy_id, reason in done.unprotected.items():
        log_event(component, "position_unprotected", level="ERROR", details={"strategy": strategy_id, "reason": reason,
                                                                             "why": why},
                  action_taken="local stop stays armed; retried")
    return done


def _place_one(services: Any, strategy: Any, runtime: Runtime, why: str, component: str, done: Protection) -> None:
    """Journal, place and record one position's venue-side stop (the caller holds its serialization)."""
    if not runtime.stop_loss:
        done.unprotected[strategy.id] = "no stop-loss level to place at the venue"
        return
    client_id = protective_stop_id(strategy.id, runtime.entry_seq)
    fields = {"strategy_id": strategy.id, "account": strategy.account, "symbol": strategy.symbol,
              "side": "SELL", "quantity": repr(runtime.quantity), "purpose": PROTECTIVE_STOP,
              "stop_loss": repr(runtime.stop_loss), "reason": why}
    try:
        services.store.journal_intent_or_buffer(client_id, fields)
    except (StoreUnavailable, BufferWriteError) as exc:
        done.unprotected[strategy.id] = f"cannot journal the intent: {exc}"
        return
    outcome = services.venue.place_stop(strategy.symbol, "SELL", runtime.stop_loss, runtime.quantity, client_id)
    live = outcome.ok or outcome.kind.value == "DUPLICATE"  # -4116: ours is already live there
    # Live at the venue: left unsettled in the journal until it is taken back.
    try:
        services.store.journal_outcome_or_buffer(client_id, "ACCEPTED" if live else outcome.kind.value,
                                                 {"strategy_id": strategy.id, "detail": outcome.describe()},
                                                 final=not live and not outcome.needs_lookup)
    except (StoreUnavailable, BufferWriteError) as exc:
        log_event(component, "protective_stop_outcome_unrecorded", level="ERROR",
                  details={"strategy": strategy.id, "client_order_id": client_id, "error": str(exc)},
                  action_taken="the intent is journaled: the next cold start looks it up")
    if not live:
        done.unprotected[strategy.id] = f"venue refused the protective stop: {outcome.describe()}"
        return
    services.protective.hold(strategy.id, client_id)
    if not planted.on("exit_ignores_fence"):
        services.stops.disarm(strategy.symbol, strategy.id)
    done.placed[strategy.id] = client_id
    log_event(component, "protective_stop_placed", level="WARNING",
              details={"strategy": strategy.id, "client_order_id": client_id, "stop": runtime.stop_loss,
                       "quantity": runtime.quantity, "why": why, "outcome": outcome.describe()},
              action_taken="venue holds the stop; local stop disarmed until it is taken back")


class StopFate(StrEnum):
    """What became of a venue-side protective stop that is being taken back."""

    TRIGGERED = "TRIGGERED"  # it executed: the venue exited the position
    GONE = "GONE"  # no longer live and nothing executed (cancelled now or before, expired, never placed)
    KEPT = "KEPT"  # live, and left in place on purpose (nothing local could take over)
    IN_DOUBT = "IN_DOUBT"  # the venue did not say: it may still be live, or trigger


@dataclass(frozen=True)
class TakenBack:
    fate: StopFate
    status: str  # the outcome to journal for it (FILLED, CANCELED, NOT_FOUND, EXPIRED...)
    detail: str


def take_back_stop(venue: Any, symbol: str, client_id: str, *, may_cancel: Callable[[], bool] = lambda: True,
                   sleep: Callable[[float], None] = time.sleep) -> TakenBack:
    """Learn a protective stop's state at the venue and cancel it while it is live, so that exactly
    one of it and Warden's own exit can ever execute for the position (seeds 21, 31). Rate limits
    and transient errors are asked again a few times (bounded); anything else unclear is IN_DOUBT."""
    looked = _asked(lambda: venue.query_stop(client_id, priority=Priority.STOP), sleep)
    fate = _fate(looked)
    if fate is not None:
        return fate
    if not may_cancel():
        return TakenBack(StopFate.KEPT, "NEW", looked.describe())
    cancelled = _asked(lambda: venue.cancel_stop(symbol, client_id, priority=Priority.STOP), sleep)
    if cancelled.ok:
        return TakenBack(StopFate.GONE, "CANCELED", cancelled.describe())
    # Not cancelled: it may have triggered meanwhile, or the venue did not answer. Ask once more.
    return _fate(_asked(lambda: venue.query_stop(client_id, priority=Priority.STOP), sleep)) or TakenBack(
        StopFate.IN_DOUBT, "", f"cancel: {cancelled.describe()}")


def look_up_stop(venue: Any, client_id: str, *, sleep: Callable[[float], None] = time.sleep) -> TakenBack | None:
    """A protective stop's fate at the venue, left as it is; None while it is live."""
    return _fate(_asked(lambda: venue.query_stop(client_id, priority=Priority.STOP), sleep))


def _fate(looked: VenueOutcome) -> TakenBack | None:
    """The stop's fate from one lookup; None while it is live (NEW)."""
    if looked.kind is OutcomeKind.FILLED:
        return TakenBack(StopFate.TRIGGERED, "FILLED", looked.describe())
    if looked.kind is OutcomeKind.NOT_FOUND:
        return TakenBack(StopFate.GONE, "NOT_FOUND", looked.describe())
    if looked.kind is OutcomeKind.ACCEPTED and looked.order_status == "NEW":
        return None
    if looked.kind is OutcomeKind.ACCEPTED and looked.order_status not in ("TRIGGERING", None):
        return TakenBack(StopFate.GONE, str(looked.order_status), looked.describe())
    return TakenBack(StopFate.IN_DOUBT, "", looked.describe())


def _asked(call: Callable[[], VenueOutcome], sleep: Callable[[float], None]) -> VenueOutcome:
    outcome = call()
    for _ in range(ASK_TRIES - 1):
        if outcome.kind not in (OutcomeKind.RATE_LIMITED, OutcomeKind.REJECTED_TRANSIENT):
            break
        sleep(min(ASK_WAIT_MAX_S, max(0.01, outcome.retry_after_s or 0.1)))
        outcome = call()
    return outcome
