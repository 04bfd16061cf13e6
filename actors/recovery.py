"""Cold start and reconciliation (F19): make the runtime agree with the venue before trading.

Order of work on start: register strategy definitions → settle every journaled intent
without a final outcome, by lookup (never by resend) → load runtimes → re-arm stops →
compare positions with the venue → re-check stop conditions against the last price.
The venue is the source of truth for positions; drift is reported, never papered over.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from actors.core.stop_index import StopHit
from actors.excess import CORRECTION
from actors.node_ids import POSITION_MANAGER
from actors.orders import Purpose
from actors.pipeline import OrderPipeline, RuntimeBusy, Verdict
from actors.protection import PROTECTIVE_STOP, StopFate, protective_stop_id, take_back_stop
from actors.services import Services
from runtime.logging import log_event
from runtime.store.errors import CorruptState
from runtime.store.runtime_state import Position, Runtime
from runtime.venue.outcomes import OutcomeKind


@dataclass
class RecoveryReport:
    settled: dict[str, str] = field(default_factory=dict)  # client order id -> verdict
    armed: list[str] = field(default_factory=list)  # strategy ids whose stop was re-armed
    corrupt: dict[str, str] = field(default_factory=dict)  # strategy id -> problem
    drift: dict[str, dict[str, float]] = field(default_factory=dict)  # symbol -> {expected, venue, drift}
    positions: dict[str, dict[str, float]] = field(default_factory=dict)  # every symbol: the same figures
    triggered: dict[str, list[StopHit]] = field(default_factory=dict)  # symbol -> stops crossed by last price
    in_doubt: list[str] = field(default_factory=list)  # strategy ids whose order is still in doubt

    def as_dict(self) -> dict[str, Any]:
        return {
            "settled": self.settled,
            "armed": self.armed,
            "corrupt": self.corrupt,
            "drift": self.drift,
            "positions": self.positions,
            "triggered": {s: [h.strategy_id for h in hits] for s, hits in self.triggered.items()},
            "in_doubt": self.in_doubt,
        }


def register_strategies(services: Services) -> None:
    services.store.put_strategies({s.id: s.as_dict() for s in services.config.strategies})


def fence_runtimes(services: Services, report: RecoveryReport) -> None:
    """Fence each runtime with this process's generation (after the disk buffer's replay, whose
    records the last run wrote): from here on a late runtime write of an earlier process is
    refused by the store (StaleGeneration)."""
    if not services.generation:
        return
    fenced = services.store.fence_all([s.id for s in services.config.strategies], services.generation)
    for strategy_id, outcome in fenced.items():
        if isinstance(outcome, CorruptState):
            report.corrupt[strategy_id] = str(outcome)


def settle_journal(services: Services, pipeline: OrderPipeline, report: RecoveryReport) -> None:
    accounts = {s.id: s.account for s in services.config.strategies}
    for entry in services.store.unsettled():
        fields = entry.fields
        strategy_id = str(fields.get("strategy_id", ""))
        symbol = str(fields.get("symbol", ""))
        if not strategy_id or not symbol:
            report.settled[entry.client_order_id] = "unreadable intent: no strategy_id/symbol"
            continue
        if fields.get("purpose") in (PROTECTIVE_STOP, CORRECTION):
            continue  # protective stops: take_back_protective_stops; corrections: the reconcile after them
        purpose = Purpose(str(fields.get("purpose", Purpose.ENTRY.value)))
        result = pipeline.settle(strategy_id, accounts.get(strategy_id, "default"), symbol, entry.client_order_id,
                                 purpose)
        report.settled[entry.client_order_id] = result.verdict.value
        if result.verdict is Verdict.UNKNOWN and strategy_id not in report.in_doubt:
            report.in_doubt.append(strategy_id)


def take_back_protective_stops(services: Services, report: RecoveryReport) -> None:
    """Venue-side stops left by the last graceful stop or a store outage (journaled, unsettled,
    before they were sent): triggered → the position exited by stop-loss meanwhile; still live →
    cancel it, the local stop book takes over. Only journaled ones can exist, so only they
    are asked about: one venue call per stop left, not one per strategy.

    A stop that could not be settled (the venue did not answer, the cancel failed) stays in
    `services.protective`: its local stop stays disarmed, or one crossing could exit twice.
    A hold whose stop the journal has settled (restored from a local snapshot written before
    the take-back, actors.cold_stops) is released: nothing at the venue holds that position."""
    holds = services.protective.held()  # before the journal read: a hold's intent is journaled before it
    unsettled = [entry for entry in services.store.unsettled() if entry.fields.get("purpose") == PROTECTIVE_STOP]
    journaled = {entry.client_order_id for entry in unsettled}
    for strategy_id, client_id in holds.items():
        if client_id not in journaled:
            services.protective.release(strategy_id)
    for entry in unsettled:
        client_id, strategy_id = entry.client_order_id, str(entry.fields.get("strategy_id", ""))
        symbol = str(entry.fields.get("symbol", ""))
        taken = take_back_stop(services.venue, symbol, client_id,
                               may_cancel=lambda: _local_stop_can_take_over(services, strategy_id, client_id))
        if taken.fate is StopFate.TRIGGERED:
            def exited(runtime: Runtime) -> Runtime | None:
                if runtime.position is Position.BOUGHT and protective_stop_id(strategy_id, runtime.entry_seq) == client_id:
                    return replace(runtime, position=Position.EXITED_BY_SL, quantity=0.0)
                return None

            try:
                services.pipeline.update_runtime(strategy_id, exited)
            except (CorruptState, RuntimeBusy) as exc:
                log_event(POSITION_MANAGER, "take_back_incomplete",
                          details={"strategy": strategy_id, "error": str(exc)},
                          action_taken="runtime left; reconciliation shows the drift", level="ERROR")
            services.stops.disarm(symbol, strategy_id)
            services.store.journal_outcome(client_id, "FILLED", {"strategy_id": strategy_id,
                                                                 "reason": "protective stop triggered while down"},
                                           final=True)
            report.settled[client_id] = "FILLED (protective stop triggered while the node was down)"
        elif taken.fate is StopFate.GONE:
            services.store.journal_outcome(client_id, taken.status, {"strategy_id": strategy_id,
                                                                     "detail": taken.detail[:900]}, final=True)
            report.settled[client_id] = f"{taken.status} (taken back; the local stop book takes over)"
        elif taken.fate is StopFate.KEPT:
            report.settled[client_id] = "kept at the venue: the runtime cannot be read to re-arm the stop locally"
        if taken.fate in (StopFate.TRIGGERED, StopFate.GONE):
            services.protective.release(strategy_id)
        else:  # F31 / in doubt: its local stop stays disarmed, or one crossing could exit twice
            services.protective.hold(strategy_id, client_id)


def _local_stop_can_take_over(services: Services, strategy_id: str, client_id: str) -> bool:
    """May the venue-side stop `client_id` be cancelled: is there a runtime (stored, or last
    known) that will re-arm the local stop for that position?"""
    try:
        runtime = services.store.load_runtime(strategy_id)
    except CorruptState as exc:
        runtime, problem = services.runtime_cache.get(strategy_id), str(exc)
    else:
        runtime, problem = runtime or services.runtime_cache.get(strategy_id), "runtime record missing"
    if runtime is not None:
        return True
    log_event(POSITION_MANAGER, "protective_stop_kept",
              details={"strategy": strategy_id, "client_order_id": client_id,
                       "problem": problem},
              action_taken="venue-side stop left in place: it is this position's stop until an operator repairs "
                           "the record", level="ERROR")
    return False


def load_and_arm(services: Services, report: RecoveryReport) -> dict[str, float]:
    """Refresh the runtime cache from the store and re-arm stops. Returns expected qty per symbol.

    A runtime that is missing or malformed keeps its last known value in the cache (F31):
    exits made from it are checked against the venue. A position a venue-side protective
    stop still holds is not re-armed locally (one crossing, one exit)."""
    expected: dict[str, float] = {s: 0.0 for s in services.config.feeds.symbols}
    loaded = services.store.load_runtimes([s.id for s in services.config.strategies])
    for strategy in services.config.strategies:
        runtime = loaded[strategy.id]
        if isinstance(runtime, CorruptState):
            report.corrupt[strategy.id] = str(runtime)
            continue
        if runtime is None:
            continue
        services.runtime_cache.put(strategy.id, runtime)
        if runtime.position is Position.BOUGHT or runtime.pending_order:
            expected[strategy.symbol] = expected.get(strategy.symbol, 0.0) + runtime.quantity
        if runtime.position is Position.BOUGHT and runtime.stop_loss and not services.protective.holds(strategy.id):
            services.stops.arm(strategy.symbol, strategy.id, runtime.stop_loss, runtime.quantity)
            report.armed.append(strategy.id)
    return expected


def symbol_positions(services: Services, expected: dict[str, float]) -> dict[str, dict[str, float]] | None:
    """Per symbol: the sum of the strategies' recorded quantities (`expected`), the venue's net
    position and their difference (`drift`, venue minus expected; strategies sharing a symbol
    share the venue's net position, case 11 of issue 10). None when the venue can't say."""
    outcome = services.venue.positions()
    if outcome.kind is not OutcomeKind.ACCEPTED:
        log_event(POSITION_MANAGER, "reconcile_unavailable", details={"outcome": outcome.describe()},
                  level="WARNING")
        return None
    venue = {p.symbol: float(p.amount) for p in outcome.data or []}
    totals: dict[str, dict[str, float]] = {}
    for symbol in set(expected) | set(venue):
        want = Decimal(str(round(expected.get(symbol, 0.0), 12)))
        have = Decimal(str(round(venue.get(symbol, 0.0), 12)))
        totals[symbol] = {"expected": float(want), "venue": float(have), "drift": float(have - want)}
    return totals


def drifting(totals: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The symbols whose venue position differs from the sum of their strategies'."""
    return {symbol: dict(t) for symbol, t in totals.items() if abs(t["drift"]) > 1e-9}


def reconcile_open_orders(services: Services, drift: dict[str, dict[str, float]]) -> bool:
    """Open orders of our strategies at the venue that no runtime has pending are unexplained:
    drift on their symbol (entries closed there until explained). False when the venue can't say."""
    outcome = services.venue.open_orders()
    if not outcome.ok:
        log_event(POSITION_MANAGER, "reconcile_unavailable", details={"outcome": outcome.describe()},
                  level="WARNING")
        return False
    strategies = {s.id for s in services.config.strategies}
    for order in outcome.data or []:
        client_id = str(order.get("clientOrderId", ""))
        strategy_id = client_id.rpartition(":")[0]
        if strategy_id not in strategies:
            continue
        runtime = services.runtime_cache.get(strategy_id)
        if runtime is not None and runtime.pending_order == client_id:
            continue  # in flight: the pipeline settles it
        symbol = str(order.get("symbol", ""))
        entry = drift.setdefault(symbol, {"expected": 0.0, "venue": 0.0})
        entry["unexplained_open_orders"] = entry.get("unexplained_open_orders", 0.0) + 1.0
        log_event(POSITION_MANAGER, "reconcile_open_order",
                  details={"symbol": symbol, "client_order_id": client_id}, level="ERROR")
    return True


def recheck_stops(services: Services, report: RecoveryReport) -> None:
    for symbol in services.config.feeds.symbols:
        last = services.store.last_price(symbol)
        if last is None:
            continue
        hits = services.stops.triggered(symbol, last.price)
        if hits:
            report.triggered[symbol] = hits


def cold_start(services: Services) -> RecoveryReport:
    report = RecoveryReport()
    pipeline = services.pipeline  # the live engine's serialization: never a second writer
    register_strategies(services)
    services.claim_generation()
    if services.store.buffer_pending():
        # Records buffered while Redis was down (last run) belong in the journal before it is read.
        services.store.replay_buffer()
    fence_runtimes(services, report)
    settle_journal(services, pipeline, report)
    take_back_protective_stops(services, report)
    expected = load_and_arm(services, report)
    report.positions = symbol_positions(services, expected) or {}
    report.drift = drifting(report.positions)
    recheck_stops(services, report)
    log_event(POSITION_MANAGER, "cold_start", details=report.as_dict(),
              action_taken="stops re-armed; journal settled")
    return report
