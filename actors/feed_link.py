"""The feed actor's bookkeeping for one of its two connections (route ``public`` or ``market``).

DESIGN §4: depth is served on ``<ws_url>/public``, mark price, trades and liquidations on
``<ws_url>/market``; a root connection gets the /market streams silently withheld. So each
``feed:<S>`` holds one connection per route, and each has its own heartbeat (ping/pong and
the tracker's no-message timeout), its own reconnect schedule (F7) and its own health
(``FeedHealthTracker``); the feed folds the two healths into the worst.

Owned by the actor thread: plain state plus the current ``FeedSocket``; no timers, no
telling. ``status_details`` reads ``details`` from other threads (plain reads only).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

import pykka

from actors.core.feed_health import CorruptRate, FeedHealthConfig, FeedHealthTracker
from actors.core.reconnect import ReconnectConfig, ReconnectSchedule
from actors.feed_frames import FrameDecoder
from actors.feed_socket import FeedSocket, SocketTimings
from runtime.venue.ws import market_streams, routed_stream_urls

PUBLIC = "public"
MARKET = "market"
ROUTES = (PUBLIC, MARKET)


class FeedLink:
    """One route's connection state: socket, connection number, schedule, tracker, counters."""

    def __init__(self, symbol: str, route: str, ws_url: str, health: FeedHealthConfig, corrupt_rate: CorruptRate,
                 reconnect: ReconnectConfig | None, rand: Callable[[], float]) -> None:
        self.route = route
        self.decoder = FrameDecoder(symbol, route)  # refuses a route other than public / market
        # depth on <ws_url>/public; mark price, trades, liquidations on <ws_url>/market
        self.url = routed_stream_urls(ws_url, market_streams(symbol))[f"/{route}"]
        self.tracker = FeedHealthTracker(symbol, health, corrupt_rate)
        self.reconnects = ReconnectSchedule(reconnect, rand=rand)
        self.socket: FeedSocket | None = None
        self.conn = 0  # number of the current connection attempt; older ones' messages are ignored
        self.connected = False
        self.epoch = 0  # reconnect timer generation
        self.reconnect_timer: int | None = None
        self.attempts = 0
        self.connect_failures = 0
        self.pong_timeouts = 0
        self.last_connect_error: str | None = None
        self.last_disconnect_detect_ms: float | None = None
        self.last_update_wall: float | None = None
        self.reconnect_log: deque[dict[str, Any]] = deque(maxlen=20)

    def current(self, conn: int) -> bool:
        """A socket message is from this link's current connection attempt."""
        return conn == self.conn

    def open(self, ref: pykka.ActorRef[Any], timings: SocketTimings, clock: Callable[[], float]) -> None:
        """Start a new connection attempt (closing any previous one)."""
        self.close()
        self.conn += 1
        self.connected = False
        self.attempts += 1
        self.socket = FeedSocket(self.route, self.conn, self.url, self.decoder, ref, timings, clock)
        self.socket.start()

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None

    def pong_overdue(self, mono: float, heartbeat_timeout: float) -> float | None:
        """Seconds since an unanswered ping, when that exceeds ``heartbeat_timeout`` (F8); else None."""
        sock = self.socket
        if sock is None or not self.connected:
            return None
        ping, pong = sock.last_ping, sock.last_pong
        if ping is None or pong is None or pong >= ping or mono - ping <= heartbeat_timeout:
            return None
        return mono - ping

    def details(self, now: float) -> dict[str, Any]:
        """This connection in the status tree."""
        health = self.tracker.health(now)
        counters = health.counters
        return {
            "url": self.url,
            "status": health.status.value,
            "since": health.since,
            "reasons": list(health.reasons),
            "connected": self.connected,
            "conn": self.conn,
            "data_age_ms": None if health.data_age is None else round(health.data_age * 1000.0, 1),
            "corrupt_rate": round(health.corrupt_rate, 4),
            "reconnect": {"attempts": self.attempts, "connect_failures": self.connect_failures,
                          "failures": self.reconnects.failures, "reduced": self.reconnects.reduced,
                          "last_error": self.last_connect_error, "recent": list(self.reconnect_log)[-5:]},
            "counters": {"messages": counters.messages, "updates": counters.updates, "corrupt": counters.corrupt,
                         "stalls": counters.stalls, "pong_timeouts": self.pong_timeouts,
                         "disconnects": counters.disconnects, "connects": counters.connects,
                         "stale_periods": counters.stale_periods},
            "disconnect_detect_ms": None if self.last_disconnect_detect_ms is None
            else round(self.last_disconnect_detect_ms, 3),
        }


__all__ = ["MARKET", "PUBLIC", "ROUTES", "FeedLink"]
