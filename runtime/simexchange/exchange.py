"""``SimExchange``: the simulated Binance USD-M futures venue, wired and runnable in-process.

Owns the pieces and their threads: the matching engine (state), the fault
board, the REST+admin HTTP server (one thread per connection) and the
WebSocket server (one asyncio thread, which also runs the market ticker and
the mark-price ticker). ``start()`` returns once both listen on 127.0.0.1
(free ports unless given); ``stop()`` closes both and joins their threads.

Everything an admin HTTP call can do has a method here, so in-process tests
need no HTTP for control, and chaos tests in another process use ``/admin``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from runtime.logging import log_event
from runtime.simexchange import userdata
from runtime.simexchange.deferred import Deferred
from runtime.simexchange.faults import FaultBoard
from runtime.simexchange.listenkeys import DEFAULT_TTL_S, ListenKeys
from runtime.simexchange.market import SymbolSpec
from runtime.simexchange.matching import MatchingEngine, build_markets
from runtime.simexchange.rest import AdminRouter, FapiRouter, Route, SimHTTPServer, WeightWindow
from runtime.simexchange.wsserver import USER_KEY, StreamServer


DEFAULT_API_KEY = "warden-sim-key"
DEFAULT_API_SECRET = "warden-sim-secret-not-for-production"
LISTEN_KEY_CHECK_S = 0.1


class SimExchange:
    """A venue on localhost: real HTTP, real WebSocket, deterministic given ``seed``, with fault controls."""

    def __init__(
        self,
        symbols: Iterable[str] = ("BTCUSDT",),
        start_prices: Mapping[str, float] | None = None,
        seed: int = 0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ws_port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        extra_keys: Mapping[str, str] | None = None,
        depth_interval_s: float = 0.1,
        mark_interval_s: float = 1.0,
        volatility: float = 0.0005,
        book_levels: int = 20,
        weight_limit: int = 2400,
        balance: float = 100_000.0,
        leverage: int = 20,
        funding_rate: float = 0.0001,
        liquidation_rate: float = 0.02,
        ping_interval_s: float | None = None,
        symbol_specs: Mapping[str, SymbolSpec] | None = None,
        listen_key_ttl_s: float = DEFAULT_TTL_S,
    ) -> None:
        symbols = [s.upper() for s in symbols]
        if not symbols:
            raise ValueError("SimExchange needs at least one symbol")
        unknown = set(start_prices or {}) - set(symbols)
        if unknown:
            raise ValueError(f"start_prices names symbols not traded here: {sorted(unknown)}")
        _check_interval("depth_interval_s", depth_interval_s)
        _check_interval("mark_interval_s", mark_interval_s)
        self.symbols = symbols
        self.seed = seed
        self.host = host
        self.api_key = api_key
        self.api_secret = api_secret
        self.depth_interval_s = depth_interval_s
        self.mark_interval_s = mark_interval_s
        self.faults = FaultBoard()
        markets = build_markets(symbols, start_prices or {}, seed, volatility=volatility, levels=book_levels,
                                funding_rate=funding_rate, liquidation_rate=liquidation_rate, specs=symbol_specs)
        self.deferred = Deferred()
        self.engine = MatchingEngine(markets, balance=balance, leverage=leverage, now_ms=self.now_ms,
                                     defer=self.deferred.call_later)
        self.weights = WeightWindow(weight_limit)
        self.listen_keys = ListenKeys(listen_key_ttl_s)
        self._keys = {api_key: api_secret, **(extra_keys or {})}
        self._requested_ports = (port, ws_port)
        self._http: SimHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self._ws = StreamServer(symbols, self.faults, host=host, port=ws_port, ping_interval_s=ping_interval_s,
                                listen_key_valid=self.listen_keys.valid)
        self.faults.add_listener(self._on_fault)
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> SimExchange:
        """Listen on REST and WebSocket ports and start the tickers; returns self."""
        if self._started:
            return self
        self._ws.start()
        self.engine.emit = self._ws.publish
        self.engine.user_emit = lambda event: self._ws.publish(USER_KEY, event)
        keys = self.listen_keys
        listen_key_routes = {
            ("POST", "/fapi/v1/listenKey"): Route(lambda e, p: keys.create(), signed=False, key_only=True),
            ("PUT", "/fapi/v1/listenKey"): Route(lambda e, p: keys.keepalive(), signed=False, key_only=True),
            ("DELETE", "/fapi/v1/listenKey"): Route(lambda e, p: keys.delete(), signed=False, key_only=True),
        }
        fapi = FapiRouter(self.engine, self.faults, self.weights, self._keys, self.deferred.call_later,
                          listen_key_routes)
        try:
            self._http = SimHTTPServer((self.host, self._requested_ports[0]), fapi, AdminRouter(self))
        except OSError:
            self._ws.stop()
            raise
        self._http_thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05},
                                             name="simexchange-http", daemon=True)
        self._http_thread.start()
        self._ws.every(lambda: self.depth_interval_s, self.engine.step, "market-ticker")
        self._ws.every(lambda: self.mark_interval_s, self.engine.mark, "mark-ticker")
        self._ws.every(lambda: LISTEN_KEY_CHECK_S, self._expire_listen_keys, "listen-key-expiry")
        self._started = True
        log_event("simexchange", "simexchange_started",
                  details={"rest_url": self.rest_url, "ws_url": self.ws_url, "symbols": self.symbols})
        return self

    def stop(self) -> None:
        """Stop serving (idempotent). Held replies in flight are abandoned."""
        if not self._started:
            return
        self._started = False
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._http_thread is not None:
            self._http_thread.join(5.0)
        self.deferred.stop()
        self._ws.stop()
        log_event("simexchange", "simexchange_stopped")

    def __enter__(self) -> SimExchange:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def rest_url(self) -> str:
        """``http://127.0.0.1:<port>`` (the ``/fapi`` base)."""
        self._require_started()
        return f"http://{self.host}:{self._http.server_address[1]}"  # type: ignore[union-attr]

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:<port>`` (append ``/stream?streams=...`` or ``/ws/<stream>``)."""
        self._require_started()
        return f"ws://{self.host}:{self._ws.port}"

    @property
    def admin_url(self) -> str:
        """``http://127.0.0.1:<port>/admin`` (same server as REST, never faulted)."""
        return f"{self.rest_url}/admin"

    # -- clock --------------------------------------------------------------------------------

    def now_ms(self) -> int:
        """The exchange's clock: wall time plus any ``clock_skew`` fault."""
        skew = self.faults.peek("clock_skew")
        return int(time.time() * 1000) + (skew.params["ms"] if skew else 0)

    # -- control (same as /admin) ----------------------------------------------------------

    def set_fault(self, name: str, *, on: bool = True, count: int | None = None, duration_s: float | None = None,
                  **params: Any) -> dict[str, Any] | None:
        """Switch a fault on/off (see ``faults.FAULTS`` or ``--help``); raises ``FaultError`` on bad input."""
        return self.faults.set(name, on=on, count=count, duration_s=duration_s, **params)

    def clear_faults(self, name: str | None = None) -> None:
        self.faults.clear(name)

    def set_price(self, symbol: str, price: float) -> Decimal:
        """Move the price now; resting orders and stops react immediately, the book on the next tick."""
        return self.engine.set_price(symbol.upper(), price)

    def spike_price(self, symbol: str | None, pct: float) -> dict[str, str]:
        """Move the price by ``pct`` percent (one symbol, or all when None)."""
        return self.engine.spike(symbol.upper() if symbol else None, pct)

    def script_prices(self, symbol: str, prices: list[float]) -> None:
        """Follow these prices, one per market tick, then resume the random walk."""
        self.engine.script(symbol.upper(), prices)

    def price(self, symbol: str) -> Decimal:
        return self.engine.price(symbol.upper())

    def configure_market(self, *, paused: bool | None = None, volatility: float | None = None,
                         depth_interval_s: float | None = None, mark_interval_s: float | None = None) -> dict:
        """Pause/resume the market (no walk, no book changes), change volatility or stream rates."""
        with self.engine.lock:
            if paused is not None:
                if not isinstance(paused, bool):
                    raise ValueError(f"'paused' must be true or false, got {paused!r}")
                self.engine.paused = paused
            if volatility is not None:
                if not isinstance(volatility, (int, float)) or volatility < 0:
                    raise ValueError(f"'volatility' must be a number >= 0, got {volatility!r}")
                for market in self.engine.markets.values():
                    market.volatility = float(volatility)
        if depth_interval_s is not None:
            _check_interval("depth_interval_s", depth_interval_s)
            self.depth_interval_s = float(depth_interval_s)
        if mark_interval_s is not None:
            _check_interval("mark_interval_s", mark_interval_s)
            self.mark_interval_s = float(mark_interval_s)
        return {"paused": self.engine.paused, "depth_interval_s": self.depth_interval_s,
                "mark_interval_s": self.mark_interval_s}

    def pause_market(self) -> None:
        self.configure_market(paused=True)

    def resume_market(self) -> None:
        self.configure_market(paused=False)

    def expire_listen_key(self) -> str | None:
        """Expire the active listenKey now (its sockets get ``listenKeyExpired``); returns it."""
        key = self.listen_keys.expire_now()
        self._expire_listen_keys()
        return key

    def emit_liquidation(self, symbol: str, side: str, quantity: float, price: float | None = None) -> dict:
        """Publish one forceOrder event."""
        return self.engine.liquidation(symbol.upper(), side.upper(), quantity, price)

    def reset(self) -> None:
        """Orders, positions, ledger, faults and weight forgotten; prices back to start."""
        self.faults.clear()
        self.weights.reset()
        self.deferred.cancel_all()
        self.engine.reset()

    # -- inspection ---------------------------------------------------------------------------

    def ledger(self, client_order_id: str | None = None) -> list[dict[str, Any]]:
        """Every order request received (place/cancel, plain and algo) and every stop trigger, in order."""
        return self.engine.ledger(client_order_id)

    def book_snapshot(self, symbol: str, limit: int | None = None) -> dict[str, Any]:
        """``{"lastUpdateId", "bids", "asks"}`` of the exchange's book right now (all levels by default)."""
        return self.engine.book_snapshot(symbol.upper(), limit)

    def position(self, symbol: str) -> dict[str, Any]:
        """positionRisk entry for ``symbol``."""
        return self.engine.position(symbol.upper())

    def state(self) -> dict[str, Any]:
        """Prices, books, positions, counts, active faults, sockets (``GET /admin/state``)."""
        state = self.engine.state()
        state.update(faults=self.faults.snapshot(), ws_connections=self._ws.connection_count(),
                     ws_frames_sent=self._ws.frames_sent,
                     depth_interval_s=self.depth_interval_s, mark_interval_s=self.mark_interval_s)
        if self._started:
            state.update(rest_url=self.rest_url, ws_url=self.ws_url)
        return state

    # -- internals -------------------------------------------------------------------------------

    def _on_fault(self, name: str, params: dict[str, Any], on: bool) -> None:
        log_event("simexchange", "fault", details={"name": name, "on": on, **params})
        if not on:
            return
        if name == "ws_drop":
            self._ws.drop_all(params["abrupt"])
        elif name == "price_spike":
            self.engine.spike(params["symbol"].upper() if params["symbol"] else None, params["pct"])

    def _expire_listen_keys(self) -> None:
        for key in self.listen_keys.expired():
            self._ws.expire_listen_key(key, userdata.listen_key_expired(key, self.now_ms()))

    def _require_started(self) -> None:
        if not self._started or self._http is None:
            raise RuntimeError("SimExchange is not started; call start() or use it as a context manager")


def _check_interval(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.001 <= value <= 60:
        raise ValueError(f"{name} must be a number of seconds in [0.001, 60], got {value!r}")
