"""The ``feed:<SYMBOL>`` actor: one symbol's market data, from the venue socket to the state builder.

It wraps three pure cores and owns the I/O they never do:

- ``OrderBookSequencer`` (Binance's local-order-book algorithm, F9): every
  ``depthUpdate`` goes through it; whenever it is not LIVE a REST snapshot
  (``services.venue.depth``) is fetched on a worker thread and handed back;
- ``FeedHealthTracker`` (F7, F8, F10-F13): every frame, corrupt or not, and a
  poll every ``poll_interval_s`` (<= 50 ms) decide LIVE / STALE /
  DISCONNECTED / RECOVERING; each status change is told to ``degradation`` as
  ``signals.from_feed_health`` (the symbol gate and the F12 corrupt-rate REDUCED);
- ``ReconnectSchedule`` (F7): 0, 1, 2, 4 ... <= 60 s + jitter, forever; more than
  5 failures in a row -> ``signals.feed_degraded(.., "reconnect_failures")`` + alert,
  cleared once a connection has proved stable.

Threads. The actor thread owns all state. Each connection attempt has one
reader thread (``_Socket``) that connects, pings, reads, parses and validates
every frame (``runtime.venue.ws`` strict parsers) and only ``tell``s the actor
what it saw; it never touches actor state. Messages from a superseded
connection carry an old ``conn`` number and are ignored. Depth snapshots are
fetched on a one-thread pool. Timers (poll, reconnect, snapshot retry) are
``services.timers`` callbacks that only tell.

Outputs, all by ``tell`` through the directory:

- ``state-builder``: ``PriceUpdate`` for every accepted aggTrade / markPrice
  (with ``fresh`` = may move the stop index, and the receipt ``tick_perf``),
  ``BookTop`` after every applied depth event of a LIVE book, ``FeedState`` on
  every status change (and when asked with ``ReportFeedState``);
- ``degradation``: ``Signal``s (re-sent on ``ReportHealth`` and when undelivered);
- ``circuit-breaker``: ``AbnormalPrice`` (F13) and ``PriceValidity`` on change.

Abnormal-price episodes (F13). The tracker flags every update that is more than
20 % away from the last minute's range -- after one step move, every later price
until the old ones leave the window -- and alerts at most once a minute. The feed
turns that into *episodes*: one starts at the first flagged update and ends after
``abnormal_quiet_s`` without one. Every episode tells the breaker ``AbnormalPrice``
once (the tracker's alert, or the feed's own when the tracker's once-a-minute
alert is still suppressed), and ``PriceValidity`` is true only while LIVE with no
episode open. So a single move pauses entries for the breaker's 60 s (the move
leaves the window then), not 60 s more for a flag that lingers after it.

An update the tracker accepts but flags as an abnormal move (F13) is still
forwarded ``fresh``: the circuit breaker pauses entries, but a real crash is
exactly when a stop-loss must fire.

Timestamps. Event times are venue-clock milliseconds; they are moved onto the
local clock with the connector's measured server offset
(``services.venue.clock.offset_ms``, kept fresh by monitor:clock) before the
F11 checks, so a venue whose clock is known to be off is not mistaken for a
stream of future events. Depth events are sequenced whatever their timestamp:
``U/u/pu`` is the book's proof, and skipping one would only force a resync.

Never does: block the actor thread on the network (connect, read, snapshot);
apply a depth event from an old connection; forward a price the tracker rejected.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import pykka
import websocket
from websocket import ABNF

from actors.circuit_breaker import NODE_ID as CIRCUIT_BREAKER
from actors.circuit_breaker import AbnormalPrice, PriceValidity
from actors.core import signals
from actors.core.feed_health import FeedHealth, FeedHealthConfig, FeedHealthTracker, FeedStatus
from actors.core.order_book import BookState, DepthEvent, DepthSnapshot, EventResult, Level, OrderBookSequencer
from actors.core.reconnect import ReconnectConfig, ReconnectPlan, ReconnectSchedule
from actors.degradation import NODE_ID as DEGRADATION
from actors.degradation import ReportHealth
from actors.services import Services
from runtime.logging import log_event
from runtime.venue.ws import (
    AggTrade,
    DepthUpdate,
    ForceOrder,
    MalformedMessage,
    MarkPriceUpdate,
    combined_stream_url,
    market_streams,
    parse_event,
    parse_stream_message,
)
from supervision import SupervisedActor

STATE_BUILDER = "state-builder"
BLIND = (FeedStatus.STALE, FeedStatus.DISCONNECTED)


def feed_node_id(symbol: str) -> str:
    """``feed:BTCUSDT``."""
    return f"feed:{symbol.upper()}"


# --- messages out -------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceUpdate:
    """One accepted price (aggTrade or markPrice), for the state builder's hot path."""

    symbol: str
    price: float
    ts: float  # event time on the local clock, epoch s (receive time when the venue's was suspect)
    kind: str  # "trade" | "mark"
    fresh: bool  # feed not blind (LIVE/RECOVERING) and timestamp in order: may move the stop index
    status: str  # the feed's FeedStatus value after this update
    tick_perf: float  # time.perf_counter() when the frame left the socket
    open_interest: float | None = None
    funding_rate: float | None = None
    index_price: float | None = None


@dataclass(frozen=True)
class BookTop:
    """The best levels of a LIVE book after an applied depth event."""

    symbol: str
    bids: tuple[Level, ...]  # best first
    asks: tuple[Level, ...]  # best first
    last_update_id: int
    ts: float  # receive time, epoch s


@dataclass(frozen=True)
class FeedState:
    """The feed's status after a change (or on request)."""

    symbol: str
    status: str  # FeedStatus value
    since: float | None
    reason: str
    book: str  # BookState value


# --- messages in ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportFeedState:
    """Ask the feed for a ``FeedState`` (the state builder after its restart)."""

    reply_to: str = STATE_BUILDER


@dataclass(frozen=True)
class ResyncBook:
    """Drop the book and rebuild it from a fresh snapshot (operator, validation)."""

    reason: str = "requested"


@dataclass(frozen=True)
class _Connected:
    conn: int


@dataclass(frozen=True)
class _ConnectFailed:
    conn: int
    reason: str


@dataclass(frozen=True)
class _Closed:
    conn: int
    reason: str
    perf: float  # when the reader saw it


@dataclass(frozen=True)
class _Frame:
    conn: int
    event: DepthEvent | MarkPriceUpdate | AggTrade | ForceOrder
    received: float  # wall clock, epoch s
    perf: float


@dataclass(frozen=True)
class _Corrupt:
    conn: int
    detail: str
    received: float


@dataclass(frozen=True)
class _SnapshotReady:
    conn: int
    snapshot: DepthSnapshot | None
    error: str | None


@dataclass(frozen=True)
class _Poll:
    pass


@dataclass(frozen=True)
class _Reconnect:
    epoch: int


@dataclass(frozen=True)
class _RetrySnapshot:
    conn: int


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


# --- the reader thread ------------------------------------------------------------------------


class _Socket:
    """One connection attempt and its reader thread.

    Connects, pings every ``ping_interval`` seconds, reads, parses and validates
    frames and tells the actor. It reads nothing of the actor's state; the only
    things the actor reads here are ``last_ping``/``last_pong`` (floats, written
    by this thread) for the pong check. ``close()`` is safe from any thread and
    never blocks.
    """

    def __init__(self, conn: int, url: str, symbol: str, ref: pykka.ActorRef[Any], timings: FeedTimings,
                 ping_interval: float, clock: Callable[[], float]) -> None:
        self.conn = conn
        self.url = url
        self.symbol = symbol
        self._ref = ref
        self._timings = timings
        self._ping_interval = ping_interval
        self._clock = clock
        self._stop = threading.Event()
        self._ws: websocket.WebSocket | None = None
        self.last_ping: float | None = None  # monotonic
        self.last_pong: float | None = None  # monotonic
        self.thread = threading.Thread(target=self._run, name=f"feed-{symbol}-{conn}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self._stop.set()
        ws = self._ws
        if ws is not None:
            ws.abort()  # wakes the reader; the reader closes the socket itself

    # -- reader thread -----------------------------------------------------------------

    def _tell(self, message: Any) -> None:
        if self._stop.is_set():
            return
        try:
            self._ref.tell(message)
        except pykka.ActorDeadError:
            self._stop.set()

    def _run(self) -> None:
        ws = websocket.WebSocket(enable_multithread=True, skip_utf8_validation=True)
        try:
            ws.connect(self.url, timeout=self._timings.connect_timeout_s)
        except Exception as exc:  # noqa: BLE001 - every failure is one failed attempt
            ws.shutdown()
            self._tell(_ConnectFailed(self.conn, _describe(exc)))
            return
        self._ws = ws
        if self._stop.is_set():
            ws.shutdown()
            return
        ws.settimeout(self._timings.recv_timeout_s)
        self.last_ping = self.last_pong = time.monotonic()
        self._tell(_Connected(self.conn))
        try:
            reason = self._read(ws)
        except Exception as exc:  # noqa: BLE001 - a reader bug is a dropped connection, never a dead thread
            reason = f"reader failed: {_describe(exc)}"
        perf = time.perf_counter()
        ws.shutdown()
        self._tell(_Closed(self.conn, reason, perf))

    def _read(self, ws: websocket.WebSocket) -> str:
        while not self._stop.is_set():
            mono = time.monotonic()
            if self._ping_interval > 0 and mono - (self.last_ping or 0.0) >= self._ping_interval:
                if self.last_pong is not None and self.last_ping is not None and self.last_pong >= self.last_ping:
                    self.last_ping = mono  # only one ping outstanding: its age is the pong check
                    try:
                        ws.ping(b"warden")
                    except (OSError, websocket.WebSocketException) as exc:
                        return f"ping failed: {_describe(exc)}"
            try:
                opcode, frame = ws.recv_data_frame(control_frame=True)
            except websocket.WebSocketTimeoutException:
                continue
            except (OSError, websocket.WebSocketException) as exc:
                return "closed" if self._stop.is_set() else f"connection lost: {_describe(exc)}"
            if opcode == ABNF.OPCODE_PONG:
                self.last_pong = time.monotonic()
                continue
            if opcode == ABNF.OPCODE_PING:
                continue
            if opcode == ABNF.OPCODE_CLOSE:
                code = int.from_bytes(frame.data[:2], "big") if len(frame.data) >= 2 else None
                text = frame.data[2:].decode("utf-8", "replace") if len(frame.data) > 2 else ""
                return f"closed by venue (code {code}{': ' + text if text else ''})"
            self._on_data(frame.data)
        return "closed"

    def _on_data(self, raw: bytes | str) -> None:
        received, perf = self._clock(), time.perf_counter()
        try:
            self._tell(_Frame(self.conn, self._parse(raw), received, perf))
        except MalformedMessage as exc:
            self._tell(_Corrupt(self.conn, str(exc), received))

    def _parse(self, raw: bytes | str) -> DepthEvent | MarkPriceUpdate | AggTrade | ForceOrder:
        """Schema validation of one frame (F12); raises ``MalformedMessage``."""
        message = parse_stream_message(raw)
        stream_symbol = message.stream.partition("@")[0]
        if stream_symbol != self.symbol.lower():
            raise MalformedMessage(f"frame of stream {message.stream!r} on the {self.symbol} feed")
        event = parse_event(message.data)
        if event.symbol != self.symbol:
            raise MalformedMessage(f"{type(event).__name__} for symbol {event.symbol!r} on the {self.symbol} feed")
        if isinstance(event, DepthUpdate):
            if not event.first_update_id <= event.final_update_id:
                raise MalformedMessage(f"depthUpdate: U={event.first_update_id} > u={event.final_update_id}")
            bids = _float_levels(event.bids, "b")
            asks = _float_levels(event.asks, "a")
            return DepthEvent(event.first_update_id, event.final_update_id, event.prev_final_update_id,
                              bids, asks, event.event_time)
        if isinstance(event, MarkPriceUpdate) and not event.mark_price > 0:
            raise MalformedMessage(f"markPriceUpdate: mark price {event.mark_price} is not positive")
        if isinstance(event, AggTrade) and not (event.price > 0 and event.quantity >= 0):
            raise MalformedMessage(f"aggTrade: price {event.price} / quantity {event.quantity} out of range")
        return event


def _float_levels(levels: Any, side: str) -> tuple[Level, ...]:
    out = []
    for price, qty in levels:
        p, q = float(price), float(qty)
        if not (p > 0 and q >= 0 and math.isfinite(p) and math.isfinite(q)):
            raise MalformedMessage(f"depthUpdate {side}: bad level [{price}, {qty}]")
        out.append((p, q))
    return tuple(out)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    text = text.splitlines()[0].split(" -+-+- ")[0][:200] if text else ""  # websocket-client appends headers
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- the actor -----------------------------------------------------------------------------


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
        self.node_id = feed_node_id(self.symbol)
        feeds = services.config.feeds
        url = ws_url or services.config.venue.ws_url
        if not url:
            raise ValueError(f"{self.node_id}: no WebSocket url ([venue] ws_url is empty and none was given)")
        self.url = combined_stream_url(url, market_streams(self.symbol))
        self.health_config = health or FeedHealthConfig(stale_after=feeds.stale_after_ms / 1000.0,
                                                        heartbeat_timeout=feeds.heartbeat_timeout_s)
        self.timings = timings or FeedTimings()
        self.clock = clock
        self.book = OrderBookSequencer(self.symbol)
        self.tracker = FeedHealthTracker(self.symbol, self.health_config)
        self.reconnects = ReconnectSchedule(reconnect, rand=rand)
        ping = self.timings.ping_interval_s
        self.ping_interval = self.health_config.heartbeat_timeout / 2.0 if ping is None else ping
        self._socket: _Socket | None = None
        self._conn = 0
        self._connected = False
        self._epoch = 0  # reconnect timer generation
        self._poll_timer: int | None = None
        self._reconnect_timer: int | None = None
        self._snapshot_timer: int | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._fetching = False
        self._snapshot_failures = 0
        self._book_live = False
        self._sent: tuple[FeedStatus, bool] | None = None
        self._undelivered = False
        self._reconnect_reduced_sent = False
        self._valid: bool | None = None
        self._abnormal_last: float | None = None  # receive time of the last update flagged abnormal (F13)
        self._abnormal_episode = False
        self._abnormal_reported = False  # the breaker has been told AbnormalPrice for the open episode
        self._last_update_wall: float | None = None
        self._corrupt_logged_at = 0.0
        self._corrupt_unlogged = 0
        self._stopped = False
        # counters and measurements for the status tree
        self.attempts = 0
        self.connect_failures = 0
        self.pong_timeouts = 0
        self.liquidations = 0
        self.prices_forwarded = 0
        self.resyncs = 0
        self.last_disconnect_detect_ms: float | None = None
        self.last_connect_error: str | None = None
        self.reconnect_log: deque[dict[str, Any]] = deque(maxlen=20)
        self._details: dict[str, Any] = {}
        self._refresh_details(self.tracker.health(clock()))

    # --- lifecycle ----------------------------------------------------------------------

    def on_start(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"feed-{self.symbol}-depth")
        self.services.directory.register(self.node_id, self.generation, self.actor_ref)
        now = self.clock()
        self._publish(self.tracker.poll(now), force=True)
        log_event(self.node_id, "feed_started", details={"url": self.url, "generation": self.generation},
                  action_taken="connecting; entries on the symbol blocked until the data validates")
        plan = self.reconnects.on_disconnected(time.monotonic())
        self._plan_connect(plan, "start")
        self._arm_poll()

    def on_stop(self) -> None:
        self._teardown("feed actor stopped")

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self._teardown(f"feed actor crashed: {exception_value!r}")

    def _teardown(self, reason: str) -> None:
        if self._stopped:
            return
        self._stopped = True
        for token in (self._poll_timer, self._reconnect_timer, self._snapshot_timer):
            if token is not None:
                self.services.timers.cancel(token)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
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
        if isinstance(message, _Frame):
            if message.conn == self._conn and self._connected:
                self._on_frame(message)
        elif isinstance(message, _Corrupt):
            if message.conn == self._conn and self._connected:
                self._on_corrupt(message)
        elif isinstance(message, _Poll):
            self._poll()
        elif isinstance(message, _Connected):
            if message.conn == self._conn:
                self._on_connected()
        elif isinstance(message, _Closed):
            if message.conn == self._conn and self._connected:
                self._on_closed(message)
        elif isinstance(message, _ConnectFailed):
            if message.conn == self._conn and not self._connected:
                self._on_connect_failed(message)
        elif isinstance(message, _SnapshotReady):
            self._on_snapshot(message)
        elif isinstance(message, _Reconnect):
            if message.epoch == self._epoch:
                self._reconnect_timer = None
                self._connect()
        elif isinstance(message, _RetrySnapshot):
            self._snapshot_timer = None
            if message.conn == self._conn and self._connected:
                self._request_snapshot("retry")
        elif isinstance(message, ReportHealth):
            self._publish(self.tracker.health(self.clock()), force=True, reply_to=message.reply_to)
            reduced = self.reconnects.reduced  # clearing a cause that is not raised is a no-op there
            self._signal(signals.feed_degraded(self.symbol, "reconnect_failures", reduced,
                                               f"{self.reconnects.failures} reconnect failures in a row"
                                               if reduced else "connection stable"), message.reply_to)
        elif isinstance(message, ReportFeedState):
            self.services.directory.tell(message.reply_to, self._feed_state(self.tracker.health(self.clock())))
        elif isinstance(message, ResyncBook):
            self._resync(message.reason)
        return None

    # --- connection ---------------------------------------------------------------------

    def _connect(self) -> None:
        if self._stopped:
            return
        if self._socket is not None:
            self._socket.close()
        self._conn += 1
        self._connected = False
        self.attempts += 1
        self._socket = _Socket(self._conn, self.url, self.symbol, self.actor_ref, self.timings, self.ping_interval,
                               self.clock)
        self._socket.start()

    def _on_connected(self) -> None:
        now, mono = self.clock(), time.monotonic()
        self._connected = True
        self.reconnects.on_connected(mono)
        self._cancel_snapshot_retry()
        self.book.reset()
        self._book_live = False
        self._snapshot_failures = 0
        self.tracker.on_connected(now)
        health = self.tracker.set_book_live(now, False)
        log_event(self.node_id, "feed_connected", details={"conn": self._conn, "attempt": self.attempts},
                  action_taken="RECOVERING: book resync from a snapshot, then clean data before LIVE")
        self._publish(health)

    def _on_connect_failed(self, message: _ConnectFailed) -> None:
        self.connect_failures += 1
        self.last_connect_error = message.reason
        self._socket = None
        plan = self.reconnects.on_attempt_failed(time.monotonic())
        self._plan_connect(plan, message.reason)

    def _on_closed(self, message: _Closed) -> None:
        self.last_disconnect_detect_ms = (time.perf_counter() - message.perf) * 1000.0
        self._drop(message.reason)

    def _drop(self, reason: str, *, stalled: bool = False) -> None:
        """The connection is gone (F7) or declared dead (F8): blind now, reconnect per the schedule."""
        now = self.clock()
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._connected = False
        self._cancel_snapshot_retry()
        self.book.reset()
        self._book_live = False
        health = self.tracker.health(now) if stalled else self.tracker.on_disconnected(now, reason)
        self._publish(health)
        plan = self.reconnects.on_disconnected(time.monotonic())
        self._plan_connect(plan, reason)

    def _plan_connect(self, plan: ReconnectPlan, reason: str) -> None:
        self.reconnect_log.append({"attempt": plan.attempt, "failures": plan.failures,
                                   "delay_s": round(plan.delay, 4), "reason": reason, "at": self.clock()})
        level = "WARNING" if plan.failures else "INFO"
        log_event(self.node_id, "feed_reconnect_planned", level=level,
                  details={"attempt": plan.attempt, "failures": plan.failures, "delay_s": round(plan.delay, 3),
                           "reason": reason},
                  action_taken=f"next connect in {plan.delay:.3f}s")
        if plan.alert:
            log_event(self.node_id, "alert_reconnect_failures", level="ERROR",
                      details={"failures": plan.failures, "message": plan.alert},
                      action_taken="REDUCED signalled to degradation; reconnecting forever")
        if plan.reduced and not self._reconnect_reduced_sent:
            self._reconnect_reduced_sent = True
            self._signal(signals.feed_degraded(self.symbol, "reconnect_failures", True,
                                               plan.alert or f"{plan.failures} reconnect failures"))
        self._epoch += 1
        if self._reconnect_timer is not None:
            self.services.timers.cancel(self._reconnect_timer)
            self._reconnect_timer = None
        if plan.delay <= 0:
            self._connect()
        else:
            self._reconnect_timer = self._after(plan.delay, _Reconnect(self._epoch))

    # --- frames ---------------------------------------------------------------------------

    def _event_time(self, venue_ms: int | None) -> float | None:
        if venue_ms is None:
            return None
        clock = getattr(self.services.venue, "clock", None)
        offset_ms = float(getattr(clock, "offset_ms", 0.0) or 0.0)
        return (venue_ms - offset_ms) / 1000.0

    def _on_frame(self, message: _Frame) -> None:
        event, now = message.event, message.received
        if isinstance(event, DepthEvent):
            if self.tracker.on_update(now, event_time=self._event_time(event.event_time_ms), stream="depth").accepted:
                self._last_update_wall = now
            self._on_depth(event, now)
        elif isinstance(event, AggTrade):
            self._on_price(message, "trade", float(event.price), event.event_time)
        elif isinstance(event, MarkPriceUpdate):
            self._on_price(message, "mark", float(event.mark_price), event.event_time,
                           funding_rate=float(event.funding_rate), index_price=float(event.index_price))
        elif isinstance(event, ForceOrder):
            self.liquidations += 1
            self.tracker.on_update(now, event_time=self._event_time(event.event_time), stream="forceOrder")
        self._after_input(now)

    def _on_price(self, message: _Frame, kind: str, price: float, venue_ms: int, **extra: float) -> None:
        now = message.received
        verdict = self.tracker.on_update(now, event_time=self._event_time(venue_ms), price=price, stream=kind)
        if not verdict.accepted:
            return
        if "abnormal_price" in verdict.flags:
            self._abnormal_seen(now)
        self._last_update_wall = now
        health = self.tracker.health(now)
        fresh = health.status not in BLIND and "backwards_timestamp" not in verdict.flags
        self.prices_forwarded += 1
        self.services.directory.tell(STATE_BUILDER, PriceUpdate(
            self.symbol, price, verdict.effective_time, kind, fresh, health.status.value, message.perf, **extra))

    def _on_corrupt(self, message: _Corrupt) -> None:
        self.tracker.on_corrupt(message.received, message.detail)
        self._corrupt_unlogged += 1
        if message.received - self._corrupt_logged_at >= 1.0:  # at most one line a second in a storm
            log_event(self.node_id, "corrupt_frame", level="WARNING",
                      details={"error": message.detail[:200], "dropped_since_last_log": self._corrupt_unlogged},
                      action_taken="frame dropped and counted")
            self._corrupt_logged_at, self._corrupt_unlogged = message.received, 0
        self._after_input(message.received)

    def _after_input(self, now: float) -> None:
        self._handle_alerts()
        health = self.tracker.health(now)
        if self._sent is None or (health.status, health.reduced) != self._sent:
            self._publish(health)
        else:  # validity may change without a status change (F13 episodes)
            self._update_validity(health)

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
            self._publish(self.tracker.set_book_live(now, live))

    def _send_top(self, now: float) -> None:
        bids, asks = self.book.top(self.timings.book_top_levels)
        self.services.directory.tell(STATE_BUILDER, BookTop(self.symbol, tuple(bids), tuple(asks),
                                                            self.book.last_update_id or 0, now))
        depth = sum(p * q for p, q in bids) + sum(p * q for p, q in asks)
        if depth > 0:
            collapses = self.tracker.counters.depth_collapses
            self.tracker.on_depth(now, depth)
            if self.tracker.counters.depth_collapses != collapses:
                self._abnormal_seen(now)

    def _resync(self, reason: str) -> None:
        self.resyncs += 1
        self.book.reset()
        self._set_book_live(self.clock(), False)
        if self._connected:
            self._request_snapshot(reason)

    def _cancel_snapshot_retry(self) -> None:
        if self._snapshot_timer is not None:
            self.services.timers.cancel(self._snapshot_timer)
            self._snapshot_timer = None
        self._snapshot_failures = 0

    def _request_snapshot(self, reason: str) -> None:
        if self._fetching or self._snapshot_timer is not None or self._pool is None or not self._connected:
            return
        self._fetching = True
        conn, ref, venue, symbol, limit = self._conn, self.actor_ref, self.services.venue, self.symbol, \
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
                error = _describe(exc)
            try:
                ref.tell(_SnapshotReady(conn, snapshot, error))
            except pykka.ActorDeadError:
                pass

        log_event(self.node_id, "book_snapshot_requested", details={"reason": reason, "conn": conn},
                  action_taken="GET /fapi/v1/depth on a worker thread")
        self._pool.submit(fetch)

    def _on_snapshot(self, message: _SnapshotReady) -> None:
        self._fetching = False
        if message.conn != self._conn or not self._connected:
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
        self._snapshot_timer = self._after(delay, _RetrySnapshot(self._conn))

    # --- time ---------------------------------------------------------------------------

    def _poll(self) -> None:
        self._poll_timer = None
        if self._stopped:
            return
        now, mono = self.clock(), time.monotonic()
        health = self.tracker.poll(now)
        if self._connected and health.needs_reconnect:
            log_event(self.node_id, "feed_stalled", level="WARNING", details={"reasons": list(health.reasons)},
                      action_taken="socket dropped; reconnecting")
            self._drop("; ".join(health.reasons) or "heartbeat_timeout", stalled=True)
            health = self.tracker.health(now)
        elif self._connected and self._pong_overdue(mono):
            self.pong_timeouts += 1
            self._drop(f"no pong for {mono - (self._socket.last_ping or mono):.3f}s "  # type: ignore[union-attr]
                       f"> heartbeat_timeout {self.health_config.heartbeat_timeout}s")
            health = self.tracker.health(now)
        if self.reconnects.poll(mono) or (self._reconnect_reduced_sent and not self.reconnects.reduced):
            self._reconnect_reduced_sent = False
            log_event(self.node_id, "reconnect_failures_cleared", action_taken="REDUCED cause cleared")
            self._signal(signals.feed_degraded(self.symbol, "reconnect_failures", False, "connection stable"))
        self._handle_alerts()
        if self._undelivered or self._sent is None or (health.status, health.reduced) != self._sent:
            self._publish(health, force=self._undelivered)
        self._update_validity(health)
        self._refresh_details(health)
        self._arm_poll()

    def _pong_overdue(self, mono: float) -> bool:
        sock = self._socket
        if sock is None or self.ping_interval <= 0:
            return False
        ping, pong = sock.last_ping, sock.last_pong
        return ping is not None and pong is not None and pong < ping and \
            mono - ping > self.health_config.heartbeat_timeout

    def _after(self, delay: float, message: Any) -> int:
        return self.services.timers.tell_after(delay, self.actor_ref, message)

    def _arm_poll(self) -> None:
        if not self._stopped:
            self._poll_timer = self._after(self.timings.poll_interval_s, _Poll())

    # --- outputs --------------------------------------------------------------------------

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
        self._update_validity(health)
        self._refresh_details(health)

    def _abnormal_seen(self, now: float) -> None:
        """An update the tracker flagged abnormal (price move or depth collapse): open or extend an episode."""
        if not self._abnormal_episode:
            self._abnormal_episode, self._abnormal_reported = True, False
        self._abnormal_last = now

    def _update_validity(self, health: FeedHealth) -> None:
        """F13: the breaker lifts an abnormal-price pause only while the symbol's data validates:
        LIVE and no abnormal episode open. Runs after ``_handle_alerts``, so an episode the tracker
        alerted is not told twice."""
        if self._abnormal_episode:
            if self._abnormal_last is not None and self.clock() - self._abnormal_last >= self.timings.abnormal_quiet_s:
                self._abnormal_episode = False
            elif not self._abnormal_reported:  # the tracker's alert is once a minute; every episode must pause
                self._abnormal_reported = self.services.directory.tell(CIRCUIT_BREAKER, AbnormalPrice(
                    self.symbol, "abnormal price move again (within a minute of the last one)"))
                if self._abnormal_reported:
                    log_event(self.node_id, "alert_abnormal_price", level="ERROR",
                              details={"message": "abnormal price move again within a minute of the last one"},
                              action_taken="circuit-breaker told (entries paused)")
        valid = health.status is FeedStatus.LIVE and not self._abnormal_episode
        if valid != self._valid and self.services.directory.tell(CIRCUIT_BREAKER, PriceValidity(self.symbol, valid)):
            self._valid = valid

    def _handle_alerts(self) -> None:
        for alert in self.tracker.take_alerts():
            log_event(self.node_id, f"alert_{alert.kind}", level="ERROR" if alert.kind == "abnormal_price"
                      else "WARNING", details={"message": alert.message},
                      action_taken="circuit-breaker told (entries paused)" if alert.kind == "abnormal_price"
                      else "alert raised")
            if alert.kind == "abnormal_price":
                told = self.services.directory.tell(CIRCUIT_BREAKER, AbnormalPrice(self.symbol, alert.message))
                self._abnormal_reported = self._abnormal_reported or told

    # --- reads ----------------------------------------------------------------------------

    def book_depth(self) -> dict[str, Any]:
        """The whole local book (``ask`` it through the proxy: runs on the actor thread)."""
        bids, asks = self.book.depth()
        return {"state": self.book.state.value, "last_update_id": self.book.last_update_id,
                "bids": bids, "asks": asks}

    def _refresh_details(self, health: FeedHealth) -> None:
        counters = health.counters
        self._details = {
            "symbol": self.symbol,
            "status": health.status.value,
            "since": health.since,
            "reasons": list(health.reasons),
            "reduced": health.reduced,
            "abnormal_price": health.abnormal_price,
            "abnormal_episode": self._abnormal_episode,
            "suspect": health.suspect,
            "corrupt_rate": round(health.corrupt_rate, 4),
            "connected": self._connected,
            "conn": self._conn,
            "reconnect": {"attempts": self.attempts, "connect_failures": self.connect_failures,
                          "failures": self.reconnects.failures, "reduced": self.reconnects.reduced,
                          "last_error": self.last_connect_error, "recent": list(self.reconnect_log)[-5:]},
            "book": {"state": self.book.state.value, "last_update_id": self.book.last_update_id,
                     "buffered": self.book.buffered, "applied": self.book.counters.applied,
                     "gaps": self.book.counters.gaps, "snapshots": self.book.counters.snapshots,
                     "resyncs": self.resyncs},
            "counters": {"messages": counters.messages, "updates": counters.updates, "corrupt": counters.corrupt,
                         "future_rejected": counters.future_rejected, "backwards": counters.backwards,
                         "abnormal_price": counters.abnormal_price, "stalls": counters.stalls,
                         "pong_timeouts": self.pong_timeouts, "disconnects": counters.disconnects,
                         "connects": counters.connects, "stale_periods": counters.stale_periods,
                         "liquidations": self.liquidations, "prices_forwarded": self.prices_forwarded},
            "disconnect_detect_ms": None if self.last_disconnect_detect_ms is None
            else round(self.last_disconnect_detect_ms, 3),
        }

    def status_details(self) -> dict[str, Any]:
        """Plain attribute reads only (called from another thread)."""
        details = dict(self._details)
        details["reconnect"] = {**details.get("reconnect", {}), "attempts": self.attempts,
                                "connect_failures": self.connect_failures, "failures": self.reconnects.failures,
                                "reduced": self.reconnects.reduced}
        last = self._last_update_wall
        details["data_age_ms"] = None if last is None else round((self.clock() - last) * 1000.0, 1)
        return details


__all__ = [
    "BookTop",
    "FeedActor",
    "FeedState",
    "FeedTimings",
    "PriceUpdate",
    "ReportFeedState",
    "ResyncBook",
    "feed_node_id",
]
