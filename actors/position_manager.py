"""The `position-manager` actor: positions, reconciliation, and orphaned positions.

On start it runs the cold start (settle the journal, re-arm stops, compare with the venue,
re-check stops against the last price). Afterwards it reconciles periodically, after
every store recovery and on request; while the venue and the runtime disagree about a
symbol, entries on that symbol stay closed (a reconciliation barrier) and the drift is
shown in status. Per symbol, the sum of the strategies' recorded quantities, the venue's
net position and their difference are kept for status (strategies sharing a symbol share
its net position, issue 10 case 11); a drift is alerted once when it appears or changes
(`reconcile_drift`). A late or duplicate fill is corrected at once (actors.excess), once the
symbol is quiet, and at most once per fill. A strategy disabled by its supervisor hands its position here: the
stop stays armed in the stop book and the position is listed as orphaned.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from actors.cold_stops import arm_from_last_known
from actors.core import signals
from actors.core.signals import Effect, Scope, Signal
from actors.node_ids import DEGRADATION, ENGINE, POSITION_MANAGER
from actors.messages import CorrectExcess, Reconcile, Reconciled, SettlePending, StopsTriggered, StrategyDisabled
from actors.excess import Busy, correct_excess, correction_id
from actors.pipeline import OrderResult, Verdict
from actors.recovery import (RecoveryReport, cold_start, drifting, load_and_arm, reconcile_open_orders,
                             symbol_positions, take_back_protective_stops)
from actors.services import Services
from runtime.logging import log_event
from runtime.store.errors import StoreUnavailable
from supervision import SupervisedActor

NODE = POSITION_MANAGER
PERIODIC = "periodic"
CORRECTION_RETRY_S = 0.5  # a correction waiting for its symbol to be quiet is tried again this often
CORRECTION_PATIENCE_S = 30.0  # ... for this long; then it is alerted as not corrected
CORRECTED_KEPT = 1000  # corrected fills remembered (the venue lookup of the correction's id backs it)


class PositionManager(SupervisedActor):
    def __init__(self, services: Services, reconcile_every_s: float | None = None) -> None:
        super().__init__()
        self.services = services
        self.reconcile_every_s = services.config.venue.reconcile_every_s if reconcile_every_s is None \
            else reconcile_every_s
        self.report = RecoveryReport()
        self.drift: dict[str, dict[str, float]] = {}
        self.positions: dict[str, dict[str, float]] = {}  # symbol -> {expected, venue, drift}, last reconcile
        self.orphaned: dict[str, str] = {}
        self.last_reconcile_at: float | None = None
        self.skipped = 0  # reconcile rounds skipped because the store was down
        self.cold_start_pending = ""  # why the cold start has not run yet (Redis down at start)
        self.corrected: dict[str, None] = {}  # correction client ids done (one per excess fill)
        self.armed_from_last_known: list[str] = []  # stops armed from the local snapshot (Redis down at start)
        self._timer: int | None = None

    def on_start(self) -> None:
        self.services.directory.register(NODE, self.generation, self.actor_ref)
        self._cold_start()
        self._schedule_reconcile()

    def _cold_start(self) -> bool:
        """F19 cold start; with Redis down it is deferred, never a failed start (F28): the store's
        outage keeps entries closed, and the next reconcile (periodic, or monitor:store's once the
        store is back) runs it before the gate reopens."""
        try:
            self.report = cold_start(self.services)
        except StoreUnavailable as exc:
            first = not self.cold_start_pending
            self.cold_start_pending = str(exc)
            if first:
                log_event(NODE, "cold_start_deferred", details={"error": str(exc)},
                          action_taken="entries stay closed; cold start runs once the store answers", level="ERROR")
                self._arm_from_last_known()
            return False
        self.cold_start_pending = ""
        if self.services.snapshots is not None:
            self.services.snapshots.enable()
        self.positions = self.report.positions
        self._publish_drift(self.report.drift)
        self.last_reconcile_at = time.time()
        for strategy_id in self.report.in_doubt:
            self.services.directory.tell(ENGINE, SettlePending(strategy_id))
        for symbol, hits in self.report.triggered.items():
            self.services.directory.tell(ENGINE, StopsTriggered(symbol, tuple(hits), time.perf_counter()))
        return True

    def _arm_from_last_known(self) -> None:
        """Seed 4242: Redis down at start; the stops of the last known runtimes (local snapshot and
        disk buffer) are armed now, not when Redis returns. Whatever goes wrong here, this actor
        starts (the deferred cold start is the fallback), and says so."""
        try:
            self.armed_from_last_known = arm_from_last_known(self.services)
        except Exception as exc:  # noqa: BLE001 - a failed start here would cost every stop; say it, go on
            log_event(NODE, "arm_from_last_known_failed", level="CRITICAL", exc=exc,
                      details={"error": repr(exc)},
                      action_taken="no stop armed until the deferred cold start (Redis back)")
        if self.services.snapshots is not None:
            self.services.snapshots.enable()

    def on_stop(self) -> None:
        if self._timer is not None:
            self.services.timers.cancel(self._timer)
        self.services.directory.unregister(NODE, self.generation)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Reconcile):
            drift = self.reconcile(message.reason)
            if message.reason == PERIODIC:
                self._schedule_reconcile()
            if message.request_id:
                detail = "not reconciled: store or venue unavailable" if drift is None else f"drift on {sorted(drift)}" if drift else "agrees"
                self.services.directory.tell(message.reply_to, Reconciled(message.request_id, drift is not None, detail))
        elif isinstance(message, CorrectExcess):
            self._correct(message)
        elif isinstance(message, OrderResult):
            if message.reconcile:
                self.reconcile(message.reconcile)
            if message.verdict is Verdict.FILLED and message.intent.strategy_id in self.orphaned \
                    and message.runtime is not None and message.runtime.position.value != "bought":
                del self.orphaned[message.intent.strategy_id]
        elif isinstance(message, StrategyDisabled):
            runtime = self.services.runtime_cache.get(message.strategy_id)
            if runtime is not None and runtime.position.value == "bought":
                self.orphaned[message.strategy_id] = message.reason
                log_event(NODE, "position_handed_over", details={"strategy": message.strategy_id,
                                                                 "reason": message.reason},
                          action_taken="stop stays armed; position kept by position-manager", level="WARNING")
        return None

    def _correct(self, message: CorrectExcess) -> None:
        """Correct a late fill's excess once the symbol is quiet; at most once per fill."""
        key = correction_id(message.symbol, message.venue_order_id)
        if key in self.corrected:
            return
        cause = f"late fill of {message.client_order_id} (venue order {message.venue_order_id})"
        try:
            fixed = correct_excess(self.services, message.symbol, message.side, message.quantity,
                                   message.venue_order_id, cause)
        except (Busy, StoreUnavailable) as exc:
            first_seen = message.first_seen or time.monotonic()
            if time.monotonic() - first_seen < CORRECTION_PATIENCE_S:
                self.services.timers.tell_after(CORRECTION_RETRY_S, self.actor_ref,
                                                replace(message, first_seen=first_seen))
                return
            log_event(NODE, "excess_not_corrected",
                      details={"symbol": message.symbol, "client_order_id": message.client_order_id,
                               "side": message.side, "quantity": message.quantity, "why": str(exc)},
                      action_taken="entries on the symbol stay closed on the drift until an operator closes "
                                   "the excess", level="CRITICAL")
            self.reconcile(cause)
            return
        self.corrected[key] = None
        while len(self.corrected) > CORRECTED_KEPT:
            del self.corrected[next(iter(self.corrected))]
        self.reconcile(f"after correcting {fixed}" if fixed else cause)

    def reconcile(self, reason: str) -> dict[str, dict[str, float]] | None:
        """Take back venue-side protective stops, refresh the runtime cache, compare with the venue.

        None when it could not run: the store is down (F28: skip the round and say so, never
        crash, never drop the cache) or the disk buffer is not replayed yet (the journal and
        runtimes in Redis are older than the cache), or the venue did not answer."""
        if self.cold_start_pending:
            return self.report.drift if self._cold_start() else None
        store = self.services.store
        try:
            if store.buffer_pending():
                raise StoreUnavailable("reconcile", "disk buffer not replayed into Redis yet")
            take_back_protective_stops(self.services, RecoveryReport())
            expected = load_and_arm(self.services, RecoveryReport())
        except StoreUnavailable as exc:
            self.skipped += 1
            log_event(NODE, "reconcile_skipped",
                      details={"reason": reason, "error": str(exc), "skipped": self.skipped},
                      action_taken="round skipped; runtime cache kept; exits run from it", level="WARNING")
            return None
        totals = symbol_positions(self.services, expected)
        drift = None if totals is None else drifting(totals)
        if drift is not None and not reconcile_open_orders(self.services, drift):
            drift = None
        if totals is not None and drift is not None:
            for symbol, entry in drift.items():  # an unexplained open order's symbol: its real figures
                entry.update(totals.get(symbol, {}))
            self.positions = totals
            self._publish_drift(drift)
            for symbol in self.services.config.feeds.symbols:  # the reconnect barrier, if any, is lifted
                self.services.directory.tell(DEGRADATION, signals.reconcile_barrier(symbol, False))
            self.last_reconcile_at = time.time()
            log_event(NODE, "reconciled", details={"reason": reason, "drift": drift})
        return drift

    def status_details(self) -> dict[str, Any]:
        return {
            "drift": dict(self.drift),
            "positions": dict(self.positions),
            "orphaned": dict(self.orphaned),
            "armed_stops": self.services.stops.count(),
            "last_reconcile_at": self.last_reconcile_at,
            "reconcile_skipped": self.skipped,
            "protective_stops": self.services.protective.held(),
            "cold_start": self.report.as_dict(),
            "cold_start_pending": self.cold_start_pending,
            "armed_from_last_known": list(self.armed_from_last_known),
            "runtime_snapshot_at": self.services.snapshots.written_at if self.services.snapshots else None,
        }

    def _publish_drift(self, drift: dict[str, dict[str, float]]) -> None:
        for symbol in set(self.drift) | set(drift):
            active = symbol in drift
            reason = (f"positions or open orders disagree with the venue: expected {drift[symbol]['expected']}, "
                      f"venue {drift[symbol]['venue']} (drift {drift[symbol].get('drift', 0.0):+g})" + (
                          f", {drift[symbol]['unexplained_open_orders']:g} unexplained open order(s)"
                          if drift[symbol].get("unexplained_open_orders") else "")
                      ) if active else "positions and open orders agree with the venue"
            self.services.directory.tell(DEGRADATION, Signal(
                source=NODE, cause="reconcile_drift", active=active, effect=Effect.BLOCK_ENTRIES,
                scope=Scope.SYMBOL, key=symbol, reason=reason, clean_period=0.0))
            if active and drift[symbol] != self.drift.get(symbol):  # alerted when it appears or changes
                log_event(NODE, "reconcile_drift", details={"symbol": symbol, **drift[symbol]},
                          action_taken="entries closed on the symbol until it agrees", level="ERROR")
            elif not active:
                log_event(NODE, "reconcile_drift_cleared", details={"symbol": symbol},
                          action_taken="entries on the symbol may reopen")
        self.drift = drift

    def _schedule_reconcile(self) -> None:
        self._timer = self.services.timers.tell_after(self.reconcile_every_s, self.actor_ref, Reconcile(PERIODIC))
