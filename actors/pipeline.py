"""The order pipeline of DESIGN §2, one intent at a time, on a worker thread.

validate → lock → load runtime → preconditions → journal intent → submit → handle
outcome (retry / settle) → update runtime → journal outcome → unlock → log.

Invariants this module exists for:
- the intent is journaled (Redis, or the fsynced disk buffer for exits) before it is sent;
- the client order id is derived from the runtime, so every retry, every re-delivery of
  the same queue entry and every restart reuses it;
- the client id is a lookup handle, not a duplicate guard: nothing is resent while an
  earlier send may still execute. A send lost on the network is settled only after its
  recvWindow has passed on the venue's clock; an "unknown" reply only after the settle
  window (actors.core.settle). Until then the order stays `pending_order`: UNKNOWN, which
  the engine's settle loop re-drives (`resettle`) until it settles;
- seed 724076: the runtime says how many sends of the pending order may have left this
  process (`pending_sends`): 1 with the journaled intent; 0 once every attempt so far was
  deferred locally by the request budget (written on that slow path only); raised again,
  in the write that precedes every resend, before the resend goes. A pending order whose
  record says 0 is settled by one NOT_FOUND at once (after a restart too), never resent blind;
- EXPIRED / CANCELED / partial fills are final: the position is `executedQty`, and an
  exit's remainder is sent again under the same intent until flat (F30);
- one writer per runtime: every change of `runtime:{id}` (orders, settles, operator
  commands, account pause, cold start) runs under `serialized` -- the in-process lock of
  the strategy and its Redis lock -- so no stale write can revert a fill or a command;
- a stale generation (fenced strategy incarnation) is refused before any side effect, and
  the gate (entries) and the fence are checked again before every resend; an entry that
  could not be sent within `entry_bound_s` of its intent is dropped, never sent late.

Never does: call the venue without a journaled intent; hold the lock across an
operator cancel; sleep without the cancel event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from actors import crash_windows, node_ids, planted
from actors.core.degradation import Gate, OrderKind
from actors.core.retry import RetryAction, RetryPolicy
from actors.core.settle import (Doubt, OrderState, SettleTiming, doubt_of, lookup_delay, order_state, remainder,
                                 until_next_lookup)
from actors.core.urgency import Urgency
from actors.node_ids import ENGINE
from actors.orders import OrderIntent, Purpose, entry_order_id, entry_seq_of, next_exit_id
from actors.ports import OrderStore, Venue
from actors.protection import ProtectiveStops, StopFate, protective_stop_id, take_back_stop
from actors.stop_book import StopBook
from runtime.logging import log_event
from runtime.store.errors import CorruptState, StaleGeneration, StoreUnavailable
from runtime.store.queue import QueuedOrder
from runtime.store.runtime_state import Position, Runtime, Status
from runtime.venue.budget import Priority
from runtime.venue.outcomes import OutcomeKind, VenueOutcome
from supervision import Fence


FLAT = (Position.NONE, Position.SOLD, Position.EXITED_BY_SL)
RATE_LIMIT_MIN_WAIT_S = 0.05  # never spin on a budget refusal that says "wait 0 s"
RATE_LIMIT_STAGGER_S = 0.1  # per priority step (STOP 0, EXIT 1, ENTRY 2) after a rate limit
MAX_EXIT_ROUNDS = 5  # exit orders per intent (the first + remainders) before the stop is re-armed instead
NOT_EXECUTED_KEPT = 10_000  # client ids remembered as "settled, never executed" (late-fill detection)
NOTHING_TO_REDUCE_CODE = -2022  # "ReduceOnly Order is rejected": the venue holds nothing to reduce on that side
PREPARED_SLACK_S = 0.1  # an order journaled with the lock is sent at least this long before its recorded deadline
INLINE_SETTLE_SLACK_S = 2.0  # lookups on the worker past the final-NOT_FOUND time before handing to the loop


class Verdict(StrEnum):
    FILLED = "FILLED"  # the venue executed it (fully or partly: see filled_qty); runtime updated
    EXPIRED = "EXPIRED"  # the venue closed it with nothing executed (EXPIRED/CANCELED): final
    REFUSED = "REFUSED"  # not sent: gate closed, precondition failed, stale generation, busy, too late
    SAFETY_ABORT = "SAFETY_ABORT"  # permanent reject, retries exhausted, corrupt state: strategy failed
    ACCOUNT_PAUSED = "ACCOUNT_PAUSED"  # TOKEN_INVALID: every strategy of the account paused
    UNKNOWN = "UNKNOWN"  # still in doubt; pending, re-driven by the settle loop until settled
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
    reconcile: str = ""  # why the venue disagrees with the runtime: position-manager reconciles at once
    acked: bool = False  # the queue entries handed in were acknowledged by the outcome write


class RuntimeBusy(RuntimeError):
    """The strategy's runtime is being changed by someone else (an order in progress) right now."""


class RuntimeCache:
    """Last known runtime per strategy: what exits use while Redis is down (F18, F28) or while
    its record is missing or corrupt (F31). Never dropped: reconciliation refreshes it entry by
    entry from the store once the store answers."""

    def __init__(self) -> None:
        self._runtimes: dict[str, Runtime] = {}
        self._lock = threading.Lock()
        self._version = 0  # bumped by every put: the local snapshot is written only when it moved

    def put(self, strategy_id: str, runtime: Runtime) -> None:
        with self._lock:
            self._runtimes[strategy_id] = runtime
            self._version += 1

    def copy(self) -> tuple[int, dict[str, Runtime]]:
        """(version, every runtime held), consistent with each other."""
        with self._lock:
            return self._version, dict(self._runtimes)

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

    def busy(self) -> list[str]:
        """Strategies with an order (or a settle step) in progress in this process right now."""
        with self._guard:
            return sorted(strategy_id for strategy_id, lock in self._locks.items() if lock.locked())


_UNLOADED = object()  # _Held.loaded: the runtime could not be read with the lock (store down)


@dataclass(frozen=True)
class _Order:
    """One order made from a runtime: what is journaled, recorded pending and sent."""

    client_id: str
    side: str
    quantity: float
    fields: dict[str, str]
    pending: Runtime  # stamped: exactly what is written


@dataclass(frozen=True)
class _Prepared:
    """An order made from the last known runtime before the lock was taken, so the lock, the load
    and the journal intent go in one round trip (DESIGN §6) while the stored runtime is still it."""

    expected: Runtime | None  # the record the store must still hold (None: none, never written)
    base: Runtime  # what the order was made from (`expected`, or a fresh Runtime)
    order: _Order


@dataclass
class _Held:
    """The Redis lock held for one serialized change (None: store down, exits only), and the
    runtime read in the same round trip (a Runtime, None = no record, or its CorruptState);
    `journaled`: the order that round trip also journaled and recorded pending; `urgency`: the
    priority of a risk-reducing order in progress, which a stop crossing raises (`promote`)."""

    lock: Any
    extended_at: float
    loaded: Any = _UNLOADED
    journaled: _Prepared | None = None
    urgency: Urgency | None = None


@dataclass
class _Acks:
    """Queue entries waiting for their intent's outcome write, and whether it has happened."""

    entries: tuple[QueuedOrder, ...]
    written: bool = False


_NOT_FOUND = object()  # _resolve: the venue provably never executed the send


def _as_purpose(intent: OrderIntent, purpose: Purpose) -> OrderIntent:
    """The intent of an order in doubt, rebuilt from what the runtime recorded about it."""
    if purpose is intent.purpose:
        return intent
    return replace(intent, purpose=purpose, quantity=intent.quantity or 1.0 if purpose is Purpose.ENTRY else 0.0)


class OrderPipeline:
    def __init__(
        self,
        store: OrderStore,
        venue: Venue,
        gate: Callable[[], Gate],
        fence: Fence,
        stops: StopBook,
        retry: RetryPolicy,
        *,
        cache: RuntimeCache | None = None,
        timing: SettleTiming | None = None,
        entry_bound_s: float = 10.0,
        lock_ttl_ms: int = 10_000,
        lock_wait_s: float = 2.0,
        wall_clock: Callable[[], float] = time.time,
        on_rate_limited: Callable[[], None] = lambda: None,
        generation: int = 0,
        protective: ProtectiveStops | None = None,
    ) -> None:
        self.store = store
        self.venue = venue
        self.gate = gate
        self.fence = fence
        self.stops = stops
        self.retry = retry
        self.cache = cache if cache is not None else RuntimeCache()
        self.timing = timing or SettleTiming(recv_window_ms=getattr(venue, "recv_window_ms", 1000))
        self.entry_bound_s = entry_bound_s
        self.lock_ttl_ms = lock_ttl_ms
        self.lock_wait_s = lock_wait_s
        self.wall_clock = wall_clock
        self.local_locks = StrategyLocks()
        self.on_rate_limited = on_rate_limited  # called on a worker thread per 429/418
        self._doubts: dict[str, Doubt] = {}  # client id -> why it is in doubt (this process only)
        self._not_executed: dict[str, None] = {}  # client ids settled as never executed (latest last)
        # Queue entries to acknowledge with the strategy's next outcome write (set and used under
        # its serialization): an ack is part of the outcome write, never a round trip of its own.
        self._acks: dict[str, _Acks] = {}
        # This process's writer generation (Redis-reserved, above every earlier process's): every
        # runtime write carries it, so the store refuses a late write of an earlier process.
        self.generation = generation
        self.protective = protective  # positions a venue-side stop may hold: taken back before an exit
        self._urgencies: dict[str, Urgency] = {}  # strategy id -> its risk-reducing order in progress

    # --- entry points ---------------------------------------------------------------

    def execute(self, intent: OrderIntent, cancel: threading.Event, ack: QueuedOrder | None = None) -> OrderResult:
        """Run one intent. `ack`: the queue entry it came from, acknowledged in the outcome write
        (`OrderResult.acked`); an intent that ends with no outcome write leaves it to the caller."""
        refusal = self._validate(intent)
        if refusal is not None:
            return refusal
        try:
            with self.serialized(intent.strategy_id, risk_reducing=intent.purpose.reduces_risk,
                                 prepare=lambda: self._prepare(intent, cancel),
                                 priority=intent.purpose.priority) as held:
                with self._acking(intent.strategy_id, () if ack is None else (ack,)) as acked:
                    runtime = self._load(intent, held)
                    result = runtime if isinstance(runtime, OrderResult) else self._run(intent, runtime, cancel, held)
                return replace(result, acked=acked.written) if ack is not None else result
        except RuntimeBusy as busy:
            return self._refuse(intent, str(busy))
        except StoreUnavailable:
            if intent.purpose.reduces_risk:
                raise
            return self._refuse(intent, "store unavailable: entries are closed")

    def resettle(self, strategy_id: str, account: str, symbol: str,
                 acks: Sequence[QueuedOrder] = ()) -> OrderResult | None:
        """The settle loop's step: ask the venue about the strategy's pending order once.

        None when nothing is pending any more. FILLED / EXPIRED apply as usual (an exit's
        remainder is sent at once); a NOT_FOUND that is final (its recvWindow / settle
        window has passed) clears an entry, and sends an exit again under the same intent.
        `acks`: the queue entries waiting on this settlement, acknowledged by its outcome write.
        """
        probe = OrderIntent(strategy_id, account, symbol, Purpose.EXIT, reason="settle loop")
        try:
            with self.serialized(strategy_id, risk_reducing=True) as held:
                with self._acking(strategy_id, acks) as acked:
                    runtime = self._load(probe, held)
                    if isinstance(runtime, OrderResult) or not runtime.pending_order:
                        result = None if isinstance(runtime, Runtime) else runtime
                    else:
                        intent = _as_purpose(probe, Purpose(runtime.pending_purpose))
                        result = self._settle_pending(intent, runtime, threading.Event(), held)
                return replace(result, acked=acked.written) if result is not None and acks else result
        except RuntimeBusy:
            return OrderResult(probe, Verdict.UNKNOWN, "an order of this strategy is in progress; settle later")

    def settle(self, strategy_id: str, account: str, symbol: str, client_id: str, purpose: Purpose) -> OrderResult:
        """Cold start: settle one journaled intent that has no final outcome, by lookup.

        Runs under the same serialization as the live engine, and re-checks under it that
        the intent is still open: the engine may have settled it since the journal was read.
        A crash between "intent journaled" and "runtime written" left an intent that was
        never sent: it is settled NOT_SENT (the strategy decides afresh).
        """
        intent = OrderIntent(strategy_id, account, symbol, purpose, quantity=1.0 if purpose is Purpose.ENTRY else 0.0,
                             reason="cold start: settle journaled intent")
        try:
            with self.serialized(strategy_id, risk_reducing=True) as held:
                if not self.store.is_unsettled(client_id):
                    return OrderResult(intent, Verdict.REFUSED, f"{client_id} was settled meanwhile", client_id)
                runtime = self._load(intent, held)
                if isinstance(runtime, OrderResult):
                    return runtime
                if runtime.pending_order != client_id:
                    seq = entry_seq_of(client_id)
                    if runtime.pending_order or seq < runtime.entry_seq or (
                            purpose.reduces_risk and runtime.position is not Position.BOUGHT):
                        # The runtime moved past this intent: settle the journal only, never the runtime.
                        return self._settle_journal_only(intent, client_id)
                    # Journaled, but the runtime never recorded it pending: the send, which always
                    # follows that write (to Redis or the replayed disk buffer), never happened.
                    self._record(intent, None, client_id, "NOT_SENT", {"reason": "crashed before the send"})
                    self._note_not_executed(client_id)
                    return OrderResult(intent, Verdict.REFUSED, f"{client_id} journaled, never sent", client_id,
                                       runtime=runtime)
                return self._settle_pending(intent, runtime, threading.Event(), held)
        except RuntimeBusy as busy:
            return OrderResult(intent, Verdict.UNKNOWN, str(busy), client_id)

    def update_runtime(self, strategy_id: str, change: Callable[[Runtime], Runtime | None]) -> Runtime | None:
        """Load → change → write under the strategy's serialization (operator commands, account
        pause, protective-stop take-back). `change` returns None to leave the record as it is.
        Raises RuntimeBusy, StoreUnavailable, CorruptState, StaleGeneration."""
        with self.serialized(strategy_id, risk_reducing=False) as held:
            if isinstance(held.loaded, CorruptState):
                raise held.loaded
            runtime = held.loaded or Runtime()
            changed = change(runtime)
            if changed is None:
                return runtime
            changed = self._stamped(changed)
            self.store.write_runtime(strategy_id, changed)
            self.cache.put(strategy_id, changed)
            return changed

    @contextmanager
    def serialized(self, strategy_id: str, *, risk_reducing: bool,
                   prepare: Callable[[], _Prepared | None] | None = None,
                   priority: Priority = Priority.EXIT) -> Iterator[_Held]:
        """The one per-strategy serialization: the in-process lock, then `lock_state:{id}`.

        Risk-reducing work holding it is promotable: from the moment it holds the in-process lock,
        a stop crossing raises it from `priority` to stop priority (`promote`) rather than send a
        stop-loss that would wait for that lock.

        A store outage lets only risk-reducing work through (F18), without the Redis lock.
        `prepare`, called once the in-process lock is held: an order to journal in the same round
        trip as the lock and the load, if the stored runtime is still the one it was made from.
        """
        local = self.local_locks.of(strategy_id)
        if not local.acquire(timeout=self.lock_wait_s):
            raise RuntimeBusy(f"another order of strategy {strategy_id} is in progress")
        urgency = Urgency(priority) if risk_reducing else None
        if urgency is not None:
            self._urgencies[strategy_id] = urgency
        try:
            loaded: Any = _UNLOADED
            journaled: _Prepared | None = None
            try:
                lock, loaded, journaled = self._lock_and_load(strategy_id, prepare)
            except StoreUnavailable:
                if not risk_reducing:
                    raise
                lock = None
            else:
                if lock is None:
                    stale = self.store.lock_problem(strategy_id)
                    if stale:  # F31: nobody holds it; it frees itself within lock_ttl and the stop is re-armed
                        raise RuntimeBusy(f"lock_state:{strategy_id}: {stale}")
                    raise RuntimeBusy(f"lock_state:{strategy_id} is held by another owner")
            try:
                yield _Held(lock, time.monotonic(), loaded, journaled, urgency)
            finally:
                if lock is not None:
                    try:
                        self.store.release_lock(lock)
                    except StoreUnavailable:
                        pass  # F6: the TTL frees it; the owner token keeps others safe meanwhile
        finally:
            if urgency is not None:
                self._urgencies.pop(strategy_id, None)
            local.release()

    def promote(self, strategy_id: str, reason: str) -> bool:
        """A stop crossed: the strategy's risk-reducing order in progress (its exit, a flatten, a
        settle-loop resend) goes on at stop priority, under its own intent and client id, and any
        wait of its sender ends (seed 11 t18). False when none is in progress: send a stop-loss."""
        urgency = self._urgencies.get(strategy_id)
        if urgency is None:
            return False
        if urgency.raise_to(Priority.STOP):
            runtime = self.cache.get(strategy_id)
            log_event(ENGINE, "exit_promoted",
                      details={"strategy": strategy_id, "reason": reason,
                               "client_order_id": runtime.pending_order if runtime is not None else ""},
                      action_taken="the exit in progress goes on at stop priority, same intent", level="WARNING")
        return True

    @staticmethod
    def _priority(intent: OrderIntent, held: _Held) -> Priority:
        """The order's budget priority now: its purpose's, or stop priority once a stop crossed."""
        if held.urgency is None:
            return intent.purpose.priority
        return min(intent.purpose.priority, held.urgency.priority)

    @staticmethod
    def _wait(seconds: float, cancel: threading.Event, held: _Held) -> bool:
        """Wait before a resend; True when cancelled. A promotion ends it: the wait was sized for the
        old priority, and every check a resend needs (lookup, fence, gate) runs after it anyway."""
        return cancel.wait(seconds) if held.urgency is None else held.urgency.wait(seconds, cancel)

    @contextmanager
    def _acking(self, strategy_id: str, acks: Sequence[QueuedOrder]) -> Iterator[_Acks]:
        """Hand `acks` to the strategy's next outcome write (under its serialization)."""
        pending = _Acks(tuple(acks), written=not acks)
        if acks:
            self._acks[strategy_id] = pending
        try:
            yield pending
        finally:
            if acks:
                self._acks.pop(strategy_id, None)

    def pending_final_at(self, runtime: Runtime) -> float:
        """Venue-clock ms from which a NOT_FOUND of the runtime's pending order is final."""
        return self.timing.final_not_found_at(runtime.pending_since * 1000.0, self._doubts.get(runtime.pending_order))

    def venue_now_ms(self) -> float:
        """The venue clock's estimate now (no I/O)."""
        return float(self.venue.clock.now_ms())

    def settled_not_executed(self, client_id: str) -> bool:
        """Was this order settled as never executed (NOT_FOUND, NOT_SENT, not resent)? A fill for
        it is then a late or duplicate execution: an excess position."""
        return client_id in self._not_executed

    def _note_not_executed(self, client_id: str) -> None:
        self._not_executed[client_id] = None
        while len(self._not_executed) > NOT_EXECUTED_KEPT:
            del self._not_executed[next(iter(self._not_executed))]

    # --- steps ------------------------------------------------------------------------

    def _validate(self, intent: OrderIntent) -> OrderResult | None:
        problem = self._problem(intent)
        return None if problem is None else self._refuse(intent, problem)

    def _problem(self, intent: OrderIntent) -> str | None:
        """Why the intent may not go out now (fence, gate, entry bound), or None."""
        if intent.generation and not self.fence.is_current(node_ids.strategy(intent.strategy_id), intent.generation):
            return f"stale generation {intent.generation}: that incarnation is fenced"
        if intent.purpose is Purpose.ENTRY:
            decision = self.gate().check(intent.strategy_id, intent.symbol, OrderKind.ENTRY, intent.account)
            if not decision.open:
                return "gate closed: " + "; ".join(decision.reasons)
            if self.wall_clock() - intent.created_at > self.entry_bound_s:
                return f"entry not sent within {self.entry_bound_s:g}s of its intent: dropped"
        elif self.gate().flushing:
            return "HARD_SHUTDOWN final flush: no more orders"
        return None

    def _lock_and_load(self, strategy_id: str, prepare: Callable[[], _Prepared | None] | None
                       ) -> tuple[Any, Any, _Prepared | None]:
        """The lock and the runtime in one round trip (waiting up to lock_wait_s for the lock), and
        the prepared order journaled and recorded pending in it when the runtime was as expected
        (prepared again before every attempt: a wait for the lock may outlive the gate or fence)."""
        deadline = time.monotonic() + self.lock_wait_s
        while True:
            prepared = prepare() if prepare is not None else None
            if prepared is None:
                lock, loaded = self.store.lock_and_load(strategy_id, self.lock_ttl_ms, generation=self.generation)
                entry_id = None
            else:
                order = prepared.order
                lock, loaded, entry_id = self.store.lock_load_and_journal(
                    strategy_id, self.lock_ttl_ms, generation=self.generation, expected=prepared.expected,
                    client_order_id=order.client_id, fields=order.fields, pending=order.pending)
            if lock is not None or time.monotonic() > deadline:
                if prepared is not None and entry_id is not None:
                    self.cache.put(strategy_id, prepared.order.pending)
                    return lock, prepared.base, prepared
                return lock, loaded, None
            time.sleep(0.005)

    def _prepare(self, intent: OrderIntent, cancel: threading.Event) -> _Prepared | None:
        """The order this intent will send if the stored runtime is still the last known one: only
        when nothing could stop it between the lock and the send (no refusal, nothing pending)."""
        expected = self.cache.get(intent.strategy_id)  # None: no record known (the store checks there is none)
        base = expected or Runtime()
        if base.pending_order or cancel.is_set() or self._problem(intent) or self._precondition(intent, base):
            return None
        if intent.purpose.reduces_risk and self.protective is not None and self.protective.holds(intent.strategy_id):
            return None  # a venue-side protective stop is taken back first (_run)
        return _Prepared(expected, base, self._order(intent, base))

    def _keep(self, held: _Held) -> None:
        """Extend the Redis lock while an order is in progress (F6/case 9): it never expires mid-order."""
        if held.lock is None or time.monotonic() - held.extended_at < self.lock_ttl_ms / 3000.0:
            return
        try:
            if self.store.extend_lock(held.lock):
                held.extended_at = time.monotonic()
            else:
                log_event(ENGINE, "lock_lost", details={"key": held.lock.key},
                          action_taken="order continues; the runtime write is fenced", level="ERROR")
        except StoreUnavailable:
            pass

    def _load(self, intent: OrderIntent, held: _Held) -> Runtime | OrderResult:
        try:
            if isinstance(held.loaded, CorruptState):
                raise held.loaded
            runtime = self.store.load_runtime(intent.strategy_id) if held.loaded is _UNLOADED else held.loaded
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
                    except StaleGeneration as stale:
                        # A newer incarnation repaired the record first: it owns the strategy and
                        # this one could record nothing, so it sends nothing.
                        return self._refuse(intent, f"fenced: a newer writer repaired the runtime ({stale})",
                                            level="ERROR")
                return runtime
            # F14: that strategy only. Its stop stays armed; nothing is sent on a bad record.
            return self._abort(intent, None, f"SAFETY_ABORT: {exc}", mark=False)
        except StoreUnavailable:
            if intent.purpose is Purpose.STOP_LOSS and planted.on("stop_skipped_while_redis_down"):
                return self._refuse(intent, "planted bug: stop-loss skipped while Redis is down")
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
        log_event(ENGINE, "exit_from_last_known_runtime",
                  details={"strategy": intent.strategy_id, "purpose": intent.purpose.value, "why": why,
                           "position": runtime.position.value, "quantity": runtime.quantity},
                  action_taken="risk-reducing order runs from the last known runtime, reduce-only", level="ERROR")
        return runtime

    def _run(self, intent: OrderIntent, runtime: Runtime, cancel: threading.Event, held: _Held) -> OrderResult:
        if held.journaled is not None and runtime is held.journaled.base:
            return self._place(intent, runtime, cancel, held)  # checked right before its one round trip
        if cancel.is_set():
            return self._refuse(intent, "cancelled by an operator stop (F25): not sent", runtime)
        refusal = self._validate(intent)  # again: waiting for the locks may have outlived the generation or gate
        if refusal is not None:
            return refusal
        if runtime.pending_order:
            pending_purpose = Purpose(runtime.pending_purpose or Purpose.ENTRY)
            settled = self._settle_pending(intent, runtime, cancel, held, resend=False)
            if settled.verdict is Verdict.UNKNOWN:
                return settled  # still in doubt: nothing new may be sent for this strategy
            if settled.verdict is Verdict.FILLED and pending_purpose.reduces_risk == intent.purpose.reduces_risk:
                return settled  # what was asked for had already happened (a re-delivered intent)
            runtime = settled.runtime or runtime
        problem = self._precondition(intent, runtime)
        if problem:
            return self._refuse(intent, problem, runtime)
        if intent.purpose.reduces_risk and not planted.on("exit_ignores_fence"):
            taken = self._take_back_protective(intent, runtime)
            if taken is not None:
                return taken
        return self._place(intent, runtime, cancel, held)

    def _take_back_protective(self, intent: OrderIntent, runtime: Runtime) -> OrderResult | None:
        """Seeds 21/31: a venue-side protective stop may still hold this position (placed at a
        graceful stop or in a store outage, not taken back yet). Before an exit of our own, its
        state is learned and, while live, it is cancelled: one position, one exit. None: go on."""
        client_id = self.protective.held().get(intent.strategy_id) if self.protective is not None else None
        if not client_id:
            return None
        taken = take_back_stop(self.venue, intent.symbol, client_id)
        ours = client_id == protective_stop_id(intent.strategy_id, runtime.entry_seq)  # this position's stop
        log_event(ENGINE, "protective_stop_taken_back",
                  details={"strategy": intent.strategy_id, "client_order_id": client_id, "fate": taken.fate.value,
                           "detail": taken.detail},
                  action_taken="checked before an exit of our own", level="WARNING")
        if taken.fate not in (StopFate.TRIGGERED, StopFate.GONE):
            return self._refuse(intent, f"protective stop {client_id} may still be live at the venue "
                                        f"({taken.detail}): no exit of our own", runtime, level="ERROR")
        self._record(intent, None, client_id, taken.status, {"detail": taken.detail[:900],
                                                             "reason": "taken back before an exit"},
                     its_outcome=False)
        self.protective.release(intent.strategy_id)  # type: ignore[union-attr]
        if taken.fate is StopFate.TRIGGERED and ours:
            exited = replace(runtime, position=Position.EXITED_BY_SL, quantity=0.0)
            self._write(intent, exited)
            self.stops.disarm(intent.symbol, intent.strategy_id)
            return OrderResult(intent, Verdict.REFUSED, f"protective stop {client_id} already exited the position",
                               client_id, runtime=exited)
        return None

    def _place(self, intent: OrderIntent, runtime: Runtime, cancel: threading.Event, held: _Held,
               rounds: int = 1) -> OrderResult:
        """Journal the intent, record it pending, send it; exits loop over their remainders."""
        prepared, held.journaled = held.journaled, None
        if prepared is not None and runtime is prepared.base:
            order = prepared.order  # journaled and recorded pending with the lock, in one round trip
            pending = order.pending
            if self.venue_now_ms() / 1000.0 + PREPARED_SLACK_S >= pending.pending_since:
                # That round trip was slow: the recorded send deadline must still bound the signed timestamp.
                pending = replace(pending, pending_since=self._send_deadline_s())
                self._write(intent, pending)
        else:
            order = self._order(intent, runtime)
            pending = order.pending
            try:
                self._journal_and_mark_pending(intent, order.client_id, order.fields, pending)
            except StoreUnavailable:
                return self._refuse(intent, "store unavailable: cannot journal the intent, not sent", runtime)
        client_id = order.client_id
        crash_windows.reached("after_journal", client_id)
        result = self._send(intent, pending, client_id, order.side, order.quantity, cancel, held)
        if (intent.purpose.reduces_risk and result.verdict in (Verdict.FILLED, Verdict.EXPIRED)
                and result.runtime is not None and result.runtime.position is Position.BOUGHT):
            # F30: part (or none) of the exit executed; the rest goes again under the same intent.
            if rounds >= MAX_EXIT_ROUNDS or self._wait(lookup_delay(rounds), cancel, held):
                log_event(ENGINE, "exit_incomplete", details={"strategy": intent.strategy_id, "rounds": rounds,
                                                              "left": result.runtime.quantity},
                          action_taken="position stays open; stop re-armed for the next tick", level="ERROR")
                return replace(result, verdict=Verdict.REFUSED,
                               reason=f"exit incomplete after {rounds} orders: {result.runtime.quantity:g} left")
            self._keep(held)
            taken = self._take_back_protective(intent, result.runtime)  # seed 4242 t36: one position, one exit
            if taken is not None:
                return taken
            return self._place(intent, result.runtime, cancel, held, rounds + 1)
        return result

    def _order(self, intent: OrderIntent, runtime: Runtime) -> _Order:
        """The order an intent makes from a runtime: client id (derived from the runtime, so every
        retry and re-delivery reuses it), side, quantity, journal fields and the pending runtime."""
        if intent.purpose is Purpose.ENTRY:
            seq = runtime.entry_seq + 1
            client_id, side, quantity = entry_order_id(intent.strategy_id, seq), "BUY", intent.quantity
            quantity *= self.gate().check(intent.strategy_id, intent.symbol, OrderKind.ENTRY, intent.account).size_factor
            pending = replace(runtime, entry_seq=seq)
        else:
            client_id, side = next_exit_id(intent.strategy_id, runtime.entry_seq, runtime.last_orders), "SELL"
            quantity = runtime.quantity
            pending = runtime
        fields = {
            "strategy_id": intent.strategy_id, "account": intent.account, "symbol": intent.symbol,
            "side": side, "quantity": repr(quantity), "purpose": intent.purpose.value,
            "stop_loss": "" if intent.stop_loss is None else repr(intent.stop_loss), "reason": intent.reason,
        }
        pending = replace(pending, pending_order=client_id, pending_purpose=intent.purpose.value,
                          pending_since=self._send_deadline_s(), pending_sends=1,
                          stop_loss=intent.stop_loss if intent.stop_loss is not None else pending.stop_loss)
        return _Order(client_id, side, quantity, fields, self._stamped(pending.with_order(client_id)))

    def _precondition(self, intent: OrderIntent, runtime: Runtime) -> str | None:
        if runtime.status is not Status.ACTIVE and intent.purpose is Purpose.ENTRY:
            return f"strategy status is {runtime.status.value}" + (f" ({runtime.reason})" if runtime.reason else "")
        if intent.purpose is Purpose.ENTRY and runtime.position not in FLAT:
            return f"BUY needs a flat position, position is {runtime.position.value}"
        if intent.purpose is Purpose.ENTRY and intent.position_seq is not None \
                and intent.position_seq != runtime.entry_seq:
            return (f"single-use intent: made at entry {intent.position_seq}, the runtime is at entry "
                    f"{runtime.entry_seq}; never sent late")
        if intent.purpose.reduces_risk and runtime.position is not Position.BOUGHT:
            return f"{intent.purpose.value} needs position bought, position is {runtime.position.value}"
        if intent.purpose.reduces_risk and not runtime.quantity > 0:
            return "no quantity to exit"
        return None

    # --- the venue ----------------------------------------------------------------------

    def _send_deadline_s(self) -> float:
        """Venue-clock seconds by which a send starting now has surely completed (its signed
        timestamp is no later than this): what `pending_since` records."""
        return (self.venue.clock.now_ms() / 1000.0) + self.venue.timeout_s

    def _resend_refusal(self, intent: OrderIntent, cancel: threading.Event) -> str | None:
        """Checked before every resend: an operator stop, the fence, the gate, the entry bound."""
        if cancel.is_set():
            return "cancelled by an operator stop (F25)"
        refused = self._validate(intent)
        return refused.reason if refused is not None else None

    def _send(
        self, intent: OrderIntent, runtime: Runtime, client_id: str, side: str, quantity: float,
        cancel: threading.Event, held: _Held,
    ) -> OrderResult:
        attempt = 1  # sends so far, this one included
        limited = 0  # earlier sends the venue or the request budget rate-limited
        left = 0  # attempts that may have left this process (the budget let them go)
        sent_at: float | None = None
        in_doubt = False  # the last send's fate was settled NOT_FOUND by lookups
        while True:
            if attempt > 1:
                # Seed 1001: looked up first, so a resend refused below never calls a late fill "not
                # executed", and again right before the send, after the take-back and the write.
                found = self._look_before_resend(intent, runtime, client_id, side, cancel, held, attempt - 1,
                                                 sent_at) if in_doubt else None
                if found is not None:
                    return found
                why = self._resend_refusal(intent, cancel)
                if why is not None:
                    return self._not_sent(intent, runtime, client_id, why, attempt - 1)
                taken = self._take_back_protective(intent, runtime) if intent.purpose.reduces_risk else None
                if taken is not None:  # seed 296462: a protective stop was placed while this exit waited
                    return self._not_sent(intent, taken.runtime or runtime, client_id, taken.reason, attempt - 1)
                self._keep(held)
                # Durably "attempt n+1 may be on the wire" before it goes (seed 724076): the write every
                # resend makes anyway, so the first send never pays for it.
                runtime = replace(runtime, pending_since=self._send_deadline_s(), pending_sends=left + 1)
                self._write(intent, runtime)
                found = self._look_before_resend(intent, runtime, client_id, side, cancel, held, attempt - 1,
                                                 sent_at) if in_doubt else None
                if found is not None:
                    return found
            if sent_at is None:
                sent_at = time.perf_counter()
            outcome = self.venue.place_order(
                intent.symbol, side, "MARKET", quantity, client_id,
                reduce_only=intent.purpose.reduces_risk, priority=self._priority(intent, held),
            )
            crash_windows.reached("after_reply", client_id)
            replied = time.monotonic()
            in_doubt = False
            if outcome.sent:
                left += 1
            # F1's "max 3 retries" counts failures; a rate limit (F5) is waited out (entries only
            # until their bound), so it never turns an entry -- or a stop-loss -- into a SAFETY_ABORT.
            counted = attempt - limited
            decision = self.retry.decide(outcome.kind.value, counted, retry_after=outcome.retry_after_s,
                                         detail=outcome.describe())
            if decision.action is RetryAction.DONE:
                state = order_state(outcome.order)
                if outcome.kind is not OutcomeKind.DUPLICATE and state is not None and state.final:
                    return self._apply(intent, runtime, client_id, side, state, attempt, sent_at)
                # Accepted but not final (NEW, PARTIALLY_FILLED) or -4116 (open under this id): settle it.
                resolved = self._resolve(intent, runtime, client_id, side, self.venue_now_ms(), None, cancel,
                                         held, attempt, sent_at)
                if resolved is _NOT_FOUND:
                    return self._unknown(intent, runtime, client_id, "accepted, then not found", attempt, sent_at)
                return resolved  # type: ignore[return-value]
            if decision.action is RetryAction.LOOKUP_THEN_RETRY and planted.on("resend_without_lookup"):
                delay = self.retry.backoff(counted)
            elif decision.action is RetryAction.LOOKUP_THEN_RETRY:
                resolved = self._resolve(intent, runtime, client_id, side, self.venue_now_ms(), doubt_of(outcome),
                                         cancel, held, attempt, sent_at)
                if resolved is not _NOT_FOUND:
                    return resolved  # type: ignore[return-value]
                if not decision.retry_allowed:
                    return self._abort(intent, runtime, "SAFETY_ABORT: lookup found nothing and retries are "
                                       "exhausted; position unchanged", client_id=client_id, attempts=attempt)
                # Issue 14 (seed 1001): the backoff counts from the failed attempt's reply; settling it
                # (>= its settle window) has already waited it out, so a stop-loss goes again at once.
                delay = max(0.0, self.retry.backoff(counted) - (time.monotonic() - replied))
                in_doubt = True
            elif decision.action is RetryAction.RETRY_AFTER:
                delay = decision.delay
                if outcome.kind is OutcomeKind.RATE_LIMITED:
                    limited += 1
                    self.on_rate_limited()
                    if not left and runtime.pending_sends:
                        runtime = self._mark_unsent(intent, runtime, client_id, outcome)
                    # Stops first (F5): when the ban lifts, a stop-loss resends before an exit, an exit
                    # before an entry, so the first request the venue takes is the one reducing risk.
                    stagger = RATE_LIMIT_STAGGER_S * int(self._priority(intent, held))
                    delay = max(delay, RATE_LIMIT_MIN_WAIT_S) + stagger
            elif decision.action is RetryAction.ABORT_ACCOUNT:
                return self._abort(intent, runtime, decision.reason, client_id=client_id, attempts=attempt,
                                   verdict=Verdict.ACCOUNT_PAUSED)
            elif outcome.code == NOTHING_TO_REDUCE_CODE and intent.purpose.reduces_risk:
                return self._nothing_to_reduce(intent, runtime, client_id, outcome, attempt)
            else:
                return self._abort(intent, runtime, f"SAFETY_ABORT: {decision.reason}", client_id=client_id,
                                   attempts=attempt)
            if intent.purpose is Purpose.ENTRY and self.wall_clock() + delay - intent.created_at > self.entry_bound_s:
                return self._not_sent(intent, runtime, client_id, f"entry could not be sent within "
                                      f"{self.entry_bound_s:g}s of its intent: dropped, never sent late", attempt)
            log_event(ENGINE, "order_retry", details={"client_order_id": client_id, "attempt": attempt,
                                                                  "outcome": outcome.describe(), "delay_s": round(delay, 3)},
                      action_taken="retry with the same client order id", level="WARNING")
            if self._wait(delay, cancel, held):
                return self._not_sent(intent, runtime, client_id, "cancelled by an operator stop (F25)", attempt)
            attempt += 1

    def _mark_unsent(self, intent: OrderIntent, runtime: Runtime, client_id: str,
                     outcome: VenueOutcome) -> Runtime:
        """Seed 724076: every attempt of this order so far was deferred by the request budget, so
        nothing of it is on the wire. Made durable, so a restart during the deferral settles the
        order by one NOT_FOUND and re-drives its exit at once, instead of waiting out the settle
        window for a send that never happened. Only on this slow path (a deferral); when the write
        fails the record still says "may have left", which only costs that wait."""
        unsent = self._stamped(replace(runtime, pending_sends=0))
        try:
            self.store.write_runtime_or_buffer(intent.strategy_id, unsent)
        except StoreUnavailable:
            return runtime
        self.cache.put(intent.strategy_id, unsent)
        log_event(ENGINE, "order_not_on_the_wire",
                  details={"client_order_id": client_id, "outcome": outcome.describe()},
                  action_taken="recorded: nothing of it left this process; a restart settles it at once",
                  level="DEBUG")
        return unsent

    def _look_before_resend(
        self, intent: OrderIntent, runtime: Runtime, client_id: str, side: str, cancel: threading.Event,
        held: _Held, attempts: int, sent_at: float | None,
    ) -> OrderResult | None:
        """Seed 1001: a NOT_FOUND is final only at the instant of its lookup; an "unknown" send may
        execute later than the settle window, during the retry backoff. Binance takes a resend of
        a filled order's client id as a new order, so the resend looks the order up once more right
        before it goes. None: still not there (or the look was inconclusive), send it again."""
        looked = self.venue.query_order(intent.symbol, client_id, priority=self._priority(intent, held))
        state = order_state(looked.order) if looked.ok else None
        if state is None:
            return None
        log_event(ENGINE, "order_found_before_resend",
                  details={"client_order_id": client_id, "status": state.status,
                           "executed_qty": state.executed_qty},
                  action_taken="not sent again: the earlier send executed late", level="WARNING")
        if state.final:
            return self._apply(intent, runtime, client_id, side, state, attempts, sent_at)
        resolved = self._resolve(intent, runtime, client_id, side, self.venue_now_ms(), None, cancel, held,
                                 attempts, sent_at)
        if resolved is _NOT_FOUND:
            return self._unknown(intent, runtime, client_id, "found open before a resend, then not found",
                                 attempts, sent_at)
        return resolved  # type: ignore[return-value]

    def _resolve(
        self, intent: OrderIntent, runtime: Runtime, client_id: str, side: str, last_send_ms: float,
        doubt: Doubt | None, cancel: threading.Event, held: _Held, attempts: int, sent_at: float | None,
    ) -> OrderResult | object:
        """Look the order up until it settles: an applied result, UNKNOWN (handed to the settle
        loop), or _NOT_FOUND once a NOT_FOUND is final (the send can no longer execute)."""
        final_at = self.timing.final_not_found_at(last_send_ms, doubt)
        if doubt is not None:
            self._doubts[client_id] = doubt
        give_up_at = final_at + INLINE_SETTLE_SLACK_S * 1000.0
        lookups = 0
        while True:
            lookups += 1
            self._keep(held)
            looked = self.venue.query_order(intent.symbol, client_id, priority=self._priority(intent, held))
            state = order_state(looked.order) if looked.ok else None
            now = self.venue_now_ms()
            if state is not None and state.final:
                self._doubts.pop(client_id, None)
                return self._apply(intent, runtime, client_id, side, state, attempts, sent_at)
            if looked.kind is OutcomeKind.NOT_FOUND and now >= final_at:
                self._doubts.pop(client_id, None)
                return _NOT_FOUND
            if now >= give_up_at:
                return self._unknown(intent, runtime, client_id, f"still in doubt: {looked.describe()}",
                                     attempts, sent_at)
            wait = lookup_delay(lookups)
            if looked.kind is OutcomeKind.NOT_FOUND:
                wait = until_next_lookup(wait, final_at, now)  # now < final_at here: returned above otherwise
            time.sleep(wait)  # not the cancel event: a send that may execute is settled, cancel or not

    def _settle_pending(self, intent: OrderIntent, runtime: Runtime, cancel: threading.Event, held: _Held,
                        *, resend: bool = True) -> OrderResult:
        """An order in doubt from before: ask the venue once what became of it (never resend blind).

        A final NOT_FOUND clears it; then, for an exit (and `resend`), the exit goes again at
        once under the same intent, and a partly executed exit's remainder likewise (F30).
        """
        client_id = runtime.pending_order
        purpose = Purpose(runtime.pending_purpose or "entry")
        origin = _as_purpose(intent, purpose)
        side = "BUY" if purpose is Purpose.ENTRY else "SELL"
        looked = self.venue.query_order(intent.symbol, client_id, priority=self._priority(intent, held))
        state = order_state(looked.order) if looked.ok else None
        if state is not None and state.final:
            self._doubts.pop(client_id, None)
            result = self._apply(origin, runtime, client_id, side, state, 0, None)
            if resend and purpose.reduces_risk and result.runtime is not None \
                    and result.runtime.position is Position.BOUGHT:
                return self._place(origin, result.runtime, cancel, held, rounds=2)
            return result
        final_at = self.pending_final_at(runtime)
        never_left = runtime.pending_sends == 0  # seed 724076: every attempt was deferred locally
        if looked.kind is OutcomeKind.NOT_FOUND and (never_left or self.venue_now_ms() >= final_at):
            self._doubts.pop(client_id, None)
            cleared = replace(runtime, pending_order="", pending_purpose="", pending_since=0.0)
            why = "settled: never left this process" if never_left else "settled: never reached the venue"
            self._record(intent, cleared, client_id, "NOT_FOUND", {"reason": why})
            self._note_not_executed(client_id)
            if resend and purpose.reduces_risk and cleared.position is Position.BOUGHT:
                log_event(ENGINE, "exit_resent", details={"client_order_id": client_id},
                          action_taken="exit sent again under the same intent", level="WARNING")
                return self._place(origin, cleared, cancel, held)
            return OrderResult(intent, Verdict.REFUSED, f"{client_id} never reached the venue; settled", client_id,
                               runtime=cleared)
        return self._unknown(origin, runtime, client_id, f"still in doubt: {looked.describe()}", 0, None)

    # --- outcomes -------------------------------------------------------------------------

    def _apply(self, intent: OrderIntent, runtime: Runtime, client_id: str, side: str, state: OrderState,
               attempts: int, sent_at: float | None) -> OrderResult:
        """A final order state: the position holds `executedQty` (F30), whatever the status."""
        qty, price = state.executed_qty, state.avg_price
        cleared = replace(runtime, pending_order="", pending_purpose="", pending_since=0.0)
        if intent.purpose is Purpose.ENTRY:
            if qty > 0:
                updated = replace(cleared, position=Position.BOUGHT, quantity=qty, entry_price=price)
                if updated.stop_loss:
                    self.stops.arm(intent.symbol, intent.strategy_id, updated.stop_loss, qty)
            else:
                updated = cleared
        else:
            left = remainder(runtime.quantity, qty)
            if left:
                updated = replace(cleared, quantity=left)
            else:
                position = Position.EXITED_BY_SL if intent.purpose is Purpose.STOP_LOSS else Position.SOLD
                updated = replace(cleared, position=position, quantity=0.0)
                self.stops.disarm(intent.symbol, intent.strategy_id)
        self._record(intent, updated, client_id, state.status, {"qty": repr(qty), "avg_price": repr(price),
                                                                "attempts": str(attempts)})
        verdict = Verdict.FILLED if qty > 0 else Verdict.EXPIRED
        event = "order_filled" if state.status == "FILLED" else "order_closed_partly"
        log_event(ENGINE, event, details={"client_order_id": client_id, "purpose": intent.purpose.value,
                                                      "status": state.status, "side": side, "qty": qty, "price": price,
                                                      "attempts": attempts},
                  action_taken=f"position {updated.position.value} {updated.quantity:g}")
        reason = "filled" if state.status == "FILLED" else f"{state.status}: executedQty {qty:g}"
        return OrderResult(intent, verdict, reason, client_id, side, qty, price, updated, attempts, sent_at)

    def _nothing_to_reduce(self, intent: OrderIntent, runtime: Runtime, client_id: str, outcome: VenueOutcome,
                           attempts: int) -> OrderResult:
        """-2022 on an exit: the venue holds nothing to reduce on that side (a protective stop, a
        sibling strategy's exit or an operator closed it). Final, nothing executed, never sent
        again (re-arming the stop would re-send it on every tick). The venue is the source of
        truth: the runtime follows it, and position-manager reconciles the symbol and alerts."""
        why = (f"venue refused the exit -2022 (nothing to reduce on {intent.symbol}): the position of "
               f"{runtime.quantity:g} is gone at the venue")
        cleared = replace(runtime, position=Position.NONE, quantity=0.0, pending_order="", pending_purpose="",
                          pending_since=0.0, reason=why[:900])
        self._record(intent, cleared, client_id, "REJECTED", {"code": str(outcome.code), "reason": why[:900]})
        self.stops.disarm(intent.symbol, intent.strategy_id)
        self._note_not_executed(client_id)
        log_event(ENGINE, "exit_nothing_to_reduce",
                  details={"strategy": intent.strategy_id, "client_order_id": client_id,
                           "purpose": intent.purpose.value, "symbol": intent.symbol,
                           "quantity": runtime.quantity, "outcome": outcome.describe()},
                  action_taken="final, not sent again; runtime follows the venue; symbol reconciled",
                  level="CRITICAL")
        return OrderResult(intent, Verdict.EXPIRED, why, client_id, "SELL", runtime=cleared, attempts=attempts,
                           reconcile=f"exit {client_id} refused -2022")

    def _settle_journal_only(self, intent: OrderIntent, client_id: str) -> OrderResult:
        looked = self.venue.query_order(intent.symbol, client_id, priority=intent.purpose.priority)
        state = order_state(looked.order) if looked.ok else None
        if state is not None and state.final:
            self._record(intent, None, client_id, state.status, {"qty": repr(state.executed_qty),
                                                                    "reason": "settled after the runtime moved on"})
            return OrderResult(intent, Verdict.REFUSED, f"{client_id} {state.status}; runtime had moved on", client_id)
        return OrderResult(intent, Verdict.UNKNOWN, f"{client_id} in doubt: {looked.describe()}", client_id)

    def _unknown(self, intent: OrderIntent, runtime: Runtime, client_id: str, why: str, attempts: int,
                 sent_at: float | None) -> OrderResult:
        """Leave the order pending: it counts as filled for risk and blocks a resend."""
        log_event(ENGINE, "order_unknown", details={"client_order_id": client_id, "why": why},
                  action_taken="kept pending; the settle loop looks it up until it settles", level="ERROR")
        return OrderResult(intent, Verdict.UNKNOWN, why, client_id, runtime=runtime, attempts=attempts, sent_at=sent_at)

    def _not_sent(self, intent: OrderIntent, runtime: Runtime, client_id: str, why: str, attempts: int) -> OrderResult:
        """Not sent again (cancel, gate, fence, bound): every earlier send is proven not executed."""
        cleared = replace(runtime, pending_order="", pending_purpose="", pending_since=0.0)
        verdict = Verdict.CANCELLED if "cancelled" in why else Verdict.REFUSED
        self._record(intent, cleared, client_id, verdict.value, {"reason": why[:900]})
        self._note_not_executed(client_id)
        log_event(ENGINE, "order_not_resent",
                  details={"strategy": intent.strategy_id, "client_order_id": client_id,
                           "attempts": attempts, "reason": why},
                  action_taken="not sent again; nothing of it executed", level="WARNING")
        return OrderResult(intent, verdict, why, client_id, runtime=cleared, attempts=attempts)

    def _abort(self, intent: OrderIntent, runtime: Runtime | None, reason: str, *, client_id: str | None = None,
               attempts: int = 0, verdict: Verdict = Verdict.SAFETY_ABORT, mark: bool = True) -> OrderResult:
        updated = None
        if runtime is not None and mark:
            status = Status.PAUSED if verdict is Verdict.ACCOUNT_PAUSED else Status.FAILED
            updated = replace(runtime, status=status, reason=reason[:900], pending_order="", pending_purpose="",
                              pending_since=0.0)
        if updated is not None or client_id is not None:
            self._record(intent, updated, client_id, verdict.value, {"reason": reason[:900]})
        if client_id is not None:
            self._note_not_executed(client_id)
        log_event(ENGINE, "safety_abort",
                  details={"strategy": intent.strategy_id, "purpose": intent.purpose.value,
                           "client_order_id": client_id, "reason": reason},
                  action_taken=f"{verdict.value}: strategy {intent.strategy_id} only; position unchanged",
                  level="ERROR")
        return OrderResult(intent, verdict, reason, client_id, runtime=updated, attempts=attempts)

    def _refuse(self, intent: OrderIntent, reason: str, runtime: Runtime | None = None, *,
                level: str = "INFO") -> OrderResult:
        log_event(ENGINE, "order_refused",
                  details={"strategy": intent.strategy_id, "purpose": intent.purpose.value,
                           "reason": reason}, action_taken="not sent", level=level)
        return OrderResult(intent, Verdict.REFUSED, reason, runtime=runtime)

    # --- persistence --------------------------------------------------------------------

    def _journal_and_mark_pending(self, intent: OrderIntent, client_id: str, fields: dict[str, str],
                                  pending: Runtime) -> None:
        """Intent journaled and runtime pending: one atomic round trip; with Redis down (exits
        only) or records still waiting in the disk buffer, the two records go there in order."""
        if not self.store.buffer_pending():
            stamped = self._stamped(pending)
            try:
                self.store.journal_and_mark_pending(client_id, fields, intent.strategy_id, stamped)
            except StoreUnavailable:
                if not intent.purpose.reduces_risk:
                    raise
            except CorruptState:
                pass  # F31: a journal of the wrong type: the two-call path below repairs it (or says why)
            else:
                self.cache.put(intent.strategy_id, stamped)
                return
        if not intent.purpose.reduces_risk and self.store.buffer_pending():
            raise StoreUnavailable("journal_and_mark_pending", RuntimeError("disk buffer not yet replayed"))
        if intent.purpose.reduces_risk:
            self.store.journal_intent_or_buffer(client_id, fields)
        else:
            self.store.journal_intent(client_id, fields)
        self._write(intent, pending)

    def _stamped(self, runtime: Runtime) -> Runtime:
        return replace(runtime, updated_at=self.wall_clock(), generation=self.generation or runtime.generation)

    def _write(self, intent: OrderIntent, runtime: Runtime) -> None:
        runtime = self._stamped(runtime)
        self.cache.put(intent.strategy_id, runtime)
        try:
            self.store.write_runtime_or_buffer(intent.strategy_id, runtime)
        except StoreUnavailable:
            log_event(ENGINE, "runtime_write_lost_risk", details={"strategy": intent.strategy_id},
                      level="CRITICAL")
            raise

    def _record(self, intent: OrderIntent, runtime: Runtime | None, client_id: str | None, outcome: str,
                fields: dict[str, str], *, its_outcome: bool = True) -> None:
        """The outcome write, one round trip (or the disk buffer): the runtime (None: unchanged),
        the final journal outcome of `client_id` (only final outcomes are journaled; UNKNOWN stays
        open until settled) and the acks of the queue entries waiting for it (issue 10 case 6);
        `its_outcome=False`: an outcome that is not the intent's (a protective stop taken back)."""
        stamped = None if runtime is None else self._stamped(runtime)
        if stamped is not None:
            self.cache.put(intent.strategy_id, stamped)
        pending = self._acks.get(intent.strategy_id) if its_outcome else None
        acks = pending.entries if pending is not None and not pending.written else ()
        try:
            self.store.record_outcome_or_buffer(intent.strategy_id, stamped, client_id, outcome,
                                                {"strategy_id": intent.strategy_id, **fields}, final=True, acks=acks)
        except StoreUnavailable:
            if stamped is not None:
                log_event(ENGINE, "runtime_write_lost_risk", details={"strategy": intent.strategy_id},
                          level="CRITICAL")
            raise
        if pending is not None:
            pending.written = True
        crash_windows.reached("after_write", client_id or "")
