"""Correcting an excess position: a fill for an intent already settled (DESIGN §3, F29).

A late, duplicate or unknown fill leaves the account's net position on a symbol beyond what
its strategies recorded. It is corrected at once, limited to the excess, and alerted:

- an excess long (a late BUY: an entry bought twice) is sold, reduce-only;
- an excess short (a late SELL: an exit sold twice) is bought back. Strategies share the
  account's one net position per symbol, and exits are reduce-only, so an exit can sell twice
  only out of a sibling's long: the net position is then still long (or flat), a reduce-only BUY
  would be refused (-2022), and the siblings' stops would find nothing left to sell (seed 1001,
  t25). So the buy-back is reduce-only only when the venue is short by at least the excess,
  else a plain BUY of exactly the excess.

Never a second correction of one fill: the correction's client id is derived from the venue
order id of the excess fill, it is looked up at the venue before it is sent, and the caller
remembers which fills it corrected. Never a correction from a moving picture: while any
strategy of the symbol has an order in flight or in doubt, or a venue-side protective stop
holds one, the recorded and venue positions may disagree for a moment, so the correction waits
(`Busy`) until the symbol is quiet: recorded positions read before and after the venue's agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.core.settle import QTY_EPSILON
from actors.node_ids import POSITION_MANAGER
from actors.services import Services
from runtime.logging import log_event
from runtime.store.errors import CorruptState
from runtime.store.runtime_state import Position
from runtime.venue.budget import Priority
from runtime.venue.ids import validate_client_order_id
from runtime.venue.outcomes import OutcomeKind

CORRECTION = "correction"  # the journal purpose of a correction order


@dataclass(frozen=True)
class Correction:
    side: str
    quantity: float
    reduce_only: bool


def plan_correction(fill_side: str, fill_qty: float, expected: float, held: float) -> Correction | None:
    """The order that undoes the excess a fill of `fill_qty` on `fill_side` left: at most the
    fill, at most the venue's drift (`held` net minus the strategies' `expected`); None if none."""
    drift = held - expected
    if fill_side == "BUY":
        quantity, side, reduce_only = min(fill_qty, drift), "SELL", True
    else:
        quantity, side = min(fill_qty, -drift), "BUY"
        reduce_only = held <= -quantity  # the venue is short by at least the excess
    quantity = round(quantity, 12)
    if quantity <= QTY_EPSILON * max(1.0, fill_qty):
        return None
    return Correction(side, quantity, reduce_only)


def correction_id(symbol: str, venue_order_id: int) -> str:
    """The correction's client id: one per excess fill, so it is never sent twice."""
    return validate_client_order_id(f"fix:{symbol}:{venue_order_id}")


class Busy(Exception):
    """The symbol is not quiet (an order in flight or in doubt, a protective stop held, the venue
    or the store did not answer): the correction waits and is tried again."""


def _recorded(services: Services, symbol: str) -> float:
    """The strategies' recorded quantity on `symbol`; Busy while one of them has an order in doubt."""
    strategies = [s for s in services.config.strategies if s.symbol == symbol]
    held_by_stop = services.protective.held()
    loaded = services.store.load_runtimes([s.id for s in strategies])
    total = 0.0
    for strategy in strategies:
        runtime = loaded[strategy.id]
        if isinstance(runtime, CorruptState):
            raise Busy(f"runtime of {strategy.id} unreadable: {runtime}")
        if strategy.id in held_by_stop:
            raise Busy(f"a venue-side protective stop holds {strategy.id}")
        if runtime is None:
            continue
        if runtime.pending_order:
            raise Busy(f"{strategy.id} has {runtime.pending_order} in flight or in doubt")
        if runtime.position is Position.BOUGHT:
            total += runtime.quantity
    return round(total, 12)


def correct_excess(services: Services, symbol: str, fill_side: str, fill_qty: float, venue_order_id: int,
                   cause: str) -> str | None:
    """Correct at once the excess the fill `venue_order_id` left on `symbol`, limited to it.

    Returns the correction's client id, or None when there is nothing to correct; raises Busy
    while the symbol is not quiet (the caller tries again)."""
    client_id = correction_id(symbol, venue_order_id)
    expected = _recorded(services, symbol)
    outcome = services.venue.positions(symbol, priority=Priority.STOP)
    if not outcome.ok:
        raise Busy(f"venue positions: {outcome.describe()}")
    held = round(sum(float(p.amount) for p in outcome.data or [] if p.symbol == symbol), 12)
    if _recorded(services, symbol) != expected:
        raise Busy("a strategy's position changed while the venue was asked")
    plan = plan_correction(fill_side, fill_qty, expected, held)
    if plan is None:
        return None
    looked = services.venue.query_order(symbol, client_id, priority=Priority.STOP)
    if looked.ok:
        log_event(POSITION_MANAGER, "excess_already_corrected", details={"client_order_id": client_id,
                                                                        "cause": cause}, level="WARNING")
        return None
    if looked.kind is not OutcomeKind.NOT_FOUND:
        raise Busy(f"lookup of {client_id}: {looked.describe()}")
    fields = {"symbol": symbol, "side": plan.side, "quantity": repr(plan.quantity), "purpose": CORRECTION,
              "reduce_only": str(plan.reduce_only), "reason": cause}
    services.store.journal_intent_or_buffer(client_id, fields)
    placed = services.venue.place_order(symbol, plan.side, "MARKET", plan.quantity, client_id,
                                        reduce_only=plan.reduce_only, priority=Priority.STOP)
    services.store.journal_outcome_or_buffer(client_id, placed.kind.value, {"detail": placed.describe()}, final=True)
    log_event(POSITION_MANAGER, "excess_corrected",
              details={"symbol": symbol, "client_order_id": client_id, "side": plan.side,
                       "excess": plan.quantity, "reduce_only": plan.reduce_only, "expected": expected,
                       "venue": held, "cause": cause, "outcome": placed.describe()},
              action_taken=f"{'reduce-only ' if plan.reduce_only else ''}{plan.side} of the excess; reconciled again",
              level="CRITICAL")
    return client_id
