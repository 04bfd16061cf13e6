"""REST connector for the Binance USD-M futures protocol; every call returns one ``VenueOutcome``.

One ``requests.Session`` (pooled keep-alive connections, no automatic retries:
a silently re-sent POST is a duplicate order), explicit timeouts on every call,
signed with the server-time offset, paced by the request budget.

What this module must never do:
- retry on its own. Retrying is the execution engine's decision (F1/F2), made on
  the outcome kind, with the same client order id. The one automatic action is a
  clock resync after -1021, which sends no order.
- log a secret. The API secret lives only in ``_secret`` and is used only to
  sign; the API key travels only in the ``X-MBX-APIKEY`` header. Logs name the
  endpoint, the client id and the outcome, never the query string or headers.
- parse HTTP codes above itself: that is ``outcomes.classify``.

Blocking: every method blocks the calling thread for at most ``timeout_s`` per
request (plus a clock resync after -1021). Call it from the execution engine's
worker, never from an actor that must stay responsive.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from runtime.logging import log_event
from runtime.venue.budget import Priority, RequestBudget, WeightBudget, request_weight
from runtime.venue.clock import ServerClock
from runtime.venue.filters import SymbolFilters, parse_exchange_info
from runtime.venue.ids import validate_client_order_id
from runtime.venue.models import Position, parse_depth, parse_order_list, parse_positions, parse_server_time
from runtime.venue.outcomes import (
    Expect,
    MalformedReply,
    OutcomeKind,
    VenueOutcome,
    classify,
    classify_exception,
    malformed,
    parse_used_weight,
)
from runtime.venue.signing import ParamValue, encode_params, signed_query


SIDES = frozenset({"BUY", "SELL"})
DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
LISTEN_KEY_PATH = "/fapi/v1/listenKey"
Number = Decimal | float | int | str


class BinanceFuturesConnector:
    """Speaks ``/fapi`` for one account. Thread-safe enough for a few worker threads
    (requests.Session pools per host; the budget and clock lock internally)."""

    def __init__(
        self,
        rest_url: str,
        api_key: str,
        api_secret: str,
        *,
        recv_window_ms: int = 5000,
        timeout_s: float = 2.0,
        session: requests.Session | None = None,
        clock: ServerClock | None = None,
        budget: RequestBudget | None = None,
        pool_size: int = 8,
    ) -> None:
        if not rest_url.startswith(("http://", "https://")):
            raise ValueError(f"rest_url must be an http(s) URL, got {rest_url!r}")
        if not api_key or not api_secret:
            raise ValueError("api_key and api_secret must be non-empty")
        if not 0 < recv_window_ms <= 60000:
            raise ValueError(f"recv_window_ms must be in (0, 60000], got {recv_window_ms}")
        self.rest_url = rest_url.rstrip("/")
        self._api_key = api_key
        self._secret = api_secret
        self.recv_window_ms = recv_window_ms
        self.timeout_s = timeout_s
        self.clock = clock or ServerClock()
        self.budget: RequestBudget = budget or WeightBudget()
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self._session = session
        self._filters: dict[str, SymbolFilters] | None = None

    def __repr__(self) -> str:
        return f"BinanceFuturesConnector({self.rest_url!r}, api_key=<redacted>)"

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()

    # -- time --------------------------------------------------------------------

    def server_time(self, *, priority: Priority = Priority.EXIT) -> VenueOutcome:
        """GET /fapi/v1/time; on success ``data`` is the venue's ms time and the clock is resynced."""
        sent_at = self.clock.local_ms()
        outcome = self._call("GET", "/fapi/v1/time", {}, signed=False, priority=priority)
        received_at = self.clock.local_ms()
        if not outcome.ok:
            return outcome
        try:
            server_ms = parse_server_time(outcome.data)
        except MalformedReply as exc:
            return malformed(str(exc), mutating=False, http_status=outcome.http_status)
        sample = self.clock.observe(server_ms, sent_at, received_at)
        log_event("venue", "clock_sync", details={"offset_ms": round(sample.offset_ms, 1),
                                                 "rtt_ms": round(sample.rtt_ms, 1)}, level="DEBUG")
        return _with_data(outcome, server_ms)

    sync_clock = server_time

    # -- symbol filters ------------------------------------------------------------

    def load_exchange_info(self, *, priority: Priority = Priority.EXIT) -> VenueOutcome:
        """GET /fapi/v1/exchangeInfo; on success ``data`` is ``{symbol: SymbolFilters}``, kept for sending."""
        outcome = self._read("/fapi/v1/exchangeInfo", {}, parse_exchange_info, priority, signed=False)
        if outcome.ok:
            self._filters = outcome.data
        return outcome

    def symbol_filters(self, symbol: str) -> SymbolFilters | None:
        """The loaded filters of ``symbol`` (None until exchangeInfo is loaded, or if not traded)."""
        return (self._filters or {}).get(symbol.upper())

    def _shape(self, symbol: str, quantity: Decimal | None, price: Decimal | None, *, market: bool,
               reduce_only: bool, reference_price: Decimal | None, client_order_id: str,
               priority: Priority) -> tuple[Decimal | None, Decimal | None] | VenueOutcome:
        """Round to the symbol's filters and check them; a local REJECTED_PERMANENT if the venue would refuse.

        The node loads exchangeInfo at start; if the venue could not answer then, it is loaded here
        at the first order, and if that fails too the order goes out as given (the venue still
        checks) and the next order tries again.
        """
        if self._filters is None and not self.load_exchange_info(priority=priority).ok:
            log_event("venue", "filters_unavailable", details={"client_order_id": client_order_id}, level="WARNING")
            return quantity, price
        filters = self.symbol_filters(symbol)
        if filters is None:
            return _local_reject(client_order_id, f"{symbol} is not a TRADING symbol in exchangeInfo")
        qty = None if quantity is None else filters.round_qty(quantity, market=market)
        rounded = None if price is None else filters.round_price(price)
        if qty is not None:
            reason = filters.check(qty, rounded if rounded is not None else reference_price, market=market,
                                   reduce_only=reduce_only)
            if reason is not None:
                return _local_reject(client_order_id, reason)
        return qty, rounded

    # -- orders ------------------------------------------------------------------

    def place_order(
        self,
        symbol: str,
        side: str,
        type: str,  # noqa: A002 - the protocol's word
        quantity: Number,
        client_order_id: str,
        *,
        price: Number | None = None,
        reduce_only: bool = False,
        time_in_force: str = "GTC",
        reference_price: Number | None = None,
        priority: Priority = Priority.ENTRY,
    ) -> VenueOutcome:
        """POST /fapi/v1/order (MARKET or LIMIT). FILLED / ACCEPTED / a reject / UNKNOWN.

        Quantity is rounded DOWN to the symbol's step and price to its tick before
        sending; an order the filters refuse (quantity bounds, MIN_NOTIONAL with
        ``price`` or, for MARKET, ``reference_price``) is not sent: REJECTED_PERMANENT,
        ``sent=False``. Conditional types (STOP_MARKET, ...) belong on ``place_stop``;
        sent here the venue answers -4120 (REJECTED_PERMANENT).
        """
        validate_client_order_id(client_order_id)
        if price is None and type.upper() == "LIMIT":
            raise ValueError("LIMIT order needs a price")
        shaped = self._shape(
            _symbol(symbol), _positive(quantity, "quantity"), None if price is None else _positive(price, "price"),
            market=type.upper() == "MARKET", reduce_only=reduce_only, client_order_id=client_order_id,
            reference_price=None if reference_price is None else _positive(reference_price, "reference_price"),
            priority=priority)
        if isinstance(shaped, VenueOutcome):
            return shaped
        qty, rounded_price = shaped
        params: dict[str, ParamValue] = {
            "symbol": _symbol(symbol),
            "side": _side(side),
            "type": type.upper(),
            "quantity": qty,  # type: ignore[dict-item] - never None for a plain order
            "newClientOrderId": client_order_id,
            "newOrderRespType": "RESULT",
        }
        if rounded_price is not None:
            params["price"] = rounded_price
            params["timeInForce"] = time_in_force
        if reduce_only:
            params["reduceOnly"] = True
        return self._call("POST", "/fapi/v1/order", params, mutating=True, expect=Expect.ORDER,
                          client_order_id=client_order_id, priority=priority)

    def query_order(self, symbol: str, client_order_id: str, *, priority: Priority = Priority.EXIT) -> VenueOutcome:
        """GET /fapi/v1/order by client id: FILLED / ACCEPTED (see ``order_status``) / NOT_FOUND."""
        validate_client_order_id(client_order_id)
        params = {"symbol": _symbol(symbol), "origClientOrderId": client_order_id}
        return self._call("GET", "/fapi/v1/order", params, expect=Expect.ORDER,
                          client_order_id=client_order_id, priority=priority)

    def cancel_order(self, symbol: str, client_order_id: str, *, priority: Priority = Priority.EXIT) -> VenueOutcome:
        """DELETE /fapi/v1/order by client id: ACCEPTED (status CANCELED) / NOT_FOUND / UNKNOWN."""
        validate_client_order_id(client_order_id)
        params = {"symbol": _symbol(symbol), "origClientOrderId": client_order_id}
        return self._call("DELETE", "/fapi/v1/order", params, mutating=True, expect=Expect.ORDER,
                          client_order_id=client_order_id, priority=priority)

    def open_orders(self, symbol: str | None = None, *, priority: Priority = Priority.ENTRY) -> VenueOutcome:
        """GET /fapi/v1/openOrders; ``data`` is a list of order dicts."""
        params = {"symbol": _symbol(symbol)} if symbol else {}
        return self._read("/fapi/v1/openOrders", params, parse_order_list, priority)

    def positions(self, symbol: str | None = None, *, priority: Priority = Priority.ENTRY) -> VenueOutcome:
        """GET /fapi/v3/positionRisk; ``data`` is a list of ``Position``.

        v3 lists only symbols with a position or an open order; a requested ``symbol``
        it leaves out is flat, so it comes back as a zero ``Position``.
        """
        params = {"symbol": _symbol(symbol)} if symbol else {}
        outcome = self._read("/fapi/v3/positionRisk", params, parse_positions, priority)
        if outcome.ok and symbol and not any(p.symbol == params["symbol"] for p in outcome.data):
            flat = Position(params["symbol"], Decimal(0), Decimal(0), Decimal(0), Decimal(0))
            return _with_data(outcome, [*outcome.data, flat])
        return outcome

    def account(self, *, priority: Priority = Priority.BACKGROUND) -> VenueOutcome:
        """GET /fapi/v3/account; ``data`` is the venue's account object (totals, assets, positions)."""
        return self._read("/fapi/v3/account", {}, _reply_of(dict, "account"), priority)

    def balances(self, *, priority: Priority = Priority.BACKGROUND) -> VenueOutcome:
        """GET /fapi/v3/balance; ``data`` is the list of asset balances."""
        return self._read("/fapi/v3/balance", {}, _reply_of(list, "balance"), priority)

    def leverage_brackets(self, symbol: str, *, priority: Priority = Priority.BACKGROUND) -> VenueOutcome:
        """GET /fapi/v1/leverageBracket for one symbol; ``data`` is its bracket object."""
        return self._read("/fapi/v1/leverageBracket", {"symbol": _symbol(symbol)}, _reply_of(dict, "leverageBracket"),
                          priority)

    def depth(self, symbol: str, limit: int = 1000, *, priority: Priority = Priority.BACKGROUND) -> VenueOutcome:
        """GET /fapi/v1/depth (unsigned); ``data`` is a ``DepthSnapshot``."""
        if limit not in DEPTH_LIMITS:
            raise ValueError(f"depth limit must be one of {DEPTH_LIMITS}, got {limit}")
        params = {"symbol": _symbol(symbol), "limit": limit}
        return self._read("/fapi/v1/depth", params, parse_depth, priority, signed=False)

    # -- exchange-side stops (algo orders) -----------------------------------------

    def place_stop(
        self,
        symbol: str,
        side: str,
        stop_price: Number,
        quantity: Number | None,
        client_order_id: str,
        close_position: bool = False,
        *,
        reduce_only: bool = True,
        working_type: str = "CONTRACT_PRICE",
        priority: Priority = Priority.STOP,
    ) -> VenueOutcome:
        """POST /fapi/v1/algoOrder: a STOP_MARKET held by the venue (survives our crash).

        ``close_position=True`` closes whatever position exists when it triggers
        (no quantity, no reduceOnly, as the protocol requires).
        """
        validate_client_order_id(client_order_id)
        if not close_position and quantity is None:
            raise ValueError("place_stop needs a quantity unless close_position=True")
        shaped = self._shape(_symbol(symbol), None if close_position else _positive(quantity, "quantity"),
                             _positive(stop_price, "stop_price"), market=True, reduce_only=True,
                             reference_price=None, client_order_id=client_order_id, priority=priority)
        if isinstance(shaped, VenueOutcome):
            return shaped
        qty, trigger = shaped
        params: dict[str, ParamValue] = {
            "algoType": "CONDITIONAL",
            "symbol": _symbol(symbol),
            "side": _side(side),
            "type": "STOP_MARKET",
            "triggerPrice": trigger,  # type: ignore[dict-item] - a stop always has one
            "workingType": working_type,
            "clientAlgoId": client_order_id,
        }
        if close_position:
            params["closePosition"] = True
        else:
            params["quantity"] = qty  # type: ignore[assignment]
            if reduce_only:
                params["reduceOnly"] = True
        return self._call("POST", "/fapi/v1/algoOrder", params, mutating=True, expect=Expect.ALGO_ORDER,
                          client_order_id=client_order_id, priority=priority)

    def query_stop(self, client_order_id: str, *, priority: Priority = Priority.EXIT) -> VenueOutcome:
        """GET /fapi/v1/algoOrder by clientAlgoId: ACCEPTED (NEW/CANCELED...) / FILLED (triggered) / NOT_FOUND."""
        validate_client_order_id(client_order_id)
        return self._call("GET", "/fapi/v1/algoOrder", {"clientAlgoId": client_order_id},
                          expect=Expect.ALGO_ORDER, client_order_id=client_order_id, priority=priority)

    def cancel_stop(self, symbol: str, client_order_id: str, *, priority: Priority = Priority.EXIT) -> VenueOutcome:
        """DELETE /fapi/v1/algoOrder by clientAlgoId (``symbol`` is for logs; the protocol does not take it)."""
        validate_client_order_id(client_order_id)
        _symbol(symbol)
        return self._call("DELETE", "/fapi/v1/algoOrder", {"clientAlgoId": client_order_id}, mutating=True,
                          client_order_id=client_order_id, priority=priority)

    def open_stops(self, symbol: str | None = None, *, priority: Priority = Priority.ENTRY) -> VenueOutcome:
        """GET /fapi/v1/openAlgoOrders; ``data`` is a list of algo order dicts."""
        params = {"symbol": _symbol(symbol)} if symbol else {}
        return self._read("/fapi/v1/openAlgoOrders", params,
                          lambda p: parse_order_list(p, "clientAlgoId", "algoStatus"), priority)

    # -- user-data stream (USER_STREAM security: the API key, no signature) ----------

    def create_listen_key(self, *, priority: Priority = Priority.EXIT) -> VenueOutcome:
        """POST /fapi/v1/listenKey: the account's active listenKey (extended) or a new one; ``data`` is the key."""
        return self._listen_key("POST", priority)

    def keepalive_listen_key(self, *, priority: Priority = Priority.EXIT) -> VenueOutcome:
        """PUT /fapi/v1/listenKey: extend the active key by 60 minutes; -1125 (REJECTED_PERMANENT) if none."""
        return self._listen_key("PUT", priority)

    def close_listen_key(self, *, priority: Priority = Priority.BACKGROUND) -> VenueOutcome:
        """DELETE /fapi/v1/listenKey: end the user-data stream."""
        return self._call("DELETE", LISTEN_KEY_PATH, {}, signed=False, api_key=True, priority=priority)

    def _listen_key(self, method: str, priority: Priority) -> VenueOutcome:
        outcome = self._call(method, LISTEN_KEY_PATH, {}, signed=False, api_key=True, priority=priority)
        if not outcome.ok:
            return outcome
        key = outcome.data.get("listenKey") if isinstance(outcome.data, dict) else None
        if not isinstance(key, str) or not key:
            return malformed(f"listenKey reply without a listenKey: {outcome.data!r:.80}", mutating=False,
                             http_status=outcome.http_status)
        return _with_data(outcome, key)

    # -- plumbing ------------------------------------------------------------------

    def _read(
        self, path: str, params: Mapping[str, ParamValue], parse: Callable[[Any], Any], priority: Priority,
        *, signed: bool = True,
    ) -> VenueOutcome:
        outcome = self._call("GET", path, params, signed=signed, priority=priority)
        if not outcome.ok:
            return outcome
        try:
            return _with_data(outcome, parse(outcome.data))
        except MalformedReply as exc:
            bad = malformed(str(exc), mutating=False, http_status=outcome.http_status)
            log_event("venue", "malformed_reply", details={"path": path, "what": str(exc)}, level="WARNING")
            return bad

    def _call(
        self,
        method: str,
        path: str,
        params: Mapping[str, ParamValue],
        *,
        signed: bool = True,
        api_key: bool = False,
        mutating: bool = False,
        expect: Expect = Expect.ANY,
        client_order_id: str | None = None,
        priority: Priority = Priority.BACKGROUND,
    ) -> VenueOutcome:
        weight = request_weight(method, path, params)
        decision = self.budget.acquire(priority, weight)
        if not decision.allowed:
            outcome = VenueOutcome(OutcomeKind.RATE_LIMITED, message=f"not sent: {decision.reason}",
                                   retry_after_s=decision.wait_s, client_order_id=client_order_id, sent=False)
            self._log(method, path, priority, outcome)
            return outcome

        headers: dict[str, str] = {}
        if signed:
            full = {**params, "recvWindow": self.recv_window_ms, "timestamp": self.clock.now_ms()}
            query = signed_query(self._secret, full)
            headers["X-MBX-APIKEY"] = self._api_key
        else:
            query = encode_params(params)
            if api_key:
                headers["X-MBX-APIKEY"] = self._api_key
        url = f"{self.rest_url}{path}?{query}" if query else f"{self.rest_url}{path}"

        try:
            response = self._session.request(method, url, headers=headers, timeout=self.timeout_s)
        except requests.RequestException as exc:
            outcome = classify_exception(exc, mutating=mutating, client_order_id=client_order_id)
            self.budget.observe(status=None, used_weight=None, retry_after_s=None)
            self._log(method, path, priority, outcome)
            return outcome

        outcome = classify(response.status_code, response.content, response.headers, mutating=mutating,
                           expect=expect, client_order_id=client_order_id)
        self.budget.observe(status=response.status_code, used_weight=parse_used_weight(response.headers),
                            retry_after_s=outcome.retry_after_s)
        self._log(method, path, priority, outcome)
        if outcome.clock_skew:
            self.server_time(priority=Priority.STOP if priority is Priority.STOP else Priority.EXIT)
        return outcome

    def _log(self, method: str, path: str, priority: Priority, outcome: VenueOutcome) -> None:
        details = {"method": method, "path": path, "priority": priority.name, "outcome": outcome.describe()}
        if outcome.ok:
            log_event("venue", "venue_request", details=details, level="DEBUG")
        else:
            log_event("venue", "venue_request", details=details, action_taken="returned outcome to caller",
                      level="WARNING")


def _local_reject(client_order_id: str, reason: str) -> VenueOutcome:
    """An order the symbol filters refuse: permanent, and provably never sent."""
    log_event("venue", "filters_reject", details={"client_order_id": client_order_id, "reason": reason},
              action_taken="not sent", level="WARNING")
    return VenueOutcome(OutcomeKind.REJECTED_PERMANENT, message=f"not sent: {reason}",
                        client_order_id=client_order_id, sent=False)


def _reply_of(kind: type, what: str) -> Callable[[Any], Any]:
    """A parser that only checks the reply is a ``kind`` (dict or list) and hands it on."""
    def parse(payload: Any) -> Any:
        if not isinstance(payload, kind):
            raise MalformedReply(f"{what} reply: expected {'an object' if kind is dict else 'a list'}, "
                                 f"got {type(payload).__name__}")
        return payload
    return parse


def _with_data(outcome: VenueOutcome, data: Any) -> VenueOutcome:
    return dataclasses.replace(outcome, data=data)


def _symbol(symbol: str | None) -> str:
    if not isinstance(symbol, str) or not symbol.isalnum():
        raise ValueError(f"invalid symbol {symbol!r}: expected letters and digits like 'BTCUSDT'")
    return symbol.upper()


def _side(side: str) -> str:
    if not isinstance(side, str) or side.upper() not in SIDES:
        raise ValueError(f"invalid side {side!r}: expected BUY or SELL")
    return side.upper()


def _positive(value: Number, name: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not number.is_finite() or number <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return number
