"""The ``state-builder`` actor: hot state per symbol, and the hop from a tick to the stop index.

Hot state per symbol: the L2 top levels (``BookTop`` from the feed), last trade
and mark price, funding, index, open interest, the feed's status. On every
``PriceUpdate`` from a feed, in this order:

1. if the update is ``fresh`` (the feed is not STALE/DISCONNECTED and the
   timestamp is in order), ``services.stops.triggered(symbol, price)``; hits go
   to ``execution-engine`` as one ``StopsTriggered`` carrying the frame's
   ``tick_perf``. Blind data never moves the stop index (F10): a stale price is
   not evaluated, and the stop stays armed for the first fresh one. If the engine
   is not running the popped stops are re-armed, so the next tick tries again;
2. fan out a ``Tick`` to the strategies subscribed to the symbol (only fresh ones);
3. throttled, off the hot path: ``store.set_price`` (at most every
   ``price_write_interval_s`` per symbol, and the latest price flushed by the
   poll) on the writer thread, and ``Mark`` to ``circuit-breaker``.

Snapshots of the hot state go to Redis (``put_snapshot``) every
``snapshot_interval_s`` and on ``TakeSnapshot``.

Restart (F17). Every incarnation starts with the state INVALID for every
symbol and tells ``degradation`` ``signals.state_invalid(True)`` (entries
blocked); it then loads the last snapshot from Redis and a fresh venue depth
snapshot on a worker thread, validates them (book not empty, not crossed,
positive; snapshot schema; snapshot price vs the venue's mid > 5 % is alerted,
the venue wins), and once every symbol validates it clears the signal. The time
from ``on_start`` to that moment is ``time_to_ready_ms`` in ``status_details``.
Stops are still evaluated while INVALID: the stop book and the prices do not
depend on the hot state, and a stop-loss reduces risk.

Stale exit (F10). A symbol blind -- its feed not LIVE and no fresh price since
(STALE, DISCONNECTED, or reconnecting into RECOVERING without data), or nothing
heard from the feed for ``heartbeat_timeout + stale_after`` -- for more than
``stale_exit_after_s`` with ``stale_policy = "flatten"`` raises
``signals.stale_exit``; degradation turns it into a flatten of the symbol. It
is cleared when the feed is LIVE again. With ``hold`` it is only logged
(exchange-side stops stay).

Threads: the actor thread never does I/O. Redis writes run on ``_StoreWriter``
(latest value per key wins; a Redis failure is counted and logged, never raised
into a tick); rebuild reads (Redis + venue) run on a small pool and come back
as messages.

Never does: evaluate stops on a blind price; block a tick on Redis or the venue.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import pykka

from actors.node_ids import CIRCUIT_BREAKER, DEGRADATION, ENGINE
from actors.circuit_breaker import Mark
from actors.core import signals
from actors import node_ids
from actors.degradation import ReportHealth
from actors.messages import BookTop, FeedState, PriceUpdate, ReportFeedState, StopsTriggered
from actors.services import Services
from actors.strategy import Tick
from runtime.logging import log_event
from supervision import SupervisedActor

NODE_ID = node_ids.STATE_BUILDER
Levels = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class TakeSnapshot:
    """Write the hot state of ``symbol`` (None: every ready symbol) to Redis now."""

    symbol: str | None = None


@dataclass(frozen=True)
class _Rebuilt:
    symbol: str
    doc: Mapping[str, Any] | None
    doc_ts: float | None
    bids: Levels | None
    asks: Levels | None
    last_update_id: int | None
    store_error: str | None
    venue_error: str | None


@dataclass(frozen=True)
class _Poll:
    pass


@dataclass(frozen=True)
class _RetryRebuild:
    symbol: str


class SymbolState:
    """One symbol's hot state. Mutated on the actor thread only."""

    def __init__(self, symbol: str, now: float) -> None:
        self.symbol = symbol
        self.valid = False  # INVALID until rebuilt after this incarnation's start (F17)
        self.ready_at: float | None = None
        self.rebuild_attempts = 0
        self.rebuild_error: str | None = None
        self.price: float | None = None  # latest of trade / mark: what stops and price:{S} use
        self.price_ts: float | None = None
        self.last_trade: float | None = None
        self.last_trade_ts: float | None = None
        self.mark_price: float | None = None
        self.mark_ts: float | None = None
        self.funding_rate: float | None = None
        self.index_price: float | None = None
        self.open_interest: float | None = None
        self.bids: Levels = ()
        self.asks: Levels = ()
        self.book_update_id: int | None = None
        self.book_ts: float | None = None
        self.feed_status = "UNKNOWN"
        self.feed_reason = "no report from the feed yet"
        self.last_heard = now  # monotonic: last message from the feed
        self.last_fresh: float | None = None  # monotonic: last fresh price
        self.blind_since: float | None = now  # monotonic: last moment the data was good (None: not blind)
        self.stale_exit = False
        self.stale_hold_logged = False
        self.ticks = 0
        self.suspended = 0  # prices seen while blind: not evaluated against stops
        self.stops_fired = 0
        self.written_ts: float | None = None  # price_ts last handed to the writer
        self.last_write = -math.inf  # monotonic
        self.last_mark_sent = -math.inf  # monotonic

    def to_snapshot(self, generation: int, taken_at: float) -> dict[str, Any]:
        return {
            "symbol": self.symbol, "generation": generation, "taken_at": taken_at,
            "price": self.price, "price_ts": self.price_ts,
            "last_trade": self.last_trade, "last_trade_ts": self.last_trade_ts,
            "mark_price": self.mark_price, "mark_ts": self.mark_ts,
            "funding_rate": self.funding_rate, "index_price": self.index_price,
            "open_interest": self.open_interest,
            "bids": [list(level) for level in self.bids], "asks": [list(level) for level in self.asks],
            "book_update_id": self.book_update_id, "feed_status": self.feed_status,
        }


class _StoreWriter:
    """The state builder's Redis writes, on their own thread.

    Latest value per key wins (a price superseded before it was written is never
    written). A failed write is counted, logged (at most once per second) and
    dropped: the next price or snapshot replaces it. ``alive()`` false (the
    incarnation was fenced) stops all writes.
    """

    def __init__(self, store: Any, alive: Callable[[], bool]) -> None:
        self._store = store
        self._alive = alive
        self._pending: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._cond = threading.Condition()
        self._stopped = False
        self.writes = 0
        self.errors = 0
        self.last_error: str | None = None
        self._last_logged = 0.0
        self._thread = threading.Thread(target=self._run, name="state-builder-writer", daemon=True)
        self._thread.start()

    def put_price(self, symbol: str, price: float, ts: float) -> None:
        self._put(("price", symbol), (price, ts))

    def put_snapshot(self, symbol: str, data: dict[str, Any], ts: float) -> None:
        self._put(("snapshot", symbol), (data, ts))

    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _put(self, key: tuple[str, str], value: tuple[Any, ...]) -> None:
        with self._cond:
            self._pending[key] = value
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                batch, self._pending = self._pending, {}
            for (kind, symbol), value in batch.items():
                if not self._alive():
                    return
                try:
                    if kind == "price":
                        self._store.set_price(symbol, value[0], value[1])
                    else:
                        self._store.put_snapshot(symbol, value[0], value[1])
                    self.writes += 1
                except Exception as exc:  # noqa: BLE001 - Redis trouble must never reach a tick
                    self.errors += 1
                    self.last_error = f"{kind} {symbol}: {type(exc).__name__}: {exc}"
                    now = time.monotonic()
                    if now - self._last_logged >= 1.0:
                        self._last_logged = now
                        log_event(NODE_ID, "store_write_failed", level="WARNING",
                                  details={"error": self.last_error, "errors": self.errors},
                                  action_taken="dropped; the next value replaces it")


class StateBuilder(SupervisedActor):
    """Node ``state-builder``. Messages: ``PriceUpdate``, ``BookTop``, ``FeedState`` (feeds),
    ``TakeSnapshot``, ``ReportHealth`` (degradation)."""

    def __init__(
        self,
        services: Services,
        *,
        symbols: tuple[str, ...] | None = None,
        price_write_interval_s: float = 0.25,
        snapshot_interval_s: float = 5.0,
        poll_interval_s: float = 0.1,
        rebuild_retry_s: float = 0.5,
        depth_limit: int = 100,
        book_levels: int = 10,
        snapshot_price_jump: float = 0.05,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.services = services
        feeds = services.config.feeds
        self.symbols = tuple(s.upper() for s in (symbols if symbols is not None else feeds.symbols))
        self.price_write_interval_s = price_write_interval_s
        self.snapshot_interval_s = snapshot_interval_s
        self.poll_interval_s = poll_interval_s
        self.rebuild_retry_s = rebuild_retry_s
        self.depth_limit = depth_limit
        self.book_levels = book_levels
        self.snapshot_price_jump = snapshot_price_jump
        self.clock = clock
        self.stale_after_s = feeds.stale_after_ms / 1000.0
        self.silence_limit_s = feeds.heartbeat_timeout_s + self.stale_after_s
        self.stale_exit_after_s = feeds.stale_exit_after_s
        self.stale_policy = feeds.stale_policy
        self._states: dict[str, SymbolState] = {}
        self._started_perf = time.perf_counter()
        self._invalid_raised = False
        self._invalid_reason = "state-builder starting"
        self._invalid_undelivered = False
        self._stale_undelivered: set[str] = set()
        self.time_to_ready_ms: float | None = None
        self.ready = False
        self._writer: _StoreWriter | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._timer: int | None = None
        self._last_snapshot = time.monotonic()
        self._stopped = False
        self.stop_messages = 0
        self.engine_unreachable = 0
        self.snapshots_requested = 0
        self._details: dict[str, Any] = {}
        self._refresh_details()

    # --- lifecycle ----------------------------------------------------------------------

    def on_start(self) -> None:
        self._started_perf = time.perf_counter()
        mono = time.monotonic()
        for symbol in self.symbols:
            self._states[symbol] = SymbolState(symbol, mono)
        self.services.directory.register(NODE_ID, self.generation, self.actor_ref)
        self._raise_invalid(f"state-builder generation {self.generation} started: rebuilding hot state")
        if self.services.store is not None:
            self._writer = _StoreWriter(self.services.store, lambda: not self.fenced)
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="state-builder-rebuild")
        for symbol in self.symbols:
            self.services.directory.tell(node_ids.feed(symbol), ReportFeedState(NODE_ID))
            self._rebuild(symbol)
        log_event(NODE_ID, "started", details={"generation": self.generation, "symbols": list(self.symbols)},
                  action_taken="state INVALID: entries blocked until snapshot + venue depth validate")
        self._refresh_details()
        self._arm_poll()

    def on_stop(self) -> None:
        self._teardown("state-builder stopped")

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self._teardown(f"state-builder crashed: {exception_value!r}")

    def _teardown(self, reason: str) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._timer is not None:
            self.services.timers.cancel(self._timer)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._writer is not None:
            self._writer.stop()
        self.services.directory.unregister(NODE_ID, self.generation)
        if not self.fenced:  # a fenced (hung, replaced) incarnation must not speak over its successor
            # F17: no hot state while no incarnation runs; the next one clears this once rebuilt.
            self.services.directory.tell(DEGRADATION, signals.state_invalid(True, reason))

    # --- messages -----------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, PriceUpdate):
            self._on_price(message)
        elif isinstance(message, BookTop):
            st = self._state(message.symbol)
            st.bids, st.asks, st.book_update_id, st.book_ts = message.bids, message.asks, \
                message.last_update_id, message.ts
            st.last_heard = time.monotonic()
        elif isinstance(message, FeedState):
            self._on_feed_state(message)
        elif isinstance(message, _Poll):
            self._poll()
        elif isinstance(message, _Rebuilt):
            self._on_rebuilt(message)
        elif isinstance(message, _RetryRebuild):
            self._rebuild(message.symbol)
        elif isinstance(message, TakeSnapshot):
            self._snapshot([message.symbol] if message.symbol else list(self._states))
        elif isinstance(message, ReportHealth):
            self._tell_invalid(reply_to=message.reply_to)
            for st in self._states.values():
                if st.stale_exit:
                    self.services.directory.tell(message.reply_to, signals.stale_exit(st.symbol, True))
        return None

    # --- the hot path -------------------------------------------------------------------

    def _on_price(self, u: PriceUpdate) -> None:
        st = self._state(u.symbol)
        mono = time.monotonic()
        st.last_heard = mono
        st.feed_status = u.status
        if u.kind == "mark":
            st.mark_price, st.mark_ts = u.price, u.ts
            if u.funding_rate is not None:
                st.funding_rate = u.funding_rate
            if u.index_price is not None:
                st.index_price = u.index_price
        else:
            st.last_trade, st.last_trade_ts = u.price, u.ts
        if u.open_interest is not None:
            st.open_interest = u.open_interest
        if not u.fresh:
            st.suspended += 1  # F10: blind data never moves the stop index, price:{S} or the breaker's mark
            return
        st.price, st.price_ts = u.price, u.ts
        st.last_fresh = mono
        if st.blind_since is not None:
            st.blind_since = mono  # fresh data now: a blind spell, if any, restarts from here
        st.ticks += 1
        hits = self.services.stops.triggered(u.symbol, u.price)
        if hits:
            self._fire(st, u, hits)
        subscribers = self.services.ticks.of(u.symbol)
        if subscribers:
            tick = Tick(u.symbol, u.price, u.ts)
            for node in subscribers:
                self.services.directory.tell(node, tick)
        if mono - st.last_write >= self.price_write_interval_s:
            self._write_price(st, mono)

    def _fire(self, st: SymbolState, u: PriceUpdate, hits: list[Any]) -> None:
        if self.services.directory.tell(ENGINE, StopsTriggered(u.symbol, tuple(hits), u.tick_perf)):
            st.stops_fired += len(hits)
            self.stop_messages += 1
            log_event(NODE_ID, "stops_triggered",
                      details={"symbol": u.symbol, "price": u.price, "kind": u.kind,
                               "strategies": [h.strategy_id for h in hits]},
                      action_taken="execution-engine told (stop-loss orders jump the queue)")
            return
        for hit in hits:  # nobody to execute them: keep them armed for the next tick
            self.services.stops.rearm(u.symbol, hit)
        self.engine_unreachable += 1
        log_event(NODE_ID, "stops_not_delivered", level="ERROR",
                  details={"symbol": u.symbol, "price": u.price, "strategies": [h.strategy_id for h in hits]},
                  action_taken="execution-engine not running: stops re-armed for the next tick")

    def _write_price(self, st: SymbolState, mono: float) -> None:
        if st.price is None or st.price_ts is None:
            return
        st.last_write = mono
        if self._writer is not None and st.written_ts != st.price_ts:
            st.written_ts = st.price_ts
            self._writer.put_price(st.symbol, st.price, st.price_ts)
        if mono - st.last_mark_sent >= self.price_write_interval_s:
            st.last_mark_sent = mono
            self.services.directory.tell(CIRCUIT_BREAKER, Mark(st.symbol, st.price))

    # --- feed status and F10 --------------------------------------------------------------

    def _on_feed_state(self, message: FeedState) -> None:
        st = self._state(message.symbol)
        st.feed_status, st.feed_reason = message.status, message.reason
        st.last_heard = time.monotonic()
        self._check_blind(st, st.last_heard)

    def _blind(self, st: SymbolState, mono: float) -> bool:
        """Not LIVE (or the feed silent past heartbeat + stale_after: it is dead, not quiet)."""
        return st.feed_status != "LIVE" or mono - st.last_heard > self.silence_limit_s

    def _check_blind(self, st: SymbolState, mono: float) -> None:
        """F10 stale exit. A spell is measured from the last good data (a fresh price or a LIVE
        report), so a feed that keeps reconnecting into RECOVERING without data stays blind."""
        if not self._blind(st, mono):
            st.blind_since = None
            st.stale_hold_logged = False
            if st.stale_exit:
                self._stale_exit(st, False, "feed LIVE again")
            return
        if st.blind_since is None:
            st.blind_since = mono
        blind_for = mono - st.blind_since
        if blind_for <= self.stale_exit_after_s or st.stale_exit:
            return
        reason = f"{st.symbol} blind ({st.feed_status}: {st.feed_reason}) for {blind_for:.1f}s " \
                 f"> stale_exit_after {self.stale_exit_after_s:g}s"
        if self.stale_policy == "flatten":
            self._stale_exit(st, True, reason + ": policy flatten")
        elif not st.stale_hold_logged:
            st.stale_hold_logged = True
            log_event(NODE_ID, "stale_exit_hold", level="WARNING", details={"symbol": st.symbol, "reason": reason},
                      action_taken="policy hold: positions kept; exchange-side stops stay")

    def _stale_exit(self, st: SymbolState, active: bool, reason: str) -> None:
        st.stale_exit = active
        log_event(NODE_ID, "stale_exit" if active else "stale_exit_cleared", level="ERROR" if active else "INFO",
                  details={"symbol": st.symbol, "reason": reason},
                  action_taken="degradation told: flatten the symbol" if active else "degradation told: cleared")
        if self.services.directory.tell(DEGRADATION, signals.stale_exit(st.symbol, active, reason)):
            self._stale_undelivered.discard(st.symbol)
        else:
            self._stale_undelivered.add(st.symbol)

    # --- F17: rebuild after start -----------------------------------------------------------

    def _state(self, symbol: str) -> SymbolState:
        st = self._states.get(symbol)
        if st is None:  # a symbol not in the config: tracked, and rebuilt like the others
            st = self._states[symbol] = SymbolState(symbol, time.monotonic())
            if not self._invalid_raised:
                self._raise_invalid(f"new symbol {symbol}: rebuilding")
            self._rebuild(symbol)
        return st

    def _rebuild(self, symbol: str) -> None:
        if self._pool is None or self._stopped:
            return
        st = self._states[symbol]
        st.rebuild_attempts += 1
        store, venue, limit, ref = self.services.store, self.services.venue, self.depth_limit, self.actor_ref

        def load() -> None:
            doc = doc_ts = bids = asks = last_id = store_error = venue_error = None
            if store is not None:
                try:
                    document = store.load_snapshot(symbol)
                    if document is not None:
                        doc, doc_ts = document.data, document.ts
                except Exception as exc:  # noqa: BLE001 - a missing snapshot is not fatal: the venue is the truth
                    store_error = f"{type(exc).__name__}: {exc}"
            try:
                outcome = venue.depth(symbol, limit)
                if outcome.ok:
                    data = outcome.data
                    bids = tuple((float(p), float(q)) for p, q in data.bids)
                    asks = tuple((float(p), float(q)) for p, q in data.asks)
                    last_id = int(data.last_update_id)
                else:
                    venue_error = outcome.describe() if hasattr(outcome, "describe") else str(outcome.kind)
            except Exception as exc:  # noqa: BLE001 - retried by the actor
                venue_error = f"{type(exc).__name__}: {exc}"
            try:
                ref.tell(_Rebuilt(symbol, doc, doc_ts, bids, asks, last_id, store_error, venue_error))
            except pykka.ActorDeadError:
                pass

        self._pool.submit(load)

    def _on_rebuilt(self, message: _Rebuilt) -> None:
        st = self._state(message.symbol)
        if st.valid:
            return
        problem = message.venue_error or _book_problem(message.bids, message.asks)
        if problem is not None:
            st.rebuild_error = problem
            # back off (depth snapshots cost request weight): retry, 2x, 4x ... <= 8 s
            delay = min(8.0, self.rebuild_retry_s * 2 ** min(st.rebuild_attempts - 1, 8))
            log_event(NODE_ID, "rebuild_failed", level="WARNING",
                      details={"symbol": st.symbol, "attempt": st.rebuild_attempts, "error": problem},
                      action_taken=f"state stays INVALID; retry in {delay:g}s")
            self._after(delay, _RetryRebuild(st.symbol))
            return
        assert message.bids is not None and message.asks is not None
        if message.store_error:
            log_event(NODE_ID, "snapshot_unavailable", level="WARNING",
                      details={"symbol": st.symbol, "error": message.store_error},
                      action_taken="rebuilt from the venue's depth alone")
        mid = (message.bids[0][0] + message.asks[0][0]) / 2.0
        restored = self._restore(st, message.doc, message.doc_ts, mid)
        if not st.bids:  # no BookTop from the feed yet: the venue's snapshot is the freshest book
            st.bids, st.asks = message.bids[: self.book_levels], message.asks[: self.book_levels]
            st.book_update_id, st.book_ts = message.last_update_id, self.clock()
        st.valid, st.ready_at, st.rebuild_error = True, self.clock(), None
        log_event(NODE_ID, "symbol_ready", details={"symbol": st.symbol, "restored": restored, "mid": mid,
                                                    "attempts": st.rebuild_attempts},
                  action_taken="hot state validated")
        if all(s.valid for s in self._states.values()):
            self.ready = True
            self.time_to_ready_ms = (time.perf_counter() - self._started_perf) * 1000.0
            self._invalid_raised = False
            self._tell_invalid()
            log_event(NODE_ID, "state_ready", details={"generation": self.generation,
                                                       "time_to_ready_ms": round(self.time_to_ready_ms, 1)},
                      action_taken="state valid: entries may resume (the gate decides the rest)")
        self._refresh_details()

    def _restore(self, st: SymbolState, doc: Mapping[str, Any] | None, doc_ts: float | None, mid: float) -> list[str]:
        """Seed fields the live feed has not supplied yet from the last snapshot (schema-checked)."""
        if doc is None:
            return []
        try:
            fields = _snapshot_fields(doc, st.symbol)
        except ValueError as exc:
            log_event(NODE_ID, "snapshot_invalid", level="ERROR", details={"symbol": st.symbol, "error": str(exc)},
                      action_taken="snapshot ignored; rebuilt from the venue's depth")
            return []
        price = fields.get("price")
        if price is not None and mid > 0 and abs(mid / price - 1.0) > self.snapshot_price_jump:
            log_event(NODE_ID, "alert_snapshot_price_jump", level="WARNING",
                      details={"symbol": st.symbol, "snapshot_price": price, "venue_mid": mid,
                               "snapshot_age_s": None if doc_ts is None else round(self.clock() - doc_ts, 1)},
                      action_taken="the venue's book wins; snapshot prices kept only as history")
        restored = []
        for name, value in fields.items():
            if value is not None and getattr(st, name) is None:
                setattr(st, name, value)
                restored.append(name)
        if "price_ts" in restored:
            st.written_ts = st.price_ts  # that price came from Redis: nothing to write back
        return restored

    def _raise_invalid(self, reason: str) -> None:
        self.ready = False
        self._invalid_raised = True
        self._invalid_reason = reason
        self._tell_invalid()

    def _tell_invalid(self, reply_to: str = DEGRADATION) -> None:
        active = self._invalid_raised
        reason = self._invalid_reason if active else f"hot state rebuilt in {self.time_to_ready_ms or 0:.0f} ms"
        delivered = self.services.directory.tell(reply_to, signals.state_invalid(active, reason))
        if reply_to == DEGRADATION:
            self._invalid_undelivered = not delivered

    # --- time ---------------------------------------------------------------------------

    def _poll(self) -> None:
        self._timer = None
        if self._stopped:
            return
        mono = time.monotonic()
        for st in self._states.values():
            self._check_blind(st, mono)
            if st.price_ts is not None and st.written_ts != st.price_ts and mono - st.last_write >= \
                    self.price_write_interval_s:
                self._write_price(st, mono)  # the latest price reaches Redis even when ticks stop
        if self._invalid_undelivered:
            self._tell_invalid()
        for symbol in list(self._stale_undelivered):
            st = self._states[symbol]
            self._stale_exit(st, st.stale_exit, "re-sent")
        if mono - self._last_snapshot >= self.snapshot_interval_s:
            self._snapshot(list(self._states))
        self._refresh_details()
        self._arm_poll()

    def _snapshot(self, symbols: list[str]) -> None:
        self._last_snapshot = time.monotonic()
        if self._writer is None or not self.services.cold_writes.is_set():
            return  # F20: the disk is nearly full; snapshots are cold data, prices stay hot
        now = self.clock()
        for symbol in symbols:
            st = self._states.get(symbol)
            if st is None or not st.valid:
                continue  # an INVALID state must never overwrite the last good snapshot
            self.snapshots_requested += 1
            self._writer.put_snapshot(symbol, st.to_snapshot(self.generation, now), now)

    def _after(self, delay: float, message: Any) -> int:
        return self.services.timers.tell_after(delay, self.actor_ref, message)

    def _arm_poll(self) -> None:
        if not self._stopped:
            self._timer = self._after(self.poll_interval_s, _Poll())

    # --- reads --------------------------------------------------------------------------

    def _refresh_details(self) -> None:
        mono = time.monotonic()
        symbols = {}
        for st in self._states.values():
            symbols[st.symbol] = {
                "state": "READY" if st.valid else "INVALID",
                "feed_status": st.feed_status,
                "blind_s": None if st.blind_since is None else round(mono - st.blind_since, 3),
                "data_age_ms": None if st.last_fresh is None else round((mono - st.last_fresh) * 1000.0, 1),
                "price": st.price, "last_trade": st.last_trade, "mark_price": st.mark_price,
                "funding_rate": st.funding_rate, "open_interest": st.open_interest,
                "best_bid": st.bids[0][0] if st.bids else None, "best_ask": st.asks[0][0] if st.asks else None,
                "book_update_id": st.book_update_id,
                "ticks": st.ticks, "suspended_ticks": st.suspended, "stops_fired": st.stops_fired,
                "stale_exit": st.stale_exit, "rebuild_attempts": st.rebuild_attempts,
                "rebuild_error": st.rebuild_error,
            }
        writer = self._writer
        self._details = {
            "ready": self.ready,
            "generation": self.generation,
            "time_to_ready_ms": None if self.time_to_ready_ms is None else round(self.time_to_ready_ms, 1),
            "symbols": symbols,
            "stop_messages": self.stop_messages,
            "engine_unreachable": self.engine_unreachable,
            "store": None if writer is None else {"writes": writer.writes, "errors": writer.errors,
                                                  "last_error": writer.last_error},
            "snapshots_requested": self.snapshots_requested,
            "stale_policy": self.stale_policy,
        }

    def status_details(self) -> dict[str, Any]:
        """Plain attribute reads only (called from another thread); refreshed every poll."""
        return self._details


def _book_problem(bids: Levels | None, asks: Levels | None) -> str | None:
    if bids is None or asks is None:
        return "no venue depth snapshot"
    if not bids or not asks:
        return f"venue depth has an empty side ({len(bids)} bids, {len(asks)} asks)"
    if any(not (p > 0 and q > 0) for p, q in bids + asks):
        return "venue depth has a non-positive level"
    if bids[0][0] >= asks[0][0]:
        return f"venue depth is crossed (bid {bids[0][0]} >= ask {asks[0][0]})"
    return None


_SNAPSHOT_FLOATS = ("price", "price_ts", "last_trade", "last_trade_ts", "mark_price", "mark_ts", "funding_rate",
                    "index_price", "open_interest")


def _snapshot_fields(doc: Mapping[str, Any], symbol: str) -> dict[str, float | None]:
    """The restorable fields of a snapshot document; ``ValueError`` naming the field if malformed."""
    if doc.get("symbol") != symbol:
        raise ValueError(f"snapshot:{symbol} field 'symbol' is {doc.get('symbol')!r}")
    out: dict[str, float | None] = {}
    for name in _SNAPSHOT_FLOATS:
        value = doc.get(name)
        if value is None:
            out[name] = None
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"snapshot:{symbol} field {name!r} is not a finite number: {value!r}")
        if name in ("price", "last_trade", "mark_price", "index_price") and value <= 0:
            raise ValueError(f"snapshot:{symbol} field {name!r} must be > 0, got {value!r}")
        out[name] = float(value)
    return out


__all__ = ["NODE_ID", "StateBuilder", "SymbolState", "TakeSnapshot"]
