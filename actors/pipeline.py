"""The order pipeline of DESIGN §2, one intent at a time, on a worker thread.

validate → lock → load runtime → preconditions → journal intent → submit → handle
outcome (retry / lookup) → update runtime → journal outcome → unlock → log.

Invariants this module exists for:
- the intent is journaled (Redis, or the fsynced disk buffer for exits) before it is sent;
- the client order id is derived from the runtime, so every retry, every re-delivery of
  the same queue entry and every restart reuses it;
- an outcome in doubt (UNKNOWN) is looked up by client id before anything is resent, and
  while unsettled it stays `pending_order` in the runtime: the strategy cannot send again;
- a stale generation (fenced strategy incarnation) is refused before any side effect.

Never does: call the venue without a journaled intent; hold the lock across an
operator cancel; sleep without the cancel event.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Callable

from loguru import logger

from actors.core.degradation import Gate, OrderKind
from actors.core.retry import RetryAction, RetryPolicy
from actors.orders import OrderIntent, Purpose, entry_order_id, entry_seq_of, exit_order_id
from actors.stop_book import StopBook
from runtime.store.errors import CorruptState, StoreUnavailable
from runtime.store.runtime_state import Position, Runtime, Status
from runtime.venue.outcomes import OutcomeKind, VenueOutcome
from supervision import Fence

log = logger.bind(component="execution-engine")

FLAT = (Position.NONE, Position.SOLD, Position.EXITED_BY_SL)
RATE_LIMIT_MIN_WAIT_S = 0.05  # never spin on a budget refusal that says "wait 0 s"
RATE_LIMIT_STAGGER_S = 0.1  # per priority step (STOP 0, EXIT 1, ENTRY 2) after a rate limit


class Verdict(StrEnum):
    FILLED = "FILLED"  # the venue executed it; runtime updated
    REFUSED = "REFUSED"  # not sent: gate closed, precondition failed, stale generation, busy
    SAFETY_ABORT = "SAFETY_ABORT"  # permanent reject, retries exhausted, corrupt state: strategy failed
    ACCOUNT_PAUSED = "ACCOUNT_PAUSED"  # TOKEN_INVALID: every strategy of the account paused
    UNKNOWN = "UNKNOWN"  # still in doubt after the lookups; pending until settled
    CANCELLED = "CANCELLED"  # an operator stop cancelled it before it was sent again


@dataclass(frozen=True)
class OrderResult:
    intent: OrderIntent
    verdict: Verdict
    reason: str
    client_order_id: str | None = None
    side: str | None = None
    filled_qty: float = 0.0
    avg_price: float = 0.0
    runtime: Runtime | None = None
    attempts: int = 0
    sent_at: float | None = None  # perf_counter of the first send (tick-to-wire measurement)


class RuntimeCache:
    """Last known runtime per strategy: what exits use while Redis is down (F18, F28) or while
    its record is missing or corrupt (F31). Never dropped: reconciliation refreshes it entry by
    entry from the store once the store answers."""

    def __init__(self) -> None:
        self._runtimes: dict[str, Runtime] = {}
        self._lock = threading.Lock()

    def put(self, strategy_id: str, runtime: Runtime) -> None:
        with self._lock:
            self._runtimes[strategy_id] = runtime

    def get(self, strategy_id: str) -> Runtime | None:
        with self._lock:
            return self._runtimes.get(strategy_id)


class StrategyLocks:
    """In-process mutual exclusion per strategy, in front of the Redis lock."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def of(self, strategy_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(strategy_id, threading.Lock())


class OrderPipeline:
    def __init__(
        self,
        store: Any,
        venue: Any,
        gate: Callable[[], Gate],
        fence: Fence,
        stops: StopBook,
        retry: RetryPolicy,
        *,
        lock_ttl_ms: int = 10_000,
        lock_wait_s: float = 2.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.venue = venue
        self.gate = gate
        self.fence = fence
        self.stops = stops
        self.retry = retry
        self.lock_ttl_ms = lock_ttl_ms
        self.lock_wait_s = lock_wait_s
        self.wall_clock = wall_clock
        self.cache = RuntimeCache()
        self.local_locks = StrategyLocks()
        self.on_rate_limited: Callable[[], None] = lambda: None  # called on a worker thread per 429/418

    # --- entry point ------------------------------------------------------------------

    def execute(self, intent: OrderIntent, cancel: threading.Event) -> OrderResult:
        refusal = self._validate(intent)
        if refusal is not None:
            return refusal
        local = self.local_locks.of(intent.strategy_id)
        if not local.acquire(timeout=self.lock_wait_s):
            return self._refuse(intent, "another order of this strategy is in progress")
        try:
            return self._locked(intent, cancel)
        finally:
            local.release()

    def _locked(self, intent: OrderIntent, cancel: threading.Event) -> OrderResult:
        try:
            lock = self._acquire_store_lock(intent)
        except StoreUnavailable:
            if not intent.purpose.reduces_risk:
                return self._refuse(intent, "store unavailable: entries are closed")
            lock = None  # F18: exits still run, recorded in the disk buffer
        else:
            if lock is None:
                stale = self.store.lock_problem(intent.strategy_id)
                if stale:  # F31: nobody holds it; it frees itself within lock_ttl and the stop is re-armed
                    return self._refuse(intent, f"lock_state:{intent.strategy_id}: {stale}", level="ERROR")
                return self._refuse(intent, f"lock_state:{intent.strategy_id} is held by another owner")
        try:
            runtime = self._load(intent)
            if isinstance(runtime, OrderResult):
                return runtime
            return self._run(intent, runtime, cancel)
        finally:
            if lock is not None:
                try:
                    self.store.release_lock(lock)
                except StoreUnavailable:
                    pass  # F6: the TTL frees it; the owner token keeps others safe meanwhile

    # --- steps ------------------------------------------------------------------------

    def _validate(self, intent: OrderIntent) -> OrderResult | None:
        if intent.generation and not self.fence.is_current(f"strategy:{intent.strategy_id}", intent.generation):
            return self._refuse(intent, f"stale generation {intent.generation}: that incarnation is fenced")
        if intent.purpose is Purpose.ENTRY:
            decision = self.gate().check(intent.strategy_id, intent.symbol, OrderKind.ENTRY, intent.account)
            if not decision.open:
                return self._refuse(intent, "gate closed: " + "; ".join(decision.reasons))
        elif self.gate().flushing:
            return self._refuse(intent, "HARD_SHUTDOWN final flush: no more orders")
        return None

    def _acquire_store_lock(self, intent: OrderIntent) -> Any:
        deadline = time.monotonic() + self.lock_wait_s
        while True:
            lock = self.store.acquire_lock(intent.strategy_id, self.lock_ttl_ms)
            if lock is not None or time.monotonic() > deadline:
                return lock
            time.sleep(0.005)

    def _load(self, intent: OrderIntent) -> Runtime | OrderResult:
        try:
            runtime = self.store.load_runtime(intent.strategy_id)
        except CorruptState as exc:
            if intent.purpose.reduces_risk:
                # F31: a bad record never costs a stop. Exit from the last known runtime; the
                # strategy is still failed (F14); the bad record is set aside and the last known
                # runtime (marked failed) written in its place, so the exit is recorded.
                runtime = self._last_known(intent, f"runtime record corrupt ({exc})", failed=f"SAFETY_ABORT: {exc}")
                if isinstance(runtime, Runtime):
                    try:
                        self.store.replace_corrupt_runtime(intent.strategy_id, runtime, str(exc))
                    except StoreUnavailable:
                        pass  # the exit's own writes go to the disk buffer
                return runtime
            # F14: that strategy only. Its stop stays armed; nothing is sent on a bad record.
            return self._abort(intent, None, f"SAFETY_ABORT: {exc}", mark=False)
        except StoreUnavailable:
            return self._last_known(intent, "store unavailable")
        if runtime is None and intent.purpose.reduces_risk:
            cached = self.cache.get(intent.strategy_id)
            if cached is not None and cached.position is Position.BOUGHT:
                return self._last_known(intent, "runtime record missing")
        return runtime or Runtime()

    def _last_known(self, intent: OrderIntent, why: str, failed: str = "") -> Runtime | OrderResult:
        """A risk-reducing order whose runtime cannot be read: the last known runtime, checked
        against the venue's position (F18, F28, F31). Reduce-only, so the venue never lets it
        open risk; refused when the venue says there is nothing to reduce."""
        runtime = self.cache.get(intent.strategy_id)
        if runtime is None:
            return self._refuse(intent, f"{why} and no last known runtime", level="ERROR")
        if runtime.position is Position.BOUGHT and intent.purpose.reduces_risk:
            venue = self.venue.positions(intent.symbol, priority=intent.purpose.priority)
            if venue.kind is OutcomeKind.ACCEPTED:
                long_qty = sum(float(p.amount) for p in venue.data or [] if p.symbol == intent.symbol)
                if long_qty <= 0:
                    # The venue is the source of truth: the position is gone (a venue-side stop, an
                    # operator). The cache follows it, so the stop is not re-armed to ask again per tick.
                    self.cache.put(intent.strategy_id, replace(runtime, position=Position.NONE, quantity=0.0))
                    return self._refuse(intent, f"{why}; the last known runtime says bought but the venue shows "
                                                f"no long position on {intent.symbol}: nothing to exit", level="ERROR")
        if failed:
            runtime = replace(runtime, status=Status.FAILED, reason=failed[:900])
        log.bind(event="exit_from_last_known_runtime",
                 details={"strategy": intent.strategy_id, "purpose": intent.purpose.value, "why": why,
                          "position": runtime.position.value, "quantity": runtime.quantity},
                 action_taken="risk-reducing order runs from the last known runtime, reduce-only").error(
            "exit_from_last_known_runtime")
        return runtime

    def _run(self, intent: OrderIntent, runtime: Runtime, cancel: threading.Event) -> OrderResult:
        if cancel.is_set():
            return self._refuse(intent, "cancelled by an operator stop (F25): not sent", runtime)
        refusal = self._validate(intent)  # again: waiting for the locks may have outlived the generation or gate
        if refusal is not None:
            return refusal
        if runtime.pending_order:
            pending_purpose = Purpose(runtime.pending_purpose or Purpose.ENTRY)
            settled = self._settle(intent, runtime, runtime.pending_order)
            if settled.verdict is Verdict.UNKNOWN:
                return settled  # still in doubt: nothing new may be sent for this strategy
            if settled.verdict is Verdict.FILLED and pending_purpose.reduces_risk == intent.purpose.reduces_risk:
                return settled  # what was asked for had already happened (a re-delivered intent)
            runtime = settled.runtime or runtime
        problem = self._precondition(intent, runtime)
        if problem:
            return self._refuse(intent, problem, runtime)
        if intent.purpose is Purpose.ENTRY:
            seq = runtime.entry_seq + 1
            client_id, side, quantity = entry_order_id(intent.strategy_id, seq), "BUY", intent.quantity
            quantity *= self.gate().check(intent.strategy_id, intent.symbol, OrderKind.ENTRY, intent.account).size_factor
            pending = replace(runtime, entry_seq=seq)
        else:
            client_id, side = exit_order_id(intent.strategy_id, runtime.entry_seq), "SELL"
            quantity = runtime.quantity
            pending = runtime
        fields = {
            "strategy_id": intent.strategy_id, "account": intent.account, "symbol": intent.symbol,
            "side": side, "quantity": repr(quantity), "purpose": intent.purpose.value,
            "stop_loss": "" if intent.stop_loss is None else repr(intent.stop_loss), "reason": intent.reason,
        }
        try:
            self.store.journal_intent_or_buffer(client_id, fields) if intent.purpose.reduces_risk else \
                self.store.journal_intent(client_id, fields)
        except StoreUnavailable:
            return self._refuse(intent, "store unavailable: cannot journal the intent, not sent", runtime)
        pending = replace(pending, pending_order=client_id, pending_purpose=intent.purpose.value,
                          stop_loss=intent.stop_loss if intent.stop_loss is not None else pending.stop_loss)
        self._write(intent, pending.with_order(client_id))
        return self._send(intent, pending.with_order(client_id), client_id, side, quantity, cancel)

    def _precondition(self, intent: OrderIntent, runtime: Runtime) -> str | None:
        if runtime.status is not Status.ACTIVE and intent.purpose is Purpose.ENTRY:
            return f"strategy status is {runtime.status.value}" + (f" ({runtime.reason})" if runtime.reason else "")
        if intent.purpose is Purpose.ENTRY and runtime.position not in FLAT:
            return f"BUY needs a flat position, position is {runtime.position.value}"
        if intent.purpose.reduces_risk and runtime.position is not Position.BOUGHT:
            return f"{intent.purpose.value} needs position bought, position is {runtime.position.value}"
        if intent.purpose.reduces_risk and not runtime.quantity > 0:
            return "no quantity to exit"
        return None

    # --- the venue ----------------------------------------------------------------------

    def _send(
        self, intent: OrderIntent, runtime: Runtime, client_id: str, side: str, quantity: float, cancel: threading.Event
    ) -> OrderResult:
        attempt = 1  # sends so far, this one included
        limited = 0  # earlier sends the venue or the request budget rate-limited
        sent_at: float | None = None
        while True:
            if sent_at is None:
                sent_at = time.perf_counter()
            outcome = self.venue.place_order(
                intent.symbol, side, "MARKET", quantity, client_id,
                reduce_only=intent.purpose.reduces_risk, priority=intent.purpose.priority,
            )
            # F1's "max 3 retries" counts failures; a rate limit (F5) is waited out, however long the
            # flood, so it never turns an entry -- or a stop-loss -- into a SAFETY_ABORT by itself.
            counted = attempt - limited
            decision = self.retry.decide(outcome.kind.value, counted, retry_after=outcome.retry_after_s,
                                         detail=outcome.describe())
            if decision.action is RetryAction.DONE:
                if outcome.kind is OutcomeKind.DUPLICATE or outcome.order_status != "FILLED":
                    looked = self.venue.query_order(intent.symbol, client_id, priority=intent.purpose.priority)
                    if looked.kind is OutcomeKind.FILLED:
                        outcome = looked
                    else:
                        return self._unknown(intent, runtime, client_id, f"accepted, not yet filled: {looked.describe()}", attempt, sent_at)
                return self._filled(intent, runtime, client_id, side, outcome, attempt, sent_at)
            if decision.action is RetryAction.LOOKUP_THEN_RETRY:
                looked = self.venue.query_order(intent.symbol, client_id, priority=intent.purpose.priority)
                if looked.kind is OutcomeKind.FILLED:
                    return self._filled(intent, runtime, client_id, side, looked, attempt, sent_at)
                if looked.kind is not OutcomeKind.NOT_FOUND or not decision.retry_allowed:
                    why = "lookup found nothing and retries are exhausted" if looked.kind is OutcomeKind.NOT_FOUND \
                        else f"lookup in doubt: {looked.describe()}"
                    if looked.kind is OutcomeKind.NOT_FOUND:
                        return self._abort(intent, runtime, f"SAFETY_ABORT: {why}; position unchanged",
                                           client_id=client_id, attempts=attempt)
                    return self._unknown(intent, runtime, client_id, why, attempt, sent_at)
                delay = self.retry.backoff(counted)
            elif decision.action is RetryAction.RETRY_AFTER:
                delay = decision.delay
                if outcome.kind is OutcomeKind.RATE_LIMITED:
                    limited += 1
                    self.on_rate_limited()
                    # Stops first (F5): when the ban lifts, a stop-loss resends before an exit, an exit
                    # before an entry, so the first request the venue takes is the one reducing risk.
                    delay = max(delay, RATE_LIMIT_MIN_WAIT_S) + RATE_LIMIT_STAGGER_S * int(intent.purpose.priority)
            elif decision.action is RetryAction.ABORT_ACCOUNT:
                return self._abort(intent, runtime, decision.reason, client_id=client_id, attempts=attempt,
                                   verdict=Verdict.ACCOUNT_PAUSED)
            else:
                return self._abort(intent, runtime, f"SAFETY_ABORT: {decision.reason}", client_id=client_id,
                                   attempts=attempt)
            log.bind(event="order_retry", details={"client_order_id": client_id, "attempt": attempt,
                                                   "outcome": outcome.describe(), "delay_s": round(delay, 3)},
                     action_taken="retry with the same client order id").warning("order_retry")
            if cancel.wait(delay):
                return self._cancelled(intent, runtime, client_id, attempt)
            attempt += 1

    def _settle(self, intent: OrderIntent, runtime: Runtime, client_id: str) -> OrderResult:
        """An order in doubt from before: ask the venue what became of it (never resend blind)."""
        looked = self.venue.query_order(intent.symbol, client_id, priority=intent.purpose.priority)
        purpose = Purpose(runtime.pending_purpose or "entry")
        origin = replace(intent, purpose=purpose)
        side = "BUY" if purpose is Purpose.ENTRY else "SELL"
        if looked.kind is OutcomeKind.FILLED:
            return self._filled(origin, runtime, client_id, side, looked, 0, None)
        if looked.kind is OutcomeKind.NOT_FOUND:
            cleared = replace(runtime, pending_order="", pending_purpose="")
            self._write(intent, cleared)
            self._journal_outcome(intent, client_id, "NOT_FOUND", {"reason": "settled: never reached the venue"})
            return OrderResult(intent, Verdict.REFUSED, f"{client_id} never reached the venue; settled", client_id,
                               runtime=cleared)
        return self._unknown(intent, runtime, client_id, f"still in doubt: {looked.describe()}", 0, None)

    def settle(self, strategy_id: str, account: str, symbol: str, client_id: str, purpose: Purpose) -> OrderResult:
        """Cold start: settle one journaled intent that has no final outcome, by lookup.

        Works whether or not the runtime got as far as recording it as pending (a crash
        can fall between "intent journaled" and "runtime written").
        """
        intent = OrderIntent(strategy_id, account, symbol, purpose, quantity=1.0 if purpose is Purpose.ENTRY else 0.0,
                             reason="cold start: settle journaled intent")
        with self.local_locks.of(strategy_id):
            runtime = self._load(intent)
            if isinstance(runtime, OrderResult):
                return runtime
            if runtime.pending_order != client_id:
                seq = entry_seq_of(client_id)
                runtime = replace(runtime, pending_order=client_id, pending_purpose=purpose.value,
                                  entry_seq=max(runtime.entry_seq, seq) if purpose is Purpose.ENTRY else runtime.entry_seq)
            return self._settle(intent, runtime, client_id)

    # --- outcomes -------------------------------------------------------------------------

    def _filled(self, intent: OrderIntent, runtime: Runtime, client_id: str, side: str, outcome: VenueOutcome,
                attempts: int, sent_at: float | None) -> OrderResult:
        order = outcome.order or {}
        qty = float(order.get("executedQty") or order.get("origQty") or 0.0)
        price = float(order.get("avgPrice") or order.get("price") or 0.0)
        if intent.purpose is Purpose.ENTRY:
            updated = replace(runtime, position=Position.BOUGHT, quantity=qty, entry_price=price,
                              pending_order="", pending_purpose="")
            if updated.stop_loss:
                self.stops.arm(intent.symbol, intent.strategy_id, updated.stop_loss, qty)
        else:
            position = Position.EXITED_BY_SL if intent.purpose is Purpose.STOP_LOSS else Position.SOLD
            updated = replace(runtime, position=position, quantity=0.0, pending_order="", pending_purpose="")
            self.stops.disarm(intent.symbol, intent.strategy_id)
        self._write(intent, updated)
        self._journal_outcome(intent, client_id, "FILLED", {"qty": repr(qty), "avg_price": repr(price),
                                                            "attempts": str(attempts)})
        log.bind(event="order_filled", details={"client_order_id": client_id, "purpose": intent.purpose.value,
                                                "side": side, "qty": qty, "price": price, "attempts": attempts},
                 action_taken=f"position {updated.position.value}").info("order_filled")
        return OrderResult(intent, Verdict.FILLED, "filled", client_id, side, qty, price, updated, attempts, sent_at)

    def _unknown(self, intent: OrderIntent, runtime: Runtime, client_id: str, why: str, attempts: int,
                 sent_at: float | None) -> OrderResult:
        """Leave the order pending: it counts as filled for risk and blocks a resend."""
        log.bind(event="order_unknown", details={"client_order_id": client_id, "why": why},
                 action_taken="kept pending; settle by lookup before any resend").error("order_unknown")
        return OrderResult(intent, Verdict.UNKNOWN, why, client_id, runtime=runtime, attempts=attempts, sent_at=sent_at)

    def _cancelled(self, intent: OrderIntent, runtime: Runtime, client_id: str, attempts: int) -> OrderResult:
        """F25: stopped by an operator between attempts: settle what was sent, send nothing more."""
        log.bind(event="order_cancelled", details={"strategy": intent.strategy_id, "client_order_id": client_id,
                                                   "attempts": attempts},
                 action_taken="no resend; settled by lookup").warning("order_cancelled")
        settled = self._settle(intent, runtime, client_id)
        if settled.verdict is Verdict.FILLED:
            return settled
        return OrderResult(intent, Verdict.CANCELLED, f"cancelled by operator; {settled.reason}", client_id,
                           runtime=settled.runtime, attempts=attempts)

    def _abort(self, intent: OrderIntent, runtime: Runtime | None, reason: str, *, client_id: str | None = None,
               attempts: int = 0, verdict: Verdict = Verdict.SAFETY_ABORT, mark: bool = True) -> OrderResult:
        updated = None
        if runtime is not None and mark:
            status = Status.PAUSED if verdict is Verdict.ACCOUNT_PAUSED else Status.FAILED
            updated = replace(runtime, status=status, reason=reason[:900], pending_order="", pending_purpose="")
            self._write(intent, updated)
        if client_id is not None:
            self._journal_outcome(intent, client_id, verdict.value, {"reason": reason[:900]})
        log.bind(event="safety_abort", details={"strategy": intent.strategy_id, "purpose": intent.purpose.value,
                                                "client_order_id": client_id, "reason": reason},
                 action_taken=f"{verdict.value}: strategy {intent.strategy_id} only; position unchanged").error("safety_abort")
        return OrderResult(intent, verdict, reason, client_id, runtime=updated, attempts=attempts)

    def _refuse(self, intent: OrderIntent, reason: str, runtime: Runtime | None = None, *,
                level: str = "INFO") -> OrderResult:
        log.bind(event="order_refused", details={"strategy": intent.strategy_id, "purpose": intent.purpose.value,
                                                 "reason": reason}, action_taken="not sent").log(level, "order_refused")
        return OrderResult(intent, Verdict.REFUSED, reason, runtime=runtime)

    # --- persistence --------------------------------------------------------------------

    def _write(self, intent: OrderIntent, runtime: Runtime) -> None:
        runtime = replace(runtime, updated_at=self.wall_clock())
        self.cache.put(intent.strategy_id, runtime)
        try:
            self.store.write_runtime_or_buffer(intent.strategy_id, runtime)
        except StoreUnavailable:
            log.bind(event="runtime_write_lost_risk", details={"strategy": intent.strategy_id}).critical(
                "runtime_write_lost_risk")
            raise

    def _journal_outcome(self, intent: OrderIntent, client_id: str, outcome: str, fields: dict[str, str]) -> None:
        """Only final outcomes are journaled; UNKNOWN stays open in the journal until settled."""
        self.store.journal_outcome_or_buffer(client_id, outcome, {"strategy_id": intent.strategy_id, **fields},
                                             final=True)
