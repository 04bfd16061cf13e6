"""The `execution-engine` actor: a thin shell that feeds the order pipeline.

Its own thread only routes: it reads the Redis order queue, turns stop hits into
STOP_LOSS intents, and hands each intent to a worker pool; outcomes come back as
messages. Stop-losses and flattens have their own pool, so neither an entry stuck in a
1/2/4 s retry nor a strategy's exit waiting out a rate limit or an order in flight ever
delays a stop-loss (seed 11); strategy exits have a pool of their own too. A stop that
crosses while the strategy's own exit is in progress promotes that exit to stop priority
instead of sending a stop-loss that would wait for it (seed 11 t18): one intent, one order.

Queue entries are acknowledged only once their outcome is final: if this actor dies, a
successor reclaims them and the pipeline, which derives the client order id from the
runtime, settles rather than resends.

The acknowledgement is part of the pipeline's outcome write (one Redis round trip:
runtime, journal outcome, ack), so a Redis blip can never leave an entry un-acked after
its outcome was written (issue 10 case 6); an intent refused with nothing written is
acked here alone. A re-delivered entry is single-use: refused, never sent again.

The settle loop: a strategy whose order is in doubt (UNKNOWN) is looked up again on a
backoff until it settles (`OrderPipeline.resettle`): a fill arms its stop and tells the
strategy (which schedules its exit), a final NOT_FOUND of an exit sends it again under the
same intent. Intents that arrived meanwhile wait and are dispatched once it has settled;
its stop stays armed in the book, and a trigger meanwhile leaves the exit to the loop.

Never does: talk to the venue on the actor thread; ack an entry before its outcome.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from actors.core import signals
from actors.core.settle import FINAL_STATUSES, lookup_delay, until_next_lookup
from actors.orders import SYSTEM_GENERATION, OrderIntent, Purpose
from actors.pipeline import OrderResult, RuntimeBusy, Verdict
from actors.messages import (CancelStrategy, CorrectExcess, DirectIntent, Fill, Flatten, FlattenDone, OrderUpdate,
                             RateLimited, Reconcile, SettlePending, StopsTriggered, VenueOrderEvent, Wake)
from actors import node_ids
from actors.node_ids import CIRCUIT_BREAKER, DEGRADATION, ENGINE, POSITION_MANAGER
from actors.services import Services
from runtime.logging import log_event
from runtime.store.errors import CorruptState, StaleGeneration, StoreUnavailable
from runtime.store.queue import QueuedOrder
from runtime.store.runtime_state import Runtime, Status
from runtime.venue.user_events import OrderUpdate as VenueOrderUpdate
from runtime.venue.user_stream import UserDataStream
from supervision import SupervisedActor


@dataclass
class _Flight:
    """A strategy's own orders (entries, its SELLs) dispatched and not finished; one cancel for all."""

    cancel: threading.Event
    orders: int = 0


CANCELLABLE = (Purpose.ENTRY, Purpose.EXIT)  # an operator stop (F25) never cancels a stop-loss or a flatten


@dataclass(frozen=True)
class _RateLimitQuiet:
    pass


@dataclass(frozen=True)
class _Resettle:
    """Timer: look the strategy's order in doubt up again (the settle loop)."""

    strategy_id: str


@dataclass(frozen=True)
class _NothingPending:
    strategy_id: str


@dataclass
class _Unsettled:
    """A strategy with an order in doubt: the entries and intents waiting on its settlement."""

    attempts: int = 0
    acks: list[QueuedOrder] = field(default_factory=list)  # acked once it settles
    blocked: list[tuple[OrderIntent, QueuedOrder | None]] = field(default_factory=list)  # sent again then
    scheduled: bool = False


MAX_SETTLE_DELAY_S = 30.0
EXECUTIONS_KEPT = 10_000  # client ids whose executed venue orders are remembered (duplicate detection)


RATE_LIMIT_PERSISTENT = 5  # 429/418 answers within the window make rate limiting "persistent" (F5)
RATE_LIMIT_WINDOW_S = 60.0


@dataclass(frozen=True)
class _Done:
    result: OrderResult
    queued: QueuedOrder | None
    tick_perf: float | None
    dispatched: OrderIntent | None = None  # the intent as dispatched (None: a settle-loop step)
    settle_acks: tuple[QueuedOrder, ...] = ()  # a settle-loop step: the entries handed to its outcome write


def arm_stop_if_open(services: Services, strategy_id: str, symbol: str) -> bool:
    """Arm the strategy's stop again while its position is open: after a stop-loss that could not
    exit, and when an operator resumes a strategy whose stop-loss was refused for credentials (F3:
    no retry while the account is paused, so that crossing disarmed the stop and nothing else
    would arm it before the next reconcile; soak seed 4242, t16#57). Never beside a venue-side
    protective stop that holds the position: one crossing, one exit. True when armed."""
    if services.protective.holds(strategy_id):
        return False
    runtime = services.runtime_cache.get(strategy_id)
    if runtime is None or runtime.position.value != "bought" or not runtime.stop_loss:
        return False
    services.stops.arm(symbol, strategy_id, runtime.stop_loss, runtime.quantity)
    return True


class ExecutionEngine(SupervisedActor):
    def __init__(self, services: Services, stop_workers: int = 4, order_workers: int = 8,
                 exit_workers: int = 4) -> None:
        super().__init__()
        self.services = services
        self.stop_workers = stop_workers
        self.order_workers = order_workers
        self.exit_workers = exit_workers
        self.in_flight: dict[str, _Flight] = {}
        self.completed = 0
        self.rate_limits: deque[float] = deque()
        self.rate_limit_reported = False
        self.flattening: dict[str, int] = {}  # flatten reason -> exits still outstanding
        self.unsettled: dict[str, _Unsettled] = {}  # strategy id -> its order in doubt (the settle loop)
        self.stopping: set[str] = set()  # strategies with a STOP_LOSS dispatched and not finished
        self.executions: dict[str, set[int]] = {}  # client id -> venue order ids seen executed (stream)

    def on_start(self) -> None:
        s = self.services
        self.consumer = f"{s.config.node.name}:engine"
        self.accounts = {strategy.id: strategy.account for strategy in s.config.strategies}
        self.pipeline = s.pipeline
        self.stop_pool = ThreadPoolExecutor(self.stop_workers, thread_name_prefix="engine-stop")
        self.order_pool = ThreadPoolExecutor(self.order_workers, thread_name_prefix="engine-order")
        self.exit_pool = ThreadPoolExecutor(self.exit_workers, thread_name_prefix="engine-exit")
        s.directory.register(ENGINE, self.generation, self.actor_ref)
        self.user_stream = self._start_user_stream()
        try:
            s.store.load_order_scripts()
        except StoreUnavailable:
            pass  # loaded by the first order that needs them
        self._reclaim()
        self._drain()

    def on_stop(self) -> None:
        self.services.directory.unregister(ENGINE, self.generation)
        if self.user_stream is not None:
            self.user_stream.stop()
        # F26: orders already in flight finish; queued ones stay un-acked in Redis for the next start.
        self.order_pool.shutdown(wait=True, cancel_futures=True)
        self.exit_pool.shutdown(wait=True, cancel_futures=True)
        self.stop_pool.shutdown(wait=True, cancel_futures=True)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, StopsTriggered):
            for hit in message.hits:
                reason = f"stop {hit.level:g} crossed at {hit.price:g}"
                if self.pipeline.promote(hit.strategy_id, reason) or hit.strategy_id in self.unsettled:
                    # An exit of this strategy in progress goes on at stop priority, its wait cut
                    # short (seed 11 t18): one intent, one exit order. An order in doubt is the settle
                    # loop's, which re-drives the exit. The stop stays armed in the book meanwhile,
                    # so the next tick sends a stop-loss if that exit ends with the position open.
                    self.services.stops.rearm(message.symbol, hit)
                    continue
                if hit.strategy_id in self.stopping:
                    # Its stop-loss waits for a stop worker (seed 1001): one crossing, one stop-loss.
                    # If it cannot exit, _finish re-arms the stop for the next tick.
                    continue
                intent = OrderIntent(hit.strategy_id, self._account_of(hit.strategy_id), message.symbol,
                                     Purpose.STOP_LOSS, reason=reason, generation=SYSTEM_GENERATION)
                self._dispatch(intent, None, message.tick_perf)
        elif isinstance(message, Wake):
            self._drain()
        elif isinstance(message, DirectIntent):
            self._dispatch(message.intent, None, None)
        elif isinstance(message, Flatten):
            self._flatten(message)
        elif isinstance(message, CancelStrategy):
            flight = self.in_flight.get(message.strategy_id)
            if flight is not None:
                flight.cancel.set()
        elif isinstance(message, _Done):
            self._finish(message)
        elif isinstance(message, _Resettle):
            self._resettle(message.strategy_id)
        elif isinstance(message, _NothingPending):
            self._settled(message.strategy_id)
        elif isinstance(message, VenueOrderEvent):
            self._venue_order_event(message.update)
        elif isinstance(message, SettlePending):
            self._track(message.strategy_id)
        elif isinstance(message, RateLimited):
            self._rate_limited(message.at)
        elif isinstance(message, _RateLimitQuiet):
            self._rate_limit_quiet()
        return None

    def status_details(self) -> dict[str, Any]:
        return {"in_flight": sorted(self.in_flight), "completed": self.completed,
                "unsettled": sorted(self.unsettled)}

    # --- intake -----------------------------------------------------------------------

    def _reclaim(self) -> None:
        """Entries a dead incarnation took but never acknowledged (single node per group)."""
        try:
            for queued in self.services.store.reclaim(self.consumer, min_idle_ms=0):
                self._accept(queued)
        except StoreUnavailable:
            pass

    def _drain(self) -> None:
        try:
            while True:
                batch = self.services.store.read(self.consumer, count=100, block_ms=None)
                if not batch:
                    return
                for queued in batch:
                    self._accept(queued)
        except StoreUnavailable:
            log_event(ENGINE, "queue_unavailable", action_taken="entries wait in Redis", level="WARNING")

    def _accept(self, queued: QueuedOrder) -> None:
        try:
            intent = OrderIntent.from_fields(queued.intent)
        except ValueError as exc:
            # Bad input is named and journaled, never silently dropped.
            log_event(ENGINE, "bad_intent", details={"entry": queued.entry_id, "error": str(exc)},
                      action_taken="acknowledged and journaled as rejected", level="ERROR")
            self.services.store.journal_outcome_or_buffer(f"bad:{queued.entry_id}", "REJECTED", {"error": str(exc)})
            self.services.store.ack(queued)
            return
        self._dispatch(intent, queued, None)

    def _dispatch(self, intent: OrderIntent, queued: QueuedOrder | None, tick_perf: float | None) -> None:
        if intent.purpose in CANCELLABLE:
            flight = self.in_flight.setdefault(intent.strategy_id, _Flight(threading.Event()))
            flight.orders += 1
            cancel = flight.cancel
        else:
            cancel = threading.Event()
        if intent.purpose is Purpose.STOP_LOSS:
            self.stopping.add(intent.strategy_id)
        pool = self._pool_for(intent.purpose)
        ref = self.actor_ref
        pipeline = self.pipeline

        def work() -> None:
            try:
                result = pipeline.execute(intent, cancel, queued)
            except Exception as exc:  # noqa: BLE001 - an order must always come back with a verdict
                result = OrderResult(intent, Verdict.UNKNOWN, f"pipeline error: {type(exc).__name__}: {exc}")
                log_event(ENGINE, "pipeline_error", details={"strategy": intent.strategy_id, "error": repr(exc)},
                          action_taken="left unacknowledged for settlement", level="ERROR", exc=exc)
                queued_for_ack = None
            else:
                queued_for_ack = queued
            try:
                ref.tell(_Done(result, queued_for_ack, tick_perf, intent))
            except Exception:  # noqa: BLE001 - engine gone: the entry stays un-acked and is reclaimed
                pass

        try:
            pool.submit(work)
        except RuntimeError:
            pass  # pool shut down (stopping): the entry stays in Redis

    def _pool_for(self, purpose: Purpose) -> ThreadPoolExecutor:
        if purpose is Purpose.EXIT:
            return self.exit_pool
        return self.stop_pool if purpose.reduces_risk else self.order_pool

    def _flatten(self, message: Flatten) -> None:
        """Dispatch one FLATTEN per open position in scope; FlattenDone once all have finished."""
        outstanding = 0
        for strategy in self.services.config.strategies:
            if message.symbol and strategy.symbol != message.symbol:
                continue
            if message.strategy_id and strategy.id != message.strategy_id:
                continue
            runtime = self.services.runtime_cache.get(strategy.id)
            if runtime is not None and runtime.position.value != "bought" and not runtime.pending_order:
                continue  # flat with nothing in doubt (an entry in doubt may have filled: it is flattened)
            intent = OrderIntent(strategy.id, strategy.account, strategy.symbol, Purpose.FLATTEN,
                                 reason=message.reason)
            self._dispatch(intent, None, None)
            outstanding += 1
        if outstanding:
            self.flattening[message.reason] = self.flattening.get(message.reason, 0) + outstanding
        else:
            self.services.directory.tell(DEGRADATION, FlattenDone(message.reason))

    # --- outcomes -----------------------------------------------------------------------

    def _finish(self, done: _Done) -> None:
        result = done.result
        intent = done.dispatched or result.intent
        self.completed += 1
        if done.dispatched is not None and intent.purpose is Purpose.STOP_LOSS:
            self.stopping.discard(intent.strategy_id)
        if result.verdict is Verdict.UNKNOWN:
            # Left for the settle loop. The intent that sent the order in doubt is acked once it
            # settles; an intent that was only blocked by it is dispatched again then.
            tracked = self._track(intent.strategy_id, result.runtime)
            if done.dispatched is None:
                self._acked_by_settle(done)
                return  # a settle-loop step that is still in doubt: nothing new to tell anyone
            if result.attempts == 0:
                tracked.blocked.append((done.dispatched, done.queued))
            elif done.queued is not None and not result.acked:
                tracked.acks.append(done.queued)
        else:
            if done.queued is not None and not result.acked:
                self._ack(done.queued)  # no outcome was written (a refusal): the ack is all there is
            self._acked_by_settle(done)
            if intent.strategy_id in self.unsettled and (result.runtime is None or not result.runtime.pending_order):
                self._settled(intent.strategy_id)
        flight = self.in_flight.get(intent.strategy_id)
        if flight is not None and intent.purpose in CANCELLABLE:
            flight.orders -= 1
            if flight.orders <= 0:  # the last one: a later order (after a restart) gets a fresh cancel
                del self.in_flight[intent.strategy_id]
        if intent.purpose is Purpose.FLATTEN and intent.reason in self.flattening:
            self.flattening[intent.reason] -= 1
            if self.flattening[intent.reason] <= 0:
                del self.flattening[intent.reason]
                self.services.directory.tell(DEGRADATION, FlattenDone(intent.reason))
        if result.verdict in (Verdict.REFUSED, Verdict.SAFETY_ABORT, Verdict.UNKNOWN) \
                and result.intent.purpose is Purpose.STOP_LOSS:
            arm_stop_if_open(self.services, intent.strategy_id, intent.symbol)  # armed for the next tick
        if result.verdict is Verdict.ACCOUNT_PAUSED:
            self._pause_account(intent.account, intent.strategy_id, result.reason)
        metrics = self.services.metrics
        if metrics is not None:
            metrics.record_order_outcome(result.verdict.value)
            if done.tick_perf is not None and result.sent_at is not None:
                metrics.observe_tick_to_order(max(0.0, result.sent_at - done.tick_perf))
        fill = None
        if result.verdict is Verdict.FILLED and result.runtime is not None:
            fill = Fill(result.intent.purpose.value, result.side or "", result.filled_qty, result.avg_price,
                        result.client_order_id or "", result.runtime.position.value)
        update = OrderUpdate(result.verdict.value, result.reason, fill, result.runtime)
        self.services.directory.tell(node_ids.strategy(intent.strategy_id), update)
        self.services.directory.tell(POSITION_MANAGER, result)
        self.services.directory.tell(CIRCUIT_BREAKER, result)

    def _pause_account(self, account: str, origin: str, reason: str) -> None:
        """F3: a refused credential is the account's, not one order's: pause every strategy of it.

        Entries of the account close at the gate at once; each active strategy of the account is
        marked `paused` with the reason (runtime and its actor), until an operator enables it.
        The runtime writes go through the pipeline's serialization, on a worker: never over a
        fill written meanwhile, never blocking this actor behind an order in progress.
        """
        self.services.directory.tell(DEGRADATION, signals.account_paused(account, True, reason))
        strategies = [s.id for s in self.services.config.strategies if s.account == account]
        services, pipeline = self.services, self.pipeline

        def pause(runtime: Runtime) -> Runtime | None:
            if runtime.status is not Status.ACTIVE:
                return None
            return replace(runtime, status=Status.PAUSED, reason=reason[:900])

        def work() -> None:
            paused = []
            for strategy_id in strategies:
                try:
                    runtime = pipeline.update_runtime(strategy_id, pause)
                except (CorruptState, StaleGeneration, StoreUnavailable, RuntimeBusy) as exc:
                    log_event(ENGINE, "account_pause_incomplete",
                              details={"strategy": strategy_id, "error": str(exc)},
                              action_taken="entries of the account stay closed at the gate", level="ERROR")
                    continue
                if runtime is not None and runtime.status is Status.PAUSED:
                    paused.append(strategy_id)
                    if strategy_id != origin:
                        services.directory.tell(node_ids.strategy(strategy_id),
                                                OrderUpdate(Verdict.ACCOUNT_PAUSED.value, reason, None, runtime))
            log_event(ENGINE, "account_paused", details={"account": account, "strategies": paused, "reason": reason},
                      action_taken="every strategy of the account paused until an operator enables it", level="ERROR")

        try:
            self.order_pool.submit(work)
        except RuntimeError:
            pass  # stopping: the gate keeps the account's entries closed

    # --- the user-data stream -------------------------------------------------------------

    def _start_user_stream(self) -> UserDataStream | None:
        """The account's /private stream: fills, expiries and late executions, before a lookup could."""
        s = self.services
        if not s.ws_url or s.venue is None:
            return None
        ref, directory, symbols = self.actor_ref, s.directory, s.config.feeds.symbols

        def reconnected() -> None:
            # Events sent while the stream was down are not replayed: every (re)connect is a
            # reconciliation barrier, and every order in doubt is looked up at once.
            for symbol in symbols:
                directory.tell(DEGRADATION, signals.reconcile_barrier(
                    symbol, True, "user-data stream (re)connected: reconciling with the venue"))
            if not directory.tell(POSITION_MANAGER, Reconcile("venue reconnect")):
                for symbol in symbols:
                    directory.tell(DEGRADATION, signals.reconcile_barrier(symbol, False))

        stream = UserDataStream(s.venue, s.ws_url, on_order_update=lambda update: ref.tell(VenueOrderEvent(update)),
                                on_reconnect=reconnected)
        stream.start()
        return stream

    def _venue_order_event(self, update: VenueOrderUpdate) -> None:
        """A final order state from the stream: settle its strategy's order in doubt now; a fill
        for an intent already settled as not executed (late, duplicate) is an excess to correct."""
        if update.status not in FINAL_STATUSES:
            return
        strategy_id = update.client_id.rpartition(":")[0]
        if strategy_id not in self.accounts:
            return  # not one of ours
        duplicate = False
        if update.executed_qty > 0:
            # One client id, two venue orders executed: a late send landed after the resend.
            orders = self.executions.setdefault(update.client_id, set())
            orders.add(update.order_id)
            duplicate = len(orders) > 1
            while len(self.executions) > EXECUTIONS_KEPT:
                del self.executions[next(iter(self.executions))]
        if strategy_id in self.unsettled:
            self._resettle(strategy_id)
        if update.executed_qty > 0 and (duplicate or self.pipeline.settled_not_executed(update.client_id)):
            log_event(ENGINE, "late_fill_excess", details={"client_order_id": update.client_id,
                                                           "executed_qty": str(update.executed_qty)},
                      action_taken="correct the excess at once, limited to it", level="CRITICAL")
            self.services.directory.tell(POSITION_MANAGER, CorrectExcess(update.symbol, update.client_id,
                                                                        float(update.executed_qty), update.side,
                                                                        update.order_id))

    # --- the settle loop ------------------------------------------------------------------

    def _track(self, strategy_id: str, runtime: Runtime | None = None) -> _Unsettled:
        """Re-drive this strategy's order in doubt until it settles (DESIGN §3).

        The next lookup is never later than the moment the pending order's NOT_FOUND becomes final
        (issue 14, seed 4242): an exit, or a stop crossing left to this loop, goes out then, not a
        backoff after it. `runtime`: the strategy's runtime with the order pending, if known."""
        tracked = self.unsettled.setdefault(strategy_id, _Unsettled())
        if not tracked.scheduled:
            tracked.scheduled = True
            tracked.attempts += 1
            delay = min(MAX_SETTLE_DELAY_S, lookup_delay(tracked.attempts) * 2)
            runtime = runtime or self.services.runtime_cache.get(strategy_id)
            if runtime is not None and runtime.pending_order:
                delay = until_next_lookup(delay, self.pipeline.pending_final_at(runtime),
                                          self.pipeline.venue_now_ms())
            self.services.timers.tell_after(delay, self.actor_ref, _Resettle(strategy_id))
        return tracked

    def _resettle(self, strategy_id: str) -> None:
        tracked = self.unsettled.get(strategy_id)
        if tracked is None:
            return
        tracked.scheduled = False
        strategy = self.services.config.strategy(strategy_id)
        ref, pipeline, acks = self.actor_ref, self.pipeline, tuple(tracked.acks)

        def work() -> None:
            try:
                result = pipeline.resettle(strategy_id, strategy.account, strategy.symbol, acks)
            except Exception as exc:  # noqa: BLE001 - the loop goes on: still in doubt
                log_event(ENGINE, "settle_error", details={"strategy": strategy_id, "error": repr(exc)},
                          action_taken="looked up again later", level="ERROR", exc=exc)
                result = OrderResult(OrderIntent(strategy_id, strategy.account, strategy.symbol, Purpose.EXIT),
                                     Verdict.UNKNOWN, f"settle error: {exc!r}")
            try:
                ref.tell(_NothingPending(strategy_id) if result is None
                         else _Done(result, None, None, settle_acks=acks))
            except Exception:  # noqa: BLE001 - engine gone: its successor's cold start settles it
                pass

        try:
            (self.stop_pool if strategy_id in self.in_flight else self.order_pool).submit(work)
        except RuntimeError:
            pass

    def _settled(self, strategy_id: str) -> None:
        tracked = self.unsettled.pop(strategy_id, None)
        if tracked is None:
            return
        for queued in tracked.acks:
            self._ack(queued)
        for intent, queued in tracked.blocked:
            self._dispatch(intent, queued, None)

    def _acked_by_settle(self, done: _Done) -> None:
        """A settle-loop step whose outcome write acknowledged the entries waiting on it."""
        tracked = self.unsettled.get(done.result.intent.strategy_id)
        if done.result.acked and tracked is not None:
            tracked.acks = [queued for queued in tracked.acks if queued not in done.settle_acks]

    def _ack(self, queued: QueuedOrder) -> None:
        try:
            self.services.store.ack(queued)
        except StoreUnavailable:
            pass  # re-delivered later; single use: the pipeline settles or refuses it, never resends

    def _rate_limited(self, at: float) -> None:
        """F5: persistent rate limiting → REDUCED; cleared once a window passes without one
        (degradation then holds REDUCED for its clean period before ramping back)."""
        self.rate_limits.append(at)
        while self.rate_limits and at - self.rate_limits[0] > RATE_LIMIT_WINDOW_S:
            self.rate_limits.popleft()
        if len(self.rate_limits) >= RATE_LIMIT_PERSISTENT and not self.rate_limit_reported:
            self.rate_limit_reported = True
            self.services.directory.tell(DEGRADATION, signals.rate_limited(
                True, f"{len(self.rate_limits)} rate-limit answers within {RATE_LIMIT_WINDOW_S:g}s"))
        if self.rate_limit_reported:
            self.services.timers.tell_at(at + RATE_LIMIT_WINDOW_S, self.actor_ref, _RateLimitQuiet())

    def _rate_limit_quiet(self) -> None:
        now = time.time()
        if self.rate_limit_reported and (not self.rate_limits or now - self.rate_limits[-1] >= RATE_LIMIT_WINDOW_S):
            self.rate_limit_reported = False
            self.rate_limits.clear()
            self.services.directory.tell(DEGRADATION, signals.rate_limited(False, "no rate limiting for a minute"))

    def _account_of(self, strategy_id: str) -> str:
        return self.accounts.get(strategy_id, "default")

