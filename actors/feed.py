"""The ``feed:<SYMBOL>`` actor: one symbol's market data, from the venue's sockets to the state builder.

Two connections (DESIGN §4), each a ``FeedLink`` with its own reader thread
(``FeedSocket``), heartbeat, reconnect schedule and health tracker:

- ``public`` (``<ws_url>/public``): the diff-depth stream, sequenced by
  ``OrderBookSequencer`` (Binance's local-order-book algorithm, F9); whenever the book
  is not LIVE a REST snapshot (``services.venue.depth``) is fetched on a worker thread;
- ``market`` (``<ws_url>/market``): markPrice, aggTrade and forceOrder, the prices the
  stop index runs on.

Health (F7, F8, F10-F13). Every frame, corrupt or not, and a poll every
``poll_interval_s`` (<= 50 ms) drive each connection's ``FeedHealthTracker``; the
symbol's health is the worst of the two (``worst_health``): a drop or stall of either
connection blinds the symbol, and so does a /market whose every price is corrupt (depth
alone is no price). The F12 corrupt rate is the symbol's, over both connections. Each
change is told to ``degradation`` as ``signals.from_feed_health`` (the symbol gate and
the F12 corrupt-rate REDUCED). Each connection reconnects on its own ``ReconnectSchedule``
(0, 1, 2, 4 ... <= 60 s + jitter, forever); more than 5 failures in a row on either ->
``signals.feed_degraded(.., "reconnect_failures")`` + alert, cleared once both have proved
stable.

Threads. The actor thread owns all state. Reader threads only ``tell``; messages from a
superseded connection carry an old ``conn`` number and are ignored. Depth snapshots are
fetched on a one-thread pool. Timers (poll, reconnect, snapshot retry) are
``services.timers`` callbacks that only tell.

Outputs, all by ``tell`` through the directory (message types in ``actors.messages``):

- ``state-builder``: ``PriceUpdate`` for every accepted aggTrade / markPrice (with
  ``fresh`` = may move the stop index, and the receipt ``tick_perf``), ``BookTop`` after
  every applied depth event of a LIVE book, ``FeedState`` on every status change (and when
  asked with ``ReportFeedState``);
- ``degradation``: ``Signal``s (re-sent on ``ReportHealth`` and when undelivered);
- ``circuit-breaker``: ``AbnormalPrice`` once per F13 episode (``AbnormalEpisode``) and
  ``PriceValidity`` on change. An update flagged abnormal is still forwarded ``fresh``:
  the breaker pauses entries, but a real crash is exactly when a stop-loss must fire.

Timestamps. Event times are venue-clock milliseconds; they are moved onto the local clock
with the connector's measured server offset (``services.venue.clock.offset_ms``, kept
fresh by monitor:clock) before the F11 checks. Depth events are sequenced whatever their
timestamp: ``U/u/pu`` is the book's proof.

Never does: block the actor thread on the network (connect, read, snapshot); apply a
depth event from an old connection; forward a price the tracker rejected.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Callable

import pykka

from actors.node_ids import CIRCUIT_BREAKER, DEGRADATION, STATE_BUILDER
from actors.circuit_breaker import AbnormalPrice, PriceValidity
from actors.core import signals
from actors.core.abnormal_episode import AbnormalEpisode
from actors.core.feed_health import CorruptRate, FeedHealth, FeedHealthConfig, FeedStatus, worst_health, \
    worst_status
from actors.core.order_book import BookState, DepthEvent, DepthSnapshot, EventResult, OrderBookSequencer
from actors.core.reconnect import ReconnectConfig, ReconnectPlan
from actors.degradation import ReportHealth
from actors.feed_frames import AggTrade, ForceOrder, MarkPriceUpdate
from actors.feed_link import MARKET, PUBLIC, FeedLink
from actors.feed_socket import SocketClosed, SocketConnected, SocketConnectFailed, SocketCorrupt, SocketFrame, \
    SocketTimings, describe
from actors import node_ids
from actors.messages import BookTop, FeedState, PriceUpdate, ReportFeedState, ResyncBook
from actors.services import Services
from runtime.logging import log_event
from supervision import SupervisedActor

BLIND = (FeedStatus.STALE, FeedStatus.DISCONNECTED)


@dataclass(frozen=True)
class FeedTimings:
    """Intervals of one feed; tests inject short ones."""

    poll_interval_s: float = 0.05  # health poll (stale / stall / resume); <= 50 ms
    ping_interval_s: float | None = None  # None: heartbeat_timeout / 2
    connect_timeout_s: float = 3.0
    recv_timeout_s: float = 0.05  # reader wake-up to ping and to notice a close() request
    snapshot_retry_s: float = 0.5  # after a failed depth fetch (doubles up to 8 s)
    depth_limit: int = 1000
    book_top_levels: int = 10
    abnormal_quiet_s: float = 3.0  # F13: an episode ends this long after its last flagged update (> price cadence)
    # /market's data-age limit, if longer than stale_after: markPrice@1s is its one steady stream, so one
    # late mark must not blind the symbol; F10's 1 s is held by /public's depth@100ms.
    market_stale_after_s: float = 1.5


# --- the actor's own timer messages ---------------------------------------------------------


@dataclass(frozen=True)
class _SnapshotReady:
    conn: int  # the /public connection the snapshot was fetched for
    snapshot: DepthSnapshot | None
    error: str | None


@dataclass(frozen=True)
class _Poll:
    pass


@dataclass(frozen=True)
class _Reconnect:
    route: str
    epoch: int


@dataclass(frozen=True)
class _RetrySnapshot:
    conn: int


class FeedActor(SupervisedActor):
    """Node ``feed:<SYMBOL>``. See the module docstring for its messages."""

    def __init__(
        self,
        services: Services,
        symbol: str,
        *,
        ws_url: str | None = None,
        health: FeedHealthConfig | None = None,
        reconnect: ReconnectConfig | None = None,
        timings: FeedTimings | None = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        super().__init__()
        self.services = services
        self.symbol = symbol.upper()
        self.node_id = node_ids.feed(self.symbol)
        feeds = services.config.feeds
        url = ws_url or services.config.venue.ws_url
        if not url:
            raise ValueError(f"{self.node_id}: no WebSocket url ([venue] ws_url is empty and none was given)")
        self.health_config = health or FeedHealthConfig(stale_after=feeds.stale_after_ms / 1000.0,
                                                        heartbeat_timeout=feeds.heartbeat_timeout_s)
        self.timings = timings or FeedTimings()
        market_health = replace(self.health_config,
                                stale_after=max(self.health_config.stale_after, self.timings.market_stale_after_s))
        corrupt = CorruptRate(self.health_config)  # F12 judges the symbol's messages, both routes together
        self.links = {PUBLIC: FeedLink(self.symbol, PUBLIC, url, self.health_config, corrupt, reconnect, rand),
                      MARKET: FeedLink(self.symbol, MARKET, url, market_health, corrupt, reconnect, rand)}
        self.public, self.market = self.links[PUBLIC], self.links[MARKET]
        ping = self.timings.ping_interval_s
        self.socket_timings = SocketTimings(self.health_config.heartbeat_timeout / 2.0 if ping is None else ping,
                                            self.timings.connect_timeout_s, self.timings.recv_timeout_s)
        self.clock = clock
        self.book = OrderBookSequencer(self.symbol)
        self.episode = AbnormalEpisode(self.timings.abnormal_quiet_s)
        self._poll_timer: int | None = None
        self._snapshot_timer: int | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._fetching = False
        self._snapshot_failures = 0
        self._book_live = False
        self._sent: tuple[FeedStatus, bool] | None = None
        self._undelivered = False
        self._reconnect_reduced_sent = False
        self._valid: bool | None = None
        self._corrupt_logged_at = 0.0
        self._corrupt_unlogged = 0
        self._stopped = False
        # counters for the status tree
        self.liquidations = 0
        self.prices_forwarded = 0
        self.resyncs = 0
        self._details: dict[str, Any] = {}
        self._refresh_details(self._health(clock()))

    # --- lifecycle ----------------------------------------------------------------------

    def on_start(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"feed-{self.symbol}-depth")
        self.services.directory.register(self.node_id, self.generation, self.actor_ref)
        now = self.clock()
        for link in self.links.values():
            link.tracker.poll(now)
        self._publish(self._health(now), force=True)
        log_event(self.node_id, "feed_started",
                  details={"urls": {r: link.url for r, link in self.links.items()}, "generation": self.generation},
                  action_taken="connecting; entries on the symbol blocked until the data validates")
        mono = time.monotonic()
        for link in self.links.values():
            self._plan_connect(link, link.reconnects.on_disconnected(mono), "start")
        self._arm_poll()

    def on_stop(self) -> None:
        self._teardown("feed actor stopped")

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self._teardown(f"feed actor crashed: {exception_value!r}")

    def _teardown(self, reason: str) -> None:
        if self._stopped:
            return
        self._stopped = True
        for token in (self._poll_timer, self._snapshot_timer, *(link.reconnect_timer for link in self.links.values())):
            if token is not None:
                self.services.timers.cancel(token)
        for link in self.links.values():
            link.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.services.directory.unregister(self.node_id, self.generation)
        if self.fenced:  # a fenced (hung, replaced) incarnation must not speak over its successor
            return
        # Whoever replaces this incarnation starts DISCONNECTED too; until then the symbol is blind.
        self.services.directory.tell(DEGRADATION, signals.feed_status(self.symbol, FeedStatus.DISCONNECTED.value,
                                                                      reason))
        self.services.directory.tell(STATE_BUILDER, FeedState(self.symbol, FeedStatus.DISCONNECTED.value,
                                                              self.clock(), reason, BookState.SYNCING.value))

    # --- messages -----------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, SocketFrame):
            link = self.links[message.route]
            if link.current(message.conn) and link.connected:
                self._on_frame(link, message)
        elif isinstance(message, SocketCorrupt):
            link = self.links[message.route]
            if link.current(message.conn) and link.connected:
                self._on_corrupt(link, message)
        elif isinstance(message, _Poll):
            self._poll()
        elif isinstance(message, SocketConnected):
            link = self.links[message.route]
            if link.current(message.conn):
                self._on_connected(link)
        elif isinstance(message, SocketClosed):
            link = self.links[message.route]
            if link.current(message.conn) and link.connected:
                link.last_disconnect_detect_ms = (time.perf_counter() - message.perf) * 1000.0
                self._drop(link, message.reason)
        elif isinstance(message, SocketConnectFailed):
            link = self.links[message.route]
            if link.current(message.conn) and not link.connected:
                self._on_connect_failed(link, message)
        elif isinstance(message, _SnapshotReady):
            self._on_snapshot(message)
        elif isinstance(message, _Reconnect):
            link = self.links[message.route]
            if message.epoch == link.epoch:
                link.reconnect_timer = None
                self._connect(link)
        elif isinstance(message, _RetrySnapshot):
            self._snapshot_timer = None
            if self.public.current(message.conn) and self.public.connected:
                self._request_snapshot("retry")
        elif isinstance(message, ReportHealth):
            self._publish(self._health(self.clock()), force=True, reply_to=message.reply_to)
            self._signal(self._reconnect_signal(), message.reply_to)
        elif isinstance(message, ReportFeedState):
            self.services.directory.tell(message.reply_to, self._feed_state(self._health(self.clock())))
        elif isinstance(message, ResyncBook):
            self._resync(message.reason)
        return None

    # --- connections --------------------------------------------------------------------

    def _connect(self, link: FeedLink) -> None:
        if not self._stopped:
            link.open(self.actor_ref, self.socket_timings, self.clock)

    def _on_connected(self, link: FeedLink) -> None:
        now = self.clock()
        link.connected = True
        link.reconnects.on_connected(time.monotonic())
        link.tracker.on_connected(now)
        if link is self.public:
            self._cancel_snapshot_retry()
            self.book.reset()
            self._book_live = False
            health = link.tracker.set_book_live(now, False)
            action = "RECOVERING: book resync from a snapshot, then clean data before LIVE"
        else:
            health = link.tracker.health(now)
            action = "RECOVERING: clean prices before LIVE"
        log_event(self.node_id, "feed_connected", details={"route": link.route, "conn": link.conn,
                                                           "attempt": link.attempts, "status": health.status.value},
                  action_taken=action)
        self._publish(self._health(now))

    def _on_connect_failed(self, link: FeedLink, message: SocketConnectFailed) -> None:
        link.connect_failures += 1
        link.last_connect_error = message.reason
        link.socket = None
        self._plan_connect(link, link.reconnects.on_attempt_failed(time.monotonic()), message.reason)

    def _drop(self, link: FeedLink, reason: str, *, stalled: bool = False) -> None:
        """One connection is gone (F7) or declared dead (F8): the symbol is blind now; that
        connection reconnects on its own schedule, the other is left alone."""
        now = self.clock()
        link.close()
        link.connected = False
        if link is self.public:
            self._cancel_snapshot_retry()
            self.book.reset()
            self._book_live = False
        if not stalled:
            link.tracker.on_disconnected(now, reason)
        self._publish(self._health(now))
        self._plan_connect(link, link.reconnects.on_disconnected(time.monotonic()), reason)

    def _plan_connect(self, link: FeedLink, plan: ReconnectPlan, reason: str) -> None:
        link.reconnect_log.append({"attempt": plan.attempt, "failures": plan.failures,
                                   "delay_s": round(plan.delay, 4), "reason": reason, "at": self.clock()})
        level = "WARNING" if plan.failures else "INFO"
        log_event(self.node_id, "feed_reconnect_planned", level=level,
                  details={"route": link.route, "attempt": plan.attempt, "failures": plan.failures,
                           "delay_s": round(plan.delay, 3), "reason": reason},
                  action_taken=f"next /{link.route} connect in {plan.delay:.3f}s")
        if plan.alert:
            log_event(self.node_id, "alert_reconnect_failures", level="ERROR",
                      details={"route": link.route, "failures": plan.failures, "message": plan.alert},
                      action_taken="REDUCED signalled to degradation; reconnecting forever")
        if plan.reduced and not self._reconnect_reduced_sent:
            self._reconnect_reduced_sent = True
            self._signal(signals.feed_degraded(self.symbol, "reconnect_failures", True,
                                               f"/{link.route}: {plan.alert or f'{plan.failures} reconnect failures'}"))
        link.epoch += 1
        if link.reconnect_timer is not None:
            self.services.timers.cancel(link.reconnect_timer)
            link.reconnect_timer = None
        if plan.delay <= 0:
            self._connect(link)
        else:
            link.reconnect_timer = self._after(plan.delay, _Reconnect(link.route, link.epoch))

    def _reconnect_signal(self) -> signals.Signal:
        failing = [link for link in self.links.values() if link.reconnects.reduced]
        reason = "; ".join(f"/{link.route}: {link.reconnects.failures} reconnect failures in a row"
                           for link in failing) or "connection stable"
        return signals.feed_degraded(self.symbol, "reconnect_failures", bool(failing), reason)

    # --- frames ---------------------------------------------------------------------------

    def _event_time(self, venue_ms: int | None) -> float | None:
        if venue_ms is None:
            return None
        clock = getattr(self.services.venue, "clock", None)
        offset_ms = float(getattr(clock, "offset_ms", 0.0) or 0.0)
        return (venue_ms - offset_ms) / 1000.0

    def _on_frame(self, link: FeedLink, message: SocketFrame) -> None:
        event, now = message.event, message.received
        if isinstance(event, AggTrade):
            self._on_price(message, "trade", event.price, event.event_time)
        elif isinstance(event, MarkPriceUpdate):
            self._on_price(message, "mark", event.mark_price, event.event_time,
                           funding_rate=event.funding_rate, index_price=event.index_price)
        elif isinstance(event, DepthEvent):
            if link.tracker.on_update(now, event_time=self._event_time(event.event_time_ms), stream="depth").accepted:
                link.last_update_wall = now
            self._on_depth(event, now)
        elif isinstance(event, ForceOrder):
            self.liquidations += 1
            link.tracker.on_update(now, event_time=self._event_time(event.event_time), stream="forceOrder")
        else:  # bookTicker: served on /public, not subscribed by the feed; it still proves the link alive
            link.tracker.on_update(now, event_time=self._event_time(event.event_time), stream="bookTicker")
        self._after_input(now)

    def _on_price(self, message: SocketFrame, kind: str, price: float, venue_ms: int, **extra: float) -> None:
        now = message.received
        market = self.market
        verdict = market.tracker.on_update(now, event_time=self._event_time(venue_ms), price=price, stream=kind)
        if not verdict.accepted:
            return
        if "abnormal_price" in verdict.flags:
            self.episode.flagged(now)
        market.last_update_wall = now
        status = worst_status(self.public.tracker.status, market.tracker.status)
        fresh = status not in BLIND and "backwards_timestamp" not in verdict.flags
        self.prices_forwarded += 1
        self.services.directory.tell(STATE_BUILDER, PriceUpdate(
            self.symbol, price, verdict.effective_time, kind, fresh, status.value, message.perf, **extra))

    def _on_corrupt(self, link: FeedLink, message: SocketCorrupt) -> None:
        link.tracker.on_corrupt(message.received, message.detail)
        self._corrupt_unlogged += 1
        if message.received - self._corrupt_logged_at >= 1.0:  # at most one line a second in a storm
            log_event(self.node_id, "corrupt_frame", level="WARNING",
                      details={"error": message.detail[:200], "route": link.route,
                               "dropped_since_last_log": self._corrupt_unlogged},
                      action_taken="frame dropped and counted")
            self._corrupt_logged_at, self._corrupt_unlogged = message.received, 0
        self._after_input(message.received)

    def _after_input(self, now: float) -> None:
        self._handle_alerts()
        key = (worst_status(self.public.tracker.status, self.market.tracker.status),
               self.public.tracker.reduced or self.market.tracker.reduced)
        if key != self._sent:
            self._publish(self._health(now))
        else:  # validity may change without a status change (F13 episodes)
            self._update_validity(key[0])

    # --- the book -------------------------------------------------------------------------

    def _on_depth(self, event: DepthEvent, now: float) -> None:
        result = self.book.on_event(event)
        if result is EventResult.GAP:
            gap = self.book.last_gap
            log_event(self.node_id, "sequence_gap", level="WARNING",
                      details={"reason": gap.reason if gap else "", "expected_pu": gap.expected_pu if gap else None,
                               "got_pu": gap.got_pu if gap else None},
                      action_taken="book dropped; resync from a REST snapshot")
            self._set_book_live(now, False)
            self._request_snapshot("sequence gap")
        elif result is EventResult.BUFFERED:
            self._request_snapshot("initial sync")
        elif result is EventResult.APPLIED:
            if self.book.state is BookState.LIVE:
                self._set_book_live(now, True)
                self._send_top(now)

    def _set_book_live(self, now: float, live: bool) -> None:
        if live != self._book_live:
            self._book_live = live
            self.public.tracker.set_book_live(now, live)
            self._publish(self._health(now))

    def _send_top(self, now: float) -> None:
        bids, asks = self.book.top(self.timings.book_top_levels)
        self.services.directory.tell(STATE_BUILDER, BookTop(self.symbol, tuple(bids), tuple(asks),
                                                            self.book.last_update_id or 0, now))
        depth = sum(p * q for p, q in bids) + sum(p * q for p, q in asks)
        if depth > 0:
            tracker = self.public.tracker
            collapses = tracker.counters.depth_collapses
            tracker.on_depth(now, depth)
            if tracker.counters.depth_collapses != collapses:
                self.episode.flagged(now)

    def _resync(self, reason: str) -> None:
        self.resyncs += 1
        self.book.reset()
        self._set_book_live(self.clock(), False)
        if self.public.connected:
            self._request_snapshot(reason)

    def _cancel_snapshot_retry(self) -> None:
        if self._snapshot_timer is not None:
            self.services.timers.cancel(self._snapshot_timer)
            self._snapshot_timer = None
        self._snapshot_failures = 0

    def _request_snapshot(self, reason: str) -> None:
        if self._fetching or self._snapshot_timer is not None or self._pool is None or not self.public.connected:
            return
        self._fetching = True
        conn, ref, venue, symbol, limit = self.public.conn, self.actor_ref, self.services.venue, self.symbol, \
            self.timings.depth_limit

        def fetch() -> None:
            snapshot, error = None, None
            try:
                outcome = venue.depth(symbol, limit)
                if outcome.ok:
                    data = outcome.data
                    snapshot = DepthSnapshot(int(data.last_update_id),
                                             tuple((float(p), float(q)) for p, q in data.bids),
                                             tuple((float(p), float(q)) for p, q in data.asks))
                else:
                    error = outcome.describe() if hasattr(outcome, "describe") else str(outcome.kind)
            except Exception as exc:  # noqa: BLE001 - reported to the actor, retried there
                error = describe(exc)
            try:
                ref.tell(_SnapshotReady(conn, snapshot, error))
            except pykka.ActorDeadError:
                pass

        log_event(self.node_id, "book_snapshot_requested", details={"reason": reason, "conn": conn},
                  action_taken="GET /fapi/v1/depth on a worker thread")
        self._pool.submit(fetch)

    def _on_snapshot(self, message: _SnapshotReady) -> None:
        self._fetching = False
        if not self.public.current(message.conn) or not self.public.connected:
            return  # a snapshot for a connection that is gone: its buffer is gone too
        now = self.clock()
        if message.snapshot is None:
            self._retry_snapshot_later(message.error or "depth fetch failed")
            return
        state = self.book.apply_snapshot(message.snapshot)
        log_event(self.node_id, "book_snapshot_applied",
                  details={"last_update_id": message.snapshot.last_update_id, "state": state.value,
                           "buffered": self.book.buffered},
                  action_taken={BookState.LIVE: "book LIVE",
                                BookState.SYNCING: "waiting for the bridging event",
                                BookState.NEEDS_RESYNC: "snapshot older than the stream: fetching another"}[state])
        if state is BookState.NEEDS_RESYNC:
            # Usually the next fetch bridges; a venue whose REST lags its stream must not make this a hot loop.
            self._snapshot_failures += 1
            if self._snapshot_failures < 3:
                self._request_snapshot("snapshot older than buffered events")
            else:
                self._retry_snapshot_later("snapshots keep lagging the stream")
            return
        self._snapshot_failures = 0
        if state is BookState.LIVE:
            self._set_book_live(now, True)
            self._send_top(now)

    def _retry_snapshot_later(self, error: str) -> None:
        self._snapshot_failures += 1
        delay = min(8.0, self.timings.snapshot_retry_s * 2 ** max(0, self._snapshot_failures - 1))
        log_event(self.node_id, "book_snapshot_failed", level="WARNING",
                  details={"error": error, "failures": self._snapshot_failures},
                  action_taken=f"retry in {delay:.2f}s; symbol stays blocked")
        self._snapshot_timer = self._after(delay, _RetrySnapshot(self.public.conn))

    # --- time ---------------------------------------------------------------------------

    def _poll(self) -> None:
        self._poll_timer = None
        if self._stopped:
            return
        now, mono = self.clock(), time.monotonic()
        heartbeat = self.health_config.heartbeat_timeout
        for link in self.links.values():
            health = link.tracker.poll(now)
            if link.connected and health.needs_reconnect:
                log_event(self.node_id, "feed_stalled", level="WARNING",
                          details={"route": link.route, "reasons": list(health.reasons)},
                          action_taken=f"/{link.route} socket dropped; reconnecting")
                self._drop(link, "; ".join(health.reasons) or "heartbeat_timeout", stalled=True)
            elif (silent := link.pong_overdue(mono, heartbeat)) is not None:
                link.pong_timeouts += 1
                self._drop(link, f"no pong for {silent:.3f}s > heartbeat_timeout {heartbeat}s")
        for link in self.links.values():
            link.reconnects.poll(mono)  # a connection up stable_after clears its failure count
        if self._reconnect_reduced_sent and not any(link.reconnects.reduced for link in self.links.values()):
            self._reconnect_reduced_sent = False
            log_event(self.node_id, "reconnect_failures_cleared", action_taken="REDUCED cause cleared")
            self._signal(self._reconnect_signal())
        self._handle_alerts()
        health = self._health(now)
        if self._undelivered or self._sent is None or (health.status, health.reduced) != self._sent:
            self._publish(health, force=self._undelivered)
        self._update_validity(health.status)
        self._refresh_details(health)
        self._arm_poll()

    def _after(self, delay: float, message: Any) -> int:
        return self.services.timers.tell_after(delay, self.actor_ref, message)

    def _arm_poll(self) -> None:
        if not self._stopped:
            self._poll_timer = self._after(self.timings.poll_interval_s, _Poll())

    # --- outputs --------------------------------------------------------------------------

    def _health(self, now: float) -> FeedHealth:
        """The symbol's health: the worst of its two connections'."""
        return worst_health(self.symbol, {route: link.tracker.health(now) for route, link in self.links.items()})

    def _signal(self, signal: signals.Signal, to: str = DEGRADATION) -> bool:
        delivered = self.services.directory.tell(to, signal)
        if not delivered and to == DEGRADATION:
            self._undelivered = True
        return delivered

    def _feed_state(self, health: FeedHealth) -> FeedState:
        return FeedState(self.symbol, health.status.value, health.since, "; ".join(health.reasons),
                         self.book.state.value)

    def _publish(self, health: FeedHealth, *, force: bool = False, reply_to: str = DEGRADATION) -> None:
        """Tell degradation (and the state builder, and the breaker) what changed."""
        key = (health.status, health.reduced)
        changed = key != self._sent
        if not changed and not force:
            return
        if changed:
            previous = self._sent[0].value if self._sent else None
            level = "INFO" if health.status is FeedStatus.LIVE else "WARNING"
            log_event(self.node_id, "feed_status", level=level,
                      details={"from": previous, "to": health.status.value, "reasons": list(health.reasons),
                               "reduced": health.reduced, "data_age_s": health.data_age},
                      action_taken="entries on the symbol open" if health.tradable else
                      "entries on the symbol blocked" + ("; stop index suspended" if health.status in BLIND else ""))
        self._sent = key
        if reply_to == DEGRADATION:
            self._undelivered = False  # set again by _signal if degradation is down
        for signal in signals.from_feed_health(health):
            self._signal(signal, reply_to)
        if changed:
            self.services.directory.tell(STATE_BUILDER, self._feed_state(health))
        self._update_validity(health.status)
        self._refresh_details(health)

    def _update_validity(self, status: FeedStatus) -> None:
        """F13: tell the breaker of an episode the tracker's alert did not cover, and whether the
        data validates (LIVE, no episode open). Runs after ``_handle_alerts``, so an episode the
        tracker alerted is not told twice."""
        if self.episode.report_due(self.clock()):
            if self.services.directory.tell(CIRCUIT_BREAKER, AbnormalPrice(
                    self.symbol, "abnormal price move again (within a minute of the last one)")):
                self.episode.alert_delivered()
                log_event(self.node_id, "alert_abnormal_price", level="ERROR",
                          details={"message": "abnormal price move again within a minute of the last one"},
                          action_taken="circuit-breaker told (entries paused)")
        valid = self.episode.validates(status is FeedStatus.LIVE)
        if valid != self._valid and self.services.directory.tell(CIRCUIT_BREAKER, PriceValidity(self.symbol, valid)):
            self._valid = valid

    def _handle_alerts(self) -> None:
        for link in self.links.values():
            for alert in link.tracker.take_alerts():
                abnormal = alert.kind == "abnormal_price"
                log_event(self.node_id, f"alert_{alert.kind}", level="ERROR" if abnormal else "WARNING",
                          details={"message": alert.message, "route": link.route},
                          action_taken="circuit-breaker told (entries paused)" if abnormal else "alert raised")
                if abnormal and self.services.directory.tell(CIRCUIT_BREAKER, AbnormalPrice(self.symbol,
                                                                                              alert.message)):
                    self.episode.alert_delivered()

    # --- reads ----------------------------------------------------------------------------

    def book_depth(self) -> dict[str, Any]:
        """The whole local book (``ask`` it through the proxy: runs on the actor thread)."""
        bids, asks = self.book.depth()
        return {"state": self.book.state.value, "last_update_id": self.book.last_update_id,
                "bids": bids, "asks": asks}

    def _refresh_details(self, health: FeedHealth) -> None:
        counters = health.counters
        now = self.clock()
        connections = {route: link.details(now) for route, link in self.links.items()}
        self._details = {
            "symbol": self.symbol,
            "status": health.status.value,
            "since": health.since,
            "reasons": list(health.reasons),
            "reduced": health.reduced,
            "abnormal_price": health.abnormal_price,
            "abnormal_episode": self.episode.open,
            "suspect": health.suspect,
            "corrupt_rate": round(health.corrupt_rate, 4),
            "connected": all(link.connected for link in self.links.values()),
            "connections": connections,
            "reconnect": {"attempts": sum(link.attempts for link in self.links.values()),
                          "connect_failures": sum(link.connect_failures for link in self.links.values()),
                          "failures": max(link.reconnects.failures for link in self.links.values()),
                          "reduced": any(link.reconnects.reduced for link in self.links.values())},
            "book": {"state": self.book.state.value, "last_update_id": self.book.last_update_id,
                     "buffered": self.book.buffered, "applied": self.book.counters.applied,
                     "gaps": self.book.counters.gaps, "snapshots": self.book.counters.snapshots,
                     "resyncs": self.resyncs},
            "counters": {"messages": counters.messages, "updates": counters.updates, "corrupt": counters.corrupt,
                         "future_rejected": counters.future_rejected, "backwards": counters.backwards,
                         "abnormal_price": counters.abnormal_price, "stalls": counters.stalls,
                         "pong_timeouts": sum(link.pong_timeouts for link in self.links.values()),
                         "disconnects": counters.disconnects, "connects": counters.connects,
                         "stale_periods": counters.stale_periods, "liquidations": self.liquidations,
                         "prices_forwarded": self.prices_forwarded},
        }

    def status_details(self) -> dict[str, Any]:
        """Plain attribute reads only (called from another thread)."""
        details = dict(self._details)
        links = list(self.links.values())
        details["reconnect"] = {"attempts": sum(link.attempts for link in links),
                                "connect_failures": sum(link.connect_failures for link in links),
                                "failures": max(link.reconnects.failures for link in links),
                                "reduced": any(link.reconnects.reduced for link in links)}
        now = self.clock()
        ages = [now - t for t in (link.last_update_wall for link in links) if t is not None]
        details["data_age_ms"] = round(max(ages) * 1000.0, 1) if len(ages) == len(links) else None  # the older link
        return details


__all__ = [
    "FeedActor",
    "FeedTimings",
]
