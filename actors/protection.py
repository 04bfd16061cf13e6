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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from actors import planted
from runtime.logging import log_event
from runtime.store.errors import BufferWriteError, StoreUnavailable
from runtime.store.runtime_state import Position, Runtime

PROTECTIVE_STOP = "protective_stop"


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
                           *, component: str) -> Protection:
    """One venue-side stop per position not already held; the local stop is disarmed once it is live."""
    done = Protection()
    for strategy, runtime in positions:
        if services.protective.holds(strategy.id):
            continue
        if not runtime.stop_loss:
            done.unprotected[strategy.id] = "no stop-loss level to place at the venue"
            continue
        client_id = protective_stop_id(strategy.id, runtime.entry_seq)
        fields = {"strategy_id": strategy.id, "account": strategy.account, "symbol": strategy.symbol,
                  "side": "SELL", "quantity": repr(runtime.quantity), "purpose": PROTECTIVE_STOP,
                  "stop_loss": repr(runtime.stop_loss), "reason": why}
        try:
            services.store.journal_intent_or_buffer(client_id, fields)
        except (StoreUnavailable, BufferWriteError) as exc:
            done.unprotected[strategy.id] = f"cannot journal the intent: {exc}"
            continue
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
        if live:
            services.protective.hold(strategy.id, client_id)
            if not planted.on("exit_ignores_fence"):
                services.stops.disarm(strategy.symbol, strategy.id)
            done.placed[strategy.id] = client_id
            log_event(component, "protective_stop_placed", level="WARNING",
                      details={"strategy": strategy.id, "client_order_id": client_id, "stop": runtime.stop_loss,
                               "quantity": runtime.quantity, "why": why, "outcome": outcome.describe()},
                      action_taken="venue holds the stop; local stop disarmed until it is taken back")
        else:
            done.unprotected[strategy.id] = f"venue refused the protective stop: {outcome.describe()}"
    for strategy_id, reason in done.unprotected.items():
        log_event(component, "position_unprotected", level="ERROR", details={"strategy": strategy_id, "reason": reason,
                                                                             "why": why},
                  action_taken="local stop stays armed; retried")
    return done
