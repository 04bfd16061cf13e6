"""``UserDataStream``: the account's user-data stream on ``<ws_url>/private/ws/<listenKey>``.

Interface (for the execution engine, which wires it; DESIGN §4, F29, F30)::

    stream = UserDataStream(connector, ws_url,
                            on_order_update=engine.on_order_update,      # OrderUpdate
                            on_algo_update=engine.on_algo_update,        # AlgoUpdate (optional)
                            on_account_update=engine.on_account_update,  # AccountUpdate (optional)
                            on_reconnect=engine.reconcile,               # () after EVERY (re)connect
                            keepalive_s=30 * 60)
    stream.start()      # returns at once; the stream runs on its own daemon thread
    ...
    stream.stop()       # closes the socket, DELETEs the listenKey, joins the thread (bounded)
    stream.stats()      # {"connected", "connects", "frames", "malformed", "last_malformed", ...}

The thread: creates the listenKey through the connector (POST /fapi/v1/listenKey),
connects, checks the key with a PUT (a socket on a key the venue no longer knows is
accepted and stays silent forever: Binance sends ``listenKeyExpired`` only for a key
that expires while connected, so -1125 here is the only sign; it is alerted and the
stream starts over with a new key), calls ``on_reconnect()``, then delivers each event
to its callback in the order the venue sent them. It PUTs the key every ``keepalive_s`` (Binance:
a key lives 60 minutes after the last POST/PUT). On ``listenKeyExpired``, a
failed keepalive (-1125), a close or any socket error it drops the socket and
starts over with a NEW key after a backoff (``backoff_s``, growing, with jitter,
reset once a connection has lived ``stable_after_s``), forever until ``stop()``.

What it must never do:
- block the caller: ``start``/``stop`` return within their bounds; callbacks run
  on the stream's thread, so they must be quick (hand the event to an actor).
- lose the gap silently: events sent while disconnected are not replayed by the
  venue, which is why ``on_reconnect`` fires after every connect; the engine
  reconciles (lookups by client id, positions) there.
- die on bad input: a malformed frame is dropped, counted and logged with the
  reason; a callback that raises is logged and the stream goes on.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import websocket

from runtime.logging import log_event
from runtime.venue.connector import BinanceFuturesConnector
from runtime.venue.user_events import (
    AccountUpdate,
    AlgoUpdate,
    ListenKeyExpired,
    OrderUpdate,
    parse_user_frame,
)
from runtime.venue.ws import MalformedMessage, user_stream_url


DEFAULT_KEEPALIVE_S = 30 * 60.0
DEFAULT_BACKOFF_S = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
RECV_POLL_S = 0.2
LISTEN_KEY_UNKNOWN = -1125  # "This listenKey does not exist."  # how often the thread looks at stop / keepalive while the socket is quiet


class UserDataStream:
    """One /private connection for one account; see the module docstring for the contract."""

    def __init__(
        self,
        connector: BinanceFuturesConnector,
        ws_url: str,
        *,
        on_order_update: Callable[[OrderUpdate], None],
        on_algo_update: Callable[[AlgoUpdate], None] | None = None,
        on_account_update: Callable[[AccountUpdate], None] | None = None,
        on_reconnect: Callable[[], None] | None = None,
        keepalive_s: float = DEFAULT_KEEPALIVE_S,
        backoff_s: Sequence[float] = DEFAULT_BACKOFF_S,
        stable_after_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if keepalive_s <= 0:
            raise ValueError(f"keepalive_s must be > 0, got {keepalive_s!r}")
        if not backoff_s or any(b < 0 for b in backoff_s):
            raise ValueError(f"backoff_s must be a non-empty list of delays >= 0, got {backoff_s!r}")
        if not ws_url.startswith(("ws://", "wss://")):
            raise ValueError(f"ws_url must be a ws(s) URL, got {ws_url!r}")
        self.connector = connector
        self.ws_url = ws_url
        self.keepalive_s = keepalive_s
        self.backoff_s = tuple(backoff_s)
        self.stable_after_s = stable_after_s
        self.connect_timeout_s = connect_timeout_s
        self._clock = clock
        self._on_order = on_order_update
        self._on_algo = on_algo_update
        self._on_account = on_account_update
        self._on_reconnect = on_reconnect
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ws: websocket.WebSocket | None = None
        self._lock = threading.Lock()
        self._stats: dict[str, Any] = {"connected": False, "connects": 0, "frames": 0, "events": 0,
                                       "malformed": 0, "last_malformed": None, "callback_errors": 0,
                                       "keepalives": 0, "listen_key_expired": 0, "listen_key_invalid": 0,
                                       "last_error": None}

    # -- caller side ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the stream thread; returns at once."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="user-data-stream", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop: close the socket, end the listenKey, join the thread (at most ``timeout_s``)."""
        self._stop.set()
        with self._lock:
            ws = self._ws
        if ws is not None:
            try:
                ws.abort()  # unblocks a recv in progress
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def connected(self) -> bool:
        return bool(self._stats["connected"])

    def stats(self) -> dict[str, Any]:
        """Counters for health and the status tree (a copy)."""
        with self._lock:
            return dict(self._stats)

    # -- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            started = self._clock()
            self._session()
            if self._stop.is_set():
                break
            attempt = 0 if self._clock() - started >= self.stable_after_s else attempt + 1
            delay = self.backoff_s[min(attempt, len(self.backoff_s) - 1)]
            self._stop.wait(delay * random.uniform(0.8, 1.2))
        self._close_listen_key()

    def _session(self) -> None:
        """One listenKey and one connection, until it ends for any reason."""
        created = self.connector.create_listen_key()
        if not created.ok:
            self._note_error(f"listenKey not created: {created.describe()}")
            return
        key: str = created.data
        try:
            ws = websocket.create_connection(user_stream_url(self.ws_url, key), timeout=self.connect_timeout_s)
        except (websocket.WebSocketException, OSError) as exc:
            self._note_error(f"connect failed: {type(exc).__name__}: {exc}")
            return
        ws.settimeout(RECV_POLL_S)
        if not self._key_alive():
            ws.close(timeout=0.5)
            return
        with self._lock:
            self._ws = ws
            self._stats["connected"] = True
            self._stats["connects"] += 1
        log_event("user_stream", "user_stream_connected", details={"connects": self._stats["connects"]})
        try:
            self._call(self._on_reconnect)
            self._read(ws)
        finally:
            with self._lock:
                self._ws = None
                self._stats["connected"] = False
            try:
                ws.close(timeout=0.5)
            except Exception:  # noqa: BLE001 - the socket may already be gone
                pass

    def _key_alive(self) -> bool:
        """PUT the key just connected with; False (alerted or noted) when the venue does not know it."""
        kept = self.connector.keepalive_listen_key()
        self._bump("keepalives")
        if kept.ok:
            return True
        if kept.code == LISTEN_KEY_UNKNOWN:
            self._bump("listen_key_invalid")
            log_event("user_stream", "alert_listen_key_invalid", details={"outcome": kept.describe()},
                      action_taken="socket dropped; a new listenKey and a new connection", level="ERROR")
        else:
            self._note_error(f"listenKey check failed: {kept.describe()}")
        return False

    def _read(self, ws: websocket.WebSocket) -> None:
        next_keepalive = self._clock() + self.keepalive_s
        while not self._stop.is_set():
            if self._clock() >= next_keepalive:
                kept = self.connector.keepalive_listen_key()
                self._bump("keepalives")
                if not kept.ok:
                    self._note_error(f"listenKey keepalive failed: {kept.describe()}")
                    return
                next_keepalive = self._clock() + self.keepalive_s
            try:
                frame = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketException, OSError) as exc:
                if not self._stop.is_set():
                    self._note_error(f"socket lost: {type(exc).__name__}: {exc}")
                return
            if not frame:
                self._note_error("socket closed by the venue")
                return
            if self._deliver(frame) == "expired":
                return

    def _deliver(self, frame: str | bytes) -> str | None:
        self._bump("frames")
        try:
            event = parse_user_frame(frame)
        except MalformedMessage as exc:
            with self._lock:
                self._stats["malformed"] += 1
                self._stats["last_malformed"] = str(exc)
            log_event("user_stream", "user_stream_malformed", details={"reason": str(exc)},
                      action_taken="dropped and counted", level="WARNING")
            return None
        if isinstance(event, ListenKeyExpired):
            self._bump("listen_key_expired")
            log_event("user_stream", "user_stream_listen_key_expired",
                      action_taken="reconnecting with a new listenKey", level="WARNING")
            return "expired"
        if event is not None:
            self._bump("events")
        if isinstance(event, OrderUpdate):
            self._call(self._on_order, event)
        elif isinstance(event, AlgoUpdate):
            self._call(self._on_algo, event)
        elif isinstance(event, AccountUpdate):
            self._call(self._on_account, event)
        return None

    def _call(self, callback: Callable[..., None] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception as exc:  # a callback bug must not end the stream
            self._bump("callback_errors")
            log_event("user_stream", "user_stream_callback_error", level="ERROR", exc=exc)

    def _close_listen_key(self) -> None:
        outcome = self.connector.close_listen_key()
        if not outcome.ok:
            log_event("user_stream", "user_stream_close", details={"outcome": outcome.describe()}, level="DEBUG")

    def _bump(self, name: str) -> None:
        with self._lock:
            self._stats[name] += 1

    def _note_error(self, what: str) -> None:
        with self._lock:
            self._stats["last_error"] = what
        log_event("user_stream", "user_stream_interrupted", details={"what": what},
                  action_taken="reconnecting with backoff", level="WARNING")
