"""The `execution-engine` actor: a thin shell that feeds the order pipeline.

Its own thread only routes: it reads the Redis order queue, turns stop hits into
STOP_LOSS intents, and hands each intent to a worker pool; outcomes come back as
messages. Stops and exits have their own pool, so an entry stuck in a 1/2/4 s retry
never delays a stop-loss. Queue entries are acknowledged only once their outcome is
final: if this actor dies, a successor reclaims them and the pipeline, which derives
the client order id from the runtime, settles rather than resends.

Never does: talk to the venue on the actor thread; ack an entry before its outcome.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from loguru import logger

from actors.core import signals
from actors.core.retry import RetryConfig, RetryPolicy
from actors.orders import SYSTEM_GENERATION, OrderIntent, Purpose
from actors.pipeline import OrderPipeline, OrderResult, Verdict
from actors.messages import CancelStrategy, DirectIntent, Flatten, FlattenDone, StopsTriggered, Wake
from actors.services import ENGINE, Services
from actors.strategy import Fill, OrderUpdate
from runtime.store.errors import CorruptState, StaleGeneration, StoreUnavailable
from runtime.store.queue import QueuedOrder
from runtime.store.runtime_state import Runtime, Status
from supervision import SupervisedActor

log = logger.bind(component=ENGINE)


@dataclass
class _Flight:
    """A strategy's own orders (entries, its SELLs) dispatched and not finished; one cancel for all."""

    cancel: threading.Event
    orders: int = 0


CANCELLABLE = (Purpose.ENTRY, Purpose.EXIT)  # an operator stop (F25) never cancels a stop-loss or a flatten


@dataclass(frozen=True)
class _RateLimited:
    at: float


@dataclass(frozen=True)
class _RateLimitQuiet:
    pass


RATE_LIMIT_PERSISTENT = 5  # 429/418 answers within the window make rate limiting "persistent" (F5)
RATE_LIMIT_WINDOW_S = 60.0


@dataclass(frozen=True)
class _Done:
    result: OrderResult
    queued: QueuedOrder | None
    tick_perf: float | None


class ExecutionEngine(SupervisedActor):
    def __init__(self, services: Services, retry: RetryConfig | None = None, stop_workers: int = 4,
                 order_workers: int = 8) -> None:
        super().__init__()
        self.services = services
        self.retry_config = retry or RetryConfig()
        self.stop_workers = stop_workers
        self.order_workers = order_workers
        self.in_flight: dict[str, _Flight] = {}
        self.completed = 0
        self.rate_limits: deque[float] = deque()
        self.rate_limit_reported = False
        self.flattening: dict[str, int] = {}  # flatten reason -> exits still outstanding

    def on_start(self) -> None:
        s = self.services
        self.consumer = f"{s.config.node.name}:engine"
        self.accounts = {strategy.id: strategy.account for strategy in s.config.strategies}
        self.pipeline = OrderPipeline(s.store, s.venue, s.gate, s.fence, s.stops, RetryPolicy(self.retry_config))
        ref = self.actor_ref
        self.pipeline.on_rate_limited = lambda: ref.tell(_RateLimited(time.time()))
        self.pipeline.cache = s.runtime_cache
        self.stop_pool = ThreadPoolExecutor(self.stop_workers, thread_name_prefix="engine-stop")
        self.order_pool = ThreadPoolExecutor(self.order_workers, thread_name_prefix="engine-order")
        s.directory.register(ENGINE, self.generation, self.actor_ref)
        self._reclaim()
        self._drain()

    def on_stop(self) -> None:
        self.services.directory.unregister(ENGINE, self.generation)
        # F26: orders already in flight finish; queued ones stay un-acked in Redis for the next start.
        self.order_pool.shutdown(wait=True, cancel_futures=True)
        self.stop_pool.shutdown(wait=True, cancel_futures=True)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, StopsTriggered):
            for hit in message.hits:
                intent = OrderIntent(hit.strategy_id, self._account_of(hit.strategy_id), message.symbol,
                                     Purpose.STOP_LOSS, reason=f"stop {hit.level:g} crossed at {hit.price:g}",
                                     generation=SYSTEM_GENERATION)
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
        elif isinstance(message, _RateLimited):
            self._rate_limited(message.at)
        elif isinstance(message, _RateLimitQuiet):
            self._rate_limit_quiet()
        return None

    def status_details(self) -> dict[str, Any]:
        return {"in_flight": sorted(self.in_flight), "completed": self.completed}

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
            log.bind(event="queue_unavailable", action_taken="entries wait in Redis").warning("queue_unavailable")

    def _accept(self, queued: QueuedOrder) -> None:
        try:
            intent = OrderIntent.from_fields(queued.intent)
        except ValueError as exc:
            # Bad input is named and journaled, never silently dropped.
            log.bind(event="bad_intent", details={"entry": queued.entry_id, "error": str(exc)},
                     action_taken="acknowledged and journaled as rejected").error("bad_intent")
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
        pool = self.stop_pool if intent.purpose.reduces_risk else self.order_pool
        ref = self.actor_ref
        pipeline = self.pipeline

        def work() -> None:
            try:
                result = pipeline.execute(intent, cancel)
            except Exception as exc:  # noqa: BLE001 - an order must always come back with a verdict
                result = OrderResult(intent, Verdict.UNKNOWN, f"pipeline error: {type(exc).__name__}: {exc}")
                log.bind(event="pipeline_error", details={"strategy": intent.strategy_id, "error": repr(exc)},
                         action_taken="left unacknowledged for settlement").exception("pipeline_error")
                queued_for_ack = None
            else:
                queued_for_ack = queued
            try:
                ref.tell(_Done(result, queued_for_ack, tick_perf))
            except Exception:  # noqa: BLE001 - engine gone: the entry stays un-acked and is reclaimed
                pass

        try:
            pool.submit(work)
        except RuntimeError:
            pass  # pool shut down (stopping): the entry stays in Redis

    def _flatten(self, message: Flatten) -> None:
        """Dispatch one FLATTEN per open position in scope; FlattenDone once all have finished."""
        outstanding = 0
        for strategy in self.services.config.strategies:
            if message.symbol and strategy.symbol != message.symbol:
                continue
            if message.strategy_id and strategy.id != message.strategy_id:
                continue
            runtime = self.services.runtime_cache.get(strategy.id)
            if runtime is not None and runtime.position.value != "bought":
                continue
            intent = OrderIntent(strategy.id, strategy.account, strategy.symbol, Purpose.FLATTEN,
                                 reason=message.reason)
            self._dispatch(intent, None, None)
            outstanding += 1
        if outstanding:
            self.flattening[message.reason] = self.flattening.get(message.reason, 0) + outstanding
        else:
            self.services.directory.tell("degradation", FlattenDone(message.reason))

    # --- outcomes -----------------------------------------------------------------------

    def _finish(self, done: _Done) -> None:
        result = done.result
        intent = result.intent
        self.completed += 1
        if done.queued is not None and result.verdict is not Verdict.UNKNOWN:
            try:
                self.services.store.ack(done.queued)
            except StoreUnavailable:
                pass  # re-delivered later; the pipeline will settle it, not resend
        flight = self.in_flight.get(intent.strategy_id)
        if flight is not None and intent.purpose in CANCELLABLE:
            flight.orders -= 1
            if flight.orders <= 0:  # the last one: a later order (after a restart) gets a fresh cancel
                del self.in_flight[intent.strategy_id]
        if intent.purpose is Purpose.FLATTEN and intent.reason in self.flattening:
            self.flattening[intent.reason] -= 1
            if self.flattening[intent.reason] <= 0:
                del self.flattening[intent.reason]
                self.services.directory.tell("degradation", FlattenDone(intent.reason))
        if result.verdict in (Verdict.REFUSED, Verdict.SAFETY_ABORT) and intent.purpose is Purpose.STOP_LOSS:
            self._rearm_if_still_open(intent)  # a stop-loss that could not exit stays armed for the next tick
        if result.verdict is Verdict.ACCOUNT_PAUSED:
            self._pause_account(intent.account, intent.strategy_id, result.reason)
        metrics = self.services.metrics
        if metrics is not None:
            metrics.record_order_outcome(result.verdict.value)
            if done.tick_perf is not None and result.sent_at is not None:
                metrics.observe_tick_to_order(max(0.0, result.sent_at - done.tick_perf))
        fill = None
        if result.verdict is Verdict.FILLED and result.runtime is not None:
            fill = Fill(intent.purpose.value, result.side or "", result.filled_qty, result.avg_price,
                        result.client_order_id or "", result.runtime.position.value)
        update = OrderUpdate(result.verdict.value, result.reason, fill, result.runtime)
        self.services.directory.tell(f"strategy:{intent.strategy_id}", update)
        self.services.directory.tell("position-manager", result)
        self.services.directory.tell("circuit-breaker", result)

    def _pause_account(self, account: str, origin: str, reason: str) -> None:
        """F3: a refused credential is the account's, not one order's: pause every strategy of it.

        Entries of the account close at the gate at once; each active strategy of the account is
        marked `paused` with the reason (runtime and its actor), until an operator enables it.
        """
        self.services.directory.tell("degradation", signals.account_paused(account, True, reason))
        paused = []
        for strategy in self.services.config.strategies:
            if strategy.account != account:
                continue
            try:
                runtime = self.services.store.load_runtime(strategy.id) or Runtime()
                if runtime.status is Status.ACTIVE:
                    runtime = replace(runtime, status=Status.PAUSED, reason=reason[:900], updated_at=time.time())
                    self.services.store.write_runtime(strategy.id, runtime)
            except (CorruptState, StaleGeneration, StoreUnavailable) as exc:
                log.bind(event="account_pause_incomplete", details={"strategy": strategy.id, "error": str(exc)},
                         action_taken="entries of the account stay closed at the gate").error("account_pause_incomplete")
                continue
            if runtime.status is Status.PAUSED:
                paused.append(strategy.id)
                self.services.runtime_cache.put(strategy.id, runtime)
                if strategy.id != origin:
                    self.services.directory.tell(f"strategy:{strategy.id}",
                                                 OrderUpdate(Verdict.ACCOUNT_PAUSED.value, reason, None, runtime))
        log.bind(event="account_paused", details={"account": account, "strategies": paused, "reason": reason},
                 action_taken="every strategy of the account paused until an operator enables it").error(
            "account_paused")

    def _rate_limited(self, at: float) -> None:
        """F5: persistent rate limiting → REDUCED; cleared once a window passes without one
        (degradation then holds REDUCED for its clean period before ramping back)."""
        self.rate_limits.append(at)
        while self.rate_limits and at - self.rate_limits[0] > RATE_LIMIT_WINDOW_S:
            self.rate_limits.popleft()
        if len(self.rate_limits) >= RATE_LIMIT_PERSISTENT and not self.rate_limit_reported:
            self.rate_limit_reported = True
            self.services.directory.tell("degradation", signals.rate_limited(
                True, f"{len(self.rate_limits)} rate-limit answers within {RATE_LIMIT_WINDOW_S:g}s"))
        if self.rate_limit_reported:
            self.services.timers.tell_at(at + RATE_LIMIT_WINDOW_S, self.actor_ref, _RateLimitQuiet())

    def _rate_limit_quiet(self) -> None:
        now = time.time()
        if self.rate_limit_reported and (not self.rate_limits or now - self.rate_limits[-1] >= RATE_LIMIT_WINDOW_S):
            self.rate_limit_reported = False
            self.rate_limits.clear()
            self.services.directory.tell("degradation", signals.rate_limited(False, "no rate limiting for a minute"))

    def _rearm_if_still_open(self, intent: OrderIntent) -> None:
        if self.services.protective.holds(intent.strategy_id):
            return  # a venue-side protective stop holds the position: one crossing, one exit
        runtime = self.services.runtime_cache.get(intent.strategy_id)
        if runtime is not None and runtime.position.value == "bought" and runtime.stop_loss:
            self.services.stops.arm(intent.symbol, intent.strategy_id, runtime.stop_loss, runtime.quantity)

    def _account_of(self, strategy_id: str) -> str:
        return self.accounts.get(strategy_id, "default")

