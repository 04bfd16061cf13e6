"""The simulated venue's state: markets, orders, algo (stop) orders, positions, ledger.

Good enough for market orders and stops, no better: MARKET fills at the current
price, a LIMIT fills at once if marketable (at the current price) or rests until
the price crosses it, a STOP_MARKET / TAKE_PROFIT_MARKET algo order fires a
market order when the price crosses its trigger. One account, one-way mode.
A ``FillPlan`` (set by a fault) makes one order fill partially (the rest later),
EXPIRE with part or none executed, or walk a thin book and expire the rest.
Every order and account change is also a user-data event (``user_emit``).

Every method takes the one lock; nothing here sleeps or does I/O, so the REST
threads and the market ticker never wait on each other for long. Events go to
``emit`` (the WebSocket fan-out, thread-safe and non-blocking) while the lock is
held, which is what keeps depth events in update-id order.

Errors are ``VenueError`` carrying the HTTP status, code and message Binance
documents; the REST layer turns them into replies.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from runtime.simexchange import userdata
from runtime.simexchange.market import SymbolMarket, SymbolSpec
from runtime.venue.ids import CLIENT_ORDER_ID_PATTERN, is_valid_client_order_id

Emit = Callable[[str, dict[str, Any]], None]
UserEmit = Callable[[dict[str, Any]], None]
Defer = Callable[[float, Callable[[], None], str], None]

ERROR_TEXT = {
    -1001: "Internal error; unable to process your request. Please try again.",
    -1003: "Too many requests; please use the websocket for live updates.",
    -1006: "An unexpected response was received from the message bus. Execution status unknown.",
    -1007: "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
    -1021: "Timestamp for this request is outside of the recvWindow.",
    -1022: "Signature for this request is not valid.",
    -1101: "Duplicate values for a parameter detected.",
    -1102: "Mandatory parameter was not sent, was empty/null, or malformed.",
    -1111: "Precision is over the maximum defined for this asset.",
    -1116: "Invalid orderType.",
    -1117: "Invalid side.",
    -1121: "Invalid symbol.",
    -1125: "This listenKey does not exist.",
    -1130: "Invalid data sent for a parameter.",
    -2010: "NEW_ORDER_REJECTED",
    -2011: "Unknown order sent.",
    -2013: "Order does not exist.",
    -2014: "API-key format invalid.",
    -2015: "Invalid API-key, IP, or permissions for action.",
    -2019: "Margin is insufficient.",
    -2021: "Order would immediately trigger.",
    -2022: "ReduceOnly Order is rejected.",
    -2025: "Reach max open order limit.",
    -4003: "Quantity less than or equal to zero.",
    -4004: "Quantity less than min quantity.",
    -4005: "Quantity greater than max quantity.",
    -4013: "Price less than min price.",
    -4016: "Limit price can't be higher than the PERCENT_PRICE band.",
    -4024: "Limit price can't be lower than the PERCENT_PRICE band.",
    -4164: "Order's notional must be no smaller than the MIN_NOTIONAL (unless you choose reduce only).",
    -4116: "ClientOrderId is duplicated.",
    -4120: "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.",
}

PLAIN_TYPES = ("MARKET", "LIMIT")
ORDER_TYPES = ("LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET")
CONDITIONAL_TYPES = ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET")
ALGO_TYPES = ("STOP_MARKET", "TAKE_PROFIT_MARKET")
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")
# (initial leverage, notional floor, notional cap, maintenance margin ratio, cum): BTCUSDT-like tiers
LEVERAGE_BRACKETS = ((125, 0, 50_000, 0.004, 0.0), (100, 50_000, 600_000, 0.005, 50.0),
                     (75, 600_000, 3_000_000, 0.0065, 950.0), (50, 3_000_000, 12_000_000, 0.01, 11_450.0),
                     (25, 12_000_000, 70_000_000, 0.02, 131_450.0), (20, 70_000_000, 100_000_000, 0.025, 481_450.0))
ALGO_OPEN_STATUSES = ("NEW", "TRIGGERING")


@dataclass(frozen=True)
class FillPlan:
    """How one order executes, when a fault says so (None: all at once at the last price).

    ``partial``: ``ratio`` of it now (PARTIALLY_FILLED), the rest ``rest_after_s`` later;
    ``expire``: ``ratio`` of it, then ``expire_status`` (EXPIRED / EXPIRED_IN_MATCH);
    ``thin``: walk at most ``levels`` levels of the opposite book, expire the rest.
    """

    kind: str
    ratio: Decimal = Decimal(0)
    rest_after_s: float = 0.0
    expire_status: str = "EXPIRED"
    levels: int = 0


class VenueError(Exception):
    """A refusal as the venue would send it."""

    def __init__(self, code: int, msg: str | None = None, status: int = 400) -> None:
        self.code = code
        self.msg = msg or ERROR_TEXT.get(code, "error")
        self.status = status
        super().__init__(f"{status} {code} {self.msg}")

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}


@dataclass
class PositionState:
    amount: Decimal = Decimal(0)
    entry: Decimal = Decimal(0)
    realized: Decimal = Decimal(0)


@dataclass
class Account:
    """Orders, algo orders, positions and the ledger, reset together."""

    balance: Decimal
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    by_client: dict[tuple[str, str], int] = field(default_factory=dict)  # -> the MOST RECENT order with that id
    algos: dict[int, dict[str, Any]] = field(default_factory=dict)
    algo_by_client: dict[str, int] = field(default_factory=dict)  # -> the most recent algo order with that id
    positions: dict[str, PositionState] = field(default_factory=dict)
    ledger: list[dict[str, Any]] = field(default_factory=list)


class MatchingEngine:
    """All venue state behind one lock."""

    def __init__(self, markets: Mapping[str, SymbolMarket], *, balance: float, leverage: int,
                 now_ms: Callable[[], int], emit: Emit | None = None, user_emit: UserEmit | None = None,
                 defer: Defer | None = None) -> None:
        self.markets = dict(markets)
        self.leverage = leverage
        self.initial_balance = Decimal(str(balance))
        self.now_ms = now_ms
        self.emit: Emit = emit or (lambda stream, data: None)
        self.user_emit: UserEmit = user_emit or (lambda event: None)
        self.defer: Defer = defer or (lambda delay_s, job, what: None)
        self.lock = threading.RLock()
        self.paused = False
        self.account = Account(self.initial_balance)
        self._ids = itertools.count(8_000_000_000)
        self._algo_ids = itertools.count(4_000_000)
        self._seq = itertools.count(1)
        self._trade_ids = itertools.count(500_000_000)

    # -- market -----------------------------------------------------------------------

    def step(self) -> None:
        """One market tick: walk prices, re-centre books, noise trades, random liquidations, triggers."""
        with self.lock:
            if self.paused:
                return
            now = self.now_ms()
            for market in self.markets.values():
                before = market.price
                market.step_price()
                update = market.recenter(now)
                if update is not None:
                    self._emit_depth(market, update)
                if market.price != before:
                    self._emit_trade(market, market.noise_trade(now))
                liquidation = market.maybe_liquidation(now)
                if liquidation is not None:
                    self._emit_liquidation(market, liquidation)
                self._on_price(market)

    def mark(self) -> None:
        """Publish markPriceUpdate for every symbol (runs even while the market is paused)."""
        with self.lock:
            now = self.now_ms()
            for market in self.markets.values():
                self.emit(f"{market.symbol.lower()}@markPrice", market.mark_event(now))

    def set_price(self, symbol: str, price: float) -> Decimal:
        """Jump the price now; resting orders and stops react at once."""
        with self.lock:
            market = self._market(symbol)
            market.set_price(price)
            self._on_price(market)
            return market.price

    def spike(self, symbol: str | None, pct: float) -> dict[str, str]:
        """Move one symbol (or all) by ``pct`` percent."""
        with self.lock:
            targets = [self._market(symbol)] if symbol else list(self.markets.values())
            moved = {}
            for market in targets:
                market.set_price(float(market.price) * (1 + pct / 100.0))
                self._on_price(market)
                moved[market.symbol] = str(market.price)
            return moved

    def script(self, symbol: str, prices: list[float]) -> None:
        with self.lock:
            self._market(symbol).script(prices)

    def liquidation(self, symbol: str, side: str, qty: float, price: float | None = None) -> dict[str, Any]:
        """Emit one forceOrder event (admin)."""
        with self.lock:
            market = self._market(symbol)
            if side not in ("BUY", "SELL"):
                raise VenueError(-1117)
            event = market.liquidation_event(self.now_ms(), side, market.spec.qty(qty),
                                             None if price is None else market.spec.price(price))
            self._emit_liquidation(market, event)
            return event

    def book_snapshot(self, symbol: str, limit: int | None = None) -> dict[str, Any]:
        with self.lock:
            return self._market(symbol).book.snapshot(limit)

    def price(self, symbol: str) -> Decimal:
        with self.lock:
            return self._market(symbol).price

    # -- REST: market data ---------------------------------------------------------------

    def depth(self, p: Mapping[str, str]) -> dict[str, Any]:
        market = self._market(_req(p, "symbol"))
        limit = _int(p, "limit", 500)
        if limit not in (5, 10, 20, 50, 100, 500, 1000):
            raise VenueError(-1130, f"Data sent for parameter 'limit' is not valid: {limit}.")
        with self.lock:
            now = self.now_ms()
            return {**market.book.snapshot(limit), "E": now, "T": now}

    def exchange_info(self) -> dict[str, Any]:
        """/fapi/v1/exchangeInfo as Binance serves it (rate limits, assets, symbols with their filters)."""
        symbols = []
        for market in self.markets.values():
            spec = market.spec
            symbols.append({
                "symbol": spec.symbol, "pair": spec.symbol, "contractType": "PERPETUAL",
                "deliveryDate": 4133404800000, "onboardDate": 1569398400000, "status": "TRADING",
                "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
                "baseAsset": spec.base_asset, "quoteAsset": spec.quote_asset, "marginAsset": spec.quote_asset,
                "pricePrecision": -spec.tick.as_tuple().exponent, "quantityPrecision": -spec.step.as_tuple().exponent,
                "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": [],
                "settlePlan": 0, "triggerProtect": "0.0500", "liquidationFee": "0.012500", "marketTakeBound": "0.05",
                "maxMoveOrderLimit": 10000, "filters": spec.filters(),
                "OrderType": list(ORDER_TYPES), "orderTypes": list(ORDER_TYPES),
                "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
            })
        return {
            "timezone": "UTC", "serverTime": self.now_ms(), "futuresType": "U_MARGINED",
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
            ],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": symbols,
        }

    # -- REST: orders ----------------------------------------------------------------------

    def place_order(self, p: Mapping[str, str], plan: FillPlan | None = None) -> dict[str, Any]:
        """POST /fapi/v1/order; ``plan`` (from a fault) shapes how it executes."""
        symbol = _req(p, "symbol")
        market = self._market(symbol)
        side = _side(p)
        order_type = _req(p, "type")
        if order_type in CONDITIONAL_TYPES:
            raise VenueError(-4120)
        if order_type not in PLAIN_TYPES:
            raise VenueError(-1116)
        qty = _qty(p, "quantity", market.spec)
        client_id = p.get("newClientOrderId") or f"sim-{next(self._seq)}"
        _check_client_id(client_id, "newClientOrderId")
        reduce_only = _bool(p, "reduceOnly")
        price = _price(p, "price", market.spec) if order_type == "LIMIT" else None
        if order_type == "LIMIT" and price is None:
            raise VenueError(-1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed.")
        resp_type = p.get("newOrderRespType", "ACK")
        with self.lock:
            account = self.account
            if self._open_order_with(symbol, client_id) is not None:
                raise VenueError(-4116)
            _check_filters(market, order_type, qty, price, reduce_only)
            if sum(o["status"] in OPEN_STATUSES for o in account.orders.values()) >= market.spec.max_num_orders:
                raise VenueError(-2025)
            fill_price = market.price if order_type == "MARKET" else price
            qty = self._check_risk(symbol, side, qty, fill_price, reduce_only)
            now = self.now_ms()
            order = _new_order(next(self._ids), symbol, client_id, side, order_type, qty, price, reduce_only, now,
                               p.get("timeInForce", "GTC") if order_type == "LIMIT" else "GTC")
            account.orders[order["orderId"]] = order
            account.by_client[(symbol, client_id)] = order["orderId"]
            ack = dict(order)
            self._order_event(order, "NEW")
            if order_type == "MARKET" or _marketable(side, price, market.price):
                self._execute(market, order, plan)
            return dict(order) if resp_type == "RESULT" else ack

    def query_order(self, p: Mapping[str, str]) -> dict[str, Any]:
        with self.lock:
            return dict(self._find_order(p, missing=-2013))

    def cancel_order(self, p: Mapping[str, str]) -> dict[str, Any]:
        with self.lock:
            order = self._find_order(p, missing=-2011)
            if order["status"] not in OPEN_STATUSES:
                raise VenueError(-2011)
            order["status"] = "CANCELED"
            order["updateTime"] = self.now_ms()
            self._order_event(order, "CANCELED")
            return dict(order)

    def open_orders(self, p: Mapping[str, str]) -> list[dict[str, Any]]:
        symbol = p.get("symbol")
        if symbol:
            self._market(symbol)
        with self.lock:
            return [dict(o) for o in self.account.orders.values()
                    if o["status"] in OPEN_STATUSES and (not symbol or o["symbol"] == symbol)]

    def position_risk(self, p: Mapping[str, str]) -> list[dict[str, Any]]:
        symbol = p.get("symbol")
        if symbol:
            self._market(symbol)
        with self.lock:
            now = self.now_ms()
            return [self._position_json(m, now) for m in self.markets.values() if not symbol or m.symbol == symbol]

    def position_risk_v3(self, p: Mapping[str, str]) -> list[dict[str, Any]]:
        """/fapi/v3/positionRisk: only symbols with a position or an open order, v3's fields (no leverage)."""
        symbol = p.get("symbol")
        if symbol:
            self._market(symbol)
        with self.lock:
            now = self.now_ms()
            busy = {o["symbol"] for o in self.account.orders.values() if o["status"] in OPEN_STATUSES}
            out = []
            for market in self.markets.values():
                state = self.account.positions.get(market.symbol, PositionState())
                if (symbol and market.symbol != symbol) or (state.amount == 0 and market.symbol not in busy):
                    continue
                v2 = self._position_json(market, now)
                margin = abs(state.amount) * market.price / self.leverage
                out.append({k: v2[k] for k in ("symbol", "positionSide", "positionAmt", "entryPrice",
                                                "breakEvenPrice", "markPrice", "liquidationPrice",
                                                "isolatedMargin", "notional", "isolatedWallet", "updateTime")}
                           | {"unRealizedProfit": v2["unRealizedProfit"], "marginAsset": "USDT",
                              "initialMargin": f"{margin:.8f}", "maintMargin": f"{margin / 10:.8f}",
                              "positionInitialMargin": f"{margin:.8f}", "openOrderInitialMargin": "0",
                              "adl": 0, "bidNotional": "0", "askNotional": "0"})
            return out

    def account_info(self, p: Mapping[str, str]) -> dict[str, Any]:
        """/fapi/v2/account and /fapi/v3/account: totals, the USDT asset, positions (one-way, cross)."""
        with self.lock:
            now = self.now_ms()
            wallet = self.account.balance
            upnl, margin, positions = Decimal(0), Decimal(0), []
            for market in self.markets.values():
                state = self.account.positions.get(market.symbol, PositionState())
                pos_upnl = state.amount * (market.price - state.entry) if state.amount else Decimal(0)
                pos_margin = abs(state.amount) * market.price / self.leverage
                upnl += pos_upnl
                margin += pos_margin
                positions.append({"symbol": market.symbol, "positionSide": "BOTH", "positionAmt": str(state.amount),
                                  "entryPrice": str(state.entry), "unrealizedProfit": f"{pos_upnl:.8f}",
                                  "isolatedMargin": "0", "notional": f"{state.amount * market.price:.8f}",
                                  "isolatedWallet": "0", "initialMargin": f"{pos_margin:.8f}",
                                  "maintMargin": f"{pos_margin / 10:.8f}", "leverage": str(self.leverage),
                                  "isolated": False, "updateTime": now})
            available = wallet + upnl - margin
            totals = {"totalInitialMargin": margin, "totalMaintMargin": margin / 10, "totalWalletBalance": wallet,
                      "totalUnrealizedProfit": upnl, "totalMarginBalance": wallet + upnl,
                      "totalPositionInitialMargin": margin, "totalOpenOrderInitialMargin": Decimal(0),
                      "totalCrossWalletBalance": wallet, "totalCrossUnPnl": upnl, "availableBalance": available,
                      "maxWithdrawAmount": available}
            asset = {"asset": "USDT", "walletBalance": wallet, "unrealizedProfit": upnl, "marginBalance": wallet + upnl,
                     "maintMargin": margin / 10, "initialMargin": margin, "positionInitialMargin": margin,
                     "openOrderInitialMargin": Decimal(0), "crossWalletBalance": wallet, "crossUnPnl": upnl,
                     "availableBalance": available, "maxWithdrawAmount": available}
            return {**{k: f"{v:.8f}" for k, v in totals.items()}, "canTrade": True, "canDeposit": True,
                    "canWithdraw": True, "feeTier": 0, "multiAssetsMargin": False, "tradeGroupId": -1,
                    "updateTime": 0,
                    "assets": [{**{k: (v if isinstance(v, str) else f"{v:.8f}") for k, v in asset.items()},
                                "marginAvailable": True, "updateTime": now}],
                    "positions": positions}

    def balances(self, p: Mapping[str, str]) -> list[dict[str, Any]]:
        """/fapi/v2/balance and /fapi/v3/balance."""
        account = self.account_info(p)
        usdt = account["assets"][0]
        return [{"accountAlias": "SgsR", "asset": "USDT", "balance": usdt["walletBalance"],
                 "crossWalletBalance": usdt["crossWalletBalance"], "crossUnPnl": usdt["crossUnPnl"],
                 "availableBalance": usdt["availableBalance"], "maxWithdrawAmount": usdt["maxWithdrawAmount"],
                 "marginAvailable": True, "updateTime": usdt["updateTime"]}]

    def leverage_bracket(self, p: Mapping[str, str]) -> list[dict[str, Any]] | dict[str, Any]:
        """/fapi/v1/leverageBracket: notional brackets (one object when ``symbol`` is sent, as Binance)."""
        symbol = p.get("symbol")
        if symbol:
            self._market(symbol)
        brackets = [{"bracket": i + 1, "initialLeverage": lev, "notionalCap": cap, "notionalFloor": floor,
                     "maintMarginRatio": mmr, "cum": cum}
                    for i, (lev, floor, cap, mmr, cum) in enumerate(LEVERAGE_BRACKETS)]
        items = [{"symbol": m, "notionalCoef": 1.0, "brackets": brackets} for m in self.markets
                 if not symbol or m == symbol]
        return items[0] if symbol else items

    def position(self, symbol: str) -> dict[str, Any]:
        with self.lock:
            return self._position_json(self._market(symbol), self.now_ms())

    # -- REST: algo (conditional) orders -----------------------------------------------------

    def place_algo(self, p: Mapping[str, str]) -> dict[str, Any]:
        """POST /fapi/v1/algoOrder (CONDITIONAL STOP_MARKET / TAKE_PROFIT_MARKET)."""
        if _req(p, "algoType") != "CONDITIONAL":
            raise VenueError(-1130, "Data sent for parameter 'algoType' is not valid.")
        symbol = _req(p, "symbol")
        market = self._market(symbol)
        side = _side(p)
        order_type = _req(p, "type")
        if order_type not in ALGO_TYPES:
            raise VenueError(-1116, f"Invalid orderType: the simulator supports {', '.join(ALGO_TYPES)}.")
        trigger = _price(p, "triggerPrice", market.spec)
        if trigger is None:
            raise VenueError(-1102, "Mandatory parameter 'triggerPrice' was not sent, was empty/null, or malformed.")
        close_position = _bool(p, "closePosition")
        reduce_only = _bool(p, "reduceOnly")
        if close_position and (p.get("quantity") or reduce_only):
            raise VenueError(-1106, "Parameter 'quantity'/'reduceOnly' sent when not required (closePosition).")
        qty = None if close_position else _qty(p, "quantity", market.spec)
        if trigger < market.spec.min_price or trigger > market.spec.max_price:
            raise VenueError(-4013 if trigger < market.spec.min_price else -1130,
                             f"triggerPrice {trigger} outside PRICE_FILTER [{market.spec.min_price}, "
                             f"{market.spec.max_price}].")
        if qty is not None and not market.spec.min_qty <= qty <= market.spec.market_max_qty:
            raise VenueError(-4004 if qty < market.spec.min_qty else -4005)
        client_id = p.get("clientAlgoId") or f"simalgo-{next(self._seq)}"
        _check_client_id(client_id, "clientAlgoId")
        with self.lock:
            earlier = self.account.algos.get(self.account.algo_by_client.get(client_id, -1))
            if earlier is not None and earlier["algoStatus"] in ALGO_OPEN_STATUSES:
                raise VenueError(-4116)
            if _should_trigger(order_type, side, trigger, market.price):
                raise VenueError(-2021)
            now = self.now_ms()
            algo = {
                "algoId": next(self._algo_ids), "clientAlgoId": client_id, "algoType": "CONDITIONAL",
                "orderType": order_type, "symbol": symbol, "side": side, "positionSide": "BOTH",
                "timeInForce": "GTC", "quantity": str(qty) if qty is not None else "0", "algoStatus": "NEW",
                "triggerPrice": str(trigger), "price": "0", "icebergQuantity": None,
                "selfTradePreventionMode": "EXPIRE_MAKER", "workingType": p.get("workingType", "CONTRACT_PRICE"),
                "priceMatch": "NONE", "closePosition": close_position, "priceProtect": False,
                "reduceOnly": reduce_only, "activatePrice": "", "callbackRate": "", "createTime": now,
                "updateTime": now, "triggerTime": 0, "goodTillDate": 0, "actualOrderId": "",
                "actualPrice": "", "executedQty": "0",
            }
            self.account.algos[algo["algoId"]] = algo
            self.account.algo_by_client[client_id] = algo["algoId"]
            self.user_emit(userdata.algo_update(algo, now))
            return dict(algo)

    def query_algo(self, p: Mapping[str, str]) -> dict[str, Any]:
        with self.lock:
            return dict(self._find_algo(p))

    def cancel_algo(self, p: Mapping[str, str]) -> dict[str, Any]:
        with self.lock:
            algo = self._find_algo(p)
            if algo["algoStatus"] != "NEW":
                raise VenueError(-2011)
            algo["algoStatus"] = "CANCELED"
            algo["updateTime"] = self.now_ms()
            self.user_emit(userdata.algo_update(algo, algo["updateTime"]))
            return {"algoId": algo["algoId"], "clientAlgoId": algo["clientAlgoId"], "code": "200", "msg": "success"}

    def open_algos(self, p: Mapping[str, str]) -> list[dict[str, Any]]:
        symbol = p.get("symbol")
        with self.lock:
            return [dict(a) for a in self.account.algos.values()
                    if a["algoStatus"] == "NEW" and (not symbol or a["symbol"] == symbol)]

    # -- ledger / admin ------------------------------------------------------------------------

    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Append one order request to the ledger (numbered, timestamped)."""
        with self.lock:
            full = {"seq": len(self.account.ledger) + 1, "time_ms": self.now_ms(), **entry}
            self.account.ledger.append(full)
            return full

    def ledger(self, client_order_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(e) for e in self.account.ledger
                    if client_order_id is None or e.get("client_order_id") == client_order_id]

    def reset(self) -> None:
        """Forget orders, positions and ledger; prices back to their start (books follow via depth events)."""
        with self.lock:
            self.account = Account(self.initial_balance)
            now = self.now_ms()
            for market in self.markets.values():
                market.script(())
                market.set_price(market.start_price)
                update = market.recenter(now)
                if update is not None:
                    self._emit_depth(market, update)

    def state(self) -> dict[str, Any]:
        with self.lock:
            now = self.now_ms()
            return {
                "server_time_ms": now,
                "paused": self.paused,
                "balance": str(self.account.balance),
                "symbols": {m.symbol: {"price": str(m.price), "last_update_id": m.book.last_update_id,
                                       "best_bid": str(m.book.best_bid()), "best_ask": str(m.book.best_ask()),
                                       "volatility": m.volatility, "position": self._position_json(m, now)}
                            for m in self.markets.values()},
                "open_orders": sum(o["status"] in OPEN_STATUSES for o in self.account.orders.values()),
                "orders": len(self.account.orders),
                "open_algo_orders": sum(a["algoStatus"] == "NEW" for a in self.account.algos.values()),
                "ledger_entries": len(self.account.ledger),
            }

    # -- internals ---------------------------------------------------------------------------

    def _market(self, symbol: str | None) -> SymbolMarket:
        market = self.markets.get(symbol or "")
        if market is None:
            raise VenueError(-1121)
        return market

    def _open_order_with(self, symbol: str, client_id: str) -> dict[str, Any] | None:
        """The OPEN order with this client id, if any: Binance keeps the id unique among open orders only."""
        order = self.account.orders.get(self.account.by_client.get((symbol, client_id), -1))
        return order if order is not None and order["status"] in OPEN_STATUSES else None

    def _find_order(self, p: Mapping[str, str], *, missing: int) -> dict[str, Any]:
        symbol = _req(p, "symbol")
        self._market(symbol)
        order_id = p.get("orderId")
        client_id = p.get("origClientOrderId")
        if not order_id and not client_id:
            raise VenueError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        if order_id:
            try:
                order = self.account.orders.get(int(order_id))
            except ValueError:
                raise VenueError(-1130, "Data sent for parameter 'orderId' is not valid.") from None
        else:
            order = self.account.orders.get(self.account.by_client.get((symbol, client_id), -1))
        if order is None or order["symbol"] != symbol:
            raise VenueError(missing)
        return order

    def _find_algo(self, p: Mapping[str, str]) -> dict[str, Any]:
        algo_id, client_id = p.get("algoId"), p.get("clientAlgoId")
        if not algo_id and not client_id:
            raise VenueError(-1102, "Param 'clientAlgoId' or 'algoId' must be sent, but both were empty/null!")
        if algo_id:
            try:
                algo = self.account.algos.get(int(algo_id))
            except ValueError:
                raise VenueError(-1130, "Data sent for parameter 'algoId' is not valid.") from None
        else:
            algo = self.account.algos.get(self.account.algo_by_client.get(client_id or "", -1))
        if algo is None:
            raise VenueError(-2013)
        return algo

    def _check_risk(self, symbol: str, side: str, qty: Decimal, price: Decimal | None,
                    reduce_only: bool) -> Decimal:
        """Reduce-only capping (-2022) and initial margin (-2019); returns the quantity to use."""
        position = self.account.positions.get(symbol, PositionState())
        signed = qty if side == "BUY" else -qty
        reduces = position.amount != 0 and (position.amount > 0) != (signed > 0)
        if reduce_only:
            if not reduces:
                raise VenueError(-2022)
            return min(qty, abs(position.amount))
        after = abs(position.amount + signed)
        if not reduces or after > abs(position.amount):
            mark = price if price is not None else self.markets[symbol].price
            required = after * mark / self.leverage
            if required > self.account.balance:
                raise VenueError(-2019)
        return qty

    def _execute(self, market: SymbolMarket, order: dict[str, Any], plan: FillPlan | None) -> None:
        """Execute a marketable order now, as ``plan`` says (None: all of it at the last price)."""
        qty, step = Decimal(order["origQty"]), market.spec.step
        if plan is None:
            self._fill(market, order, qty, market.price)
        elif plan.kind == "thin":
            self._walk_book(market, order, plan.levels)
        elif plan.kind == "partial" and qty > step:
            now_qty = min(max(_floor_to(qty * plan.ratio, step), step), qty - step)
            self._fill(market, order, now_qty, market.price)
            order_id = order["orderId"]
            self.defer(plan.rest_after_s, lambda: self._fill_rest(order_id), f"rest of order {order_id}")
        elif plan.kind == "partial":
            self._fill(market, order, qty, market.price)
        else:  # expire
            now_qty = min(_floor_to(qty * plan.ratio, step), qty - step)
            if now_qty > 0:
                self._fill(market, order, now_qty, market.price)
            self._expire(order, plan.expire_status)

    def _fill_rest(self, order_id: int) -> None:
        """The deferred rest of a partial fill (unless it was canceled meanwhile)."""
        with self.lock:
            order = self.account.orders.get(order_id)
            if order is None or order["status"] != "PARTIALLY_FILLED":
                return
            market = self.markets[order["symbol"]]
            rest = Decimal(order["origQty"]) - Decimal(order["executedQty"])
            if order["reduceOnly"]:
                position = self.account.positions.get(order["symbol"], PositionState()).amount
                reduces = position != 0 and (position > 0) != (order["side"] == "BUY")
                rest = min(rest, abs(position)) if reduces else Decimal(0)
            if rest > 0:
                self._fill(market, order, rest, market.price)
            if order["status"] != "FILLED":
                self._expire(order, "EXPIRED")

    def _walk_book(self, market: SymbolMarket, order: dict[str, Any], levels: int) -> None:
        """Take liquidity level by level from the opposite side (at most ``levels``); expire the rest."""
        book = market.book
        side = book.asks if order["side"] == "BUY" else book.bids
        prices = sorted(side, reverse=order["side"] == "SELL")[:levels]
        remaining = Decimal(order["origQty"])
        taken: dict[Decimal, Decimal] = {}
        for price in prices:
            if remaining <= 0:
                break
            qty = min(remaining, side[price])
            self._fill(market, order, qty, price)
            taken[price] = side[price] - qty
            remaining -= qty
        update = book.apply(taken if order["side"] == "SELL" else {}, taken if order["side"] == "BUY" else {},
                            event_ms=self.now_ms(), rng=market.rng)
        if update is not None:
            self._emit_depth(market, update)
        if remaining > 0:
            self._expire(order, "EXPIRED")

    def _fill(self, market: SymbolMarket, order: dict[str, Any], qty: Decimal, price: Decimal) -> None:
        """Execute ``qty`` of ``order`` at ``price``: order, position, trade stream, user-data events."""
        now = self.now_ms()
        executed = Decimal(order["executedQty"]) + qty
        quote = Decimal(order["cumQuote"]) + qty * price
        status = "FILLED" if executed == Decimal(order["origQty"]) else "PARTIALLY_FILLED"
        order.update(status=status, executedQty=str(executed), cumQty=str(executed),
                     avgPrice=_average(quote, executed, market.spec.tick), cumQuote=str(market.spec.price(quote)),
                     updateTime=now)
        realized = self._apply_fill(market.symbol, order["side"], qty, price)
        self._emit_trade(market, market.trade_event(now, price, qty, order["side"] == "SELL"))
        self._order_event(order, "TRADE", qty, price, realized)
        self.user_emit(userdata.account_update("ORDER", self.account.balance, realized,
                                               [self._position_json(market, now)], now))

    def _expire(self, order: dict[str, Any], status: str) -> None:
        order.update(status=status, updateTime=self.now_ms())
        self._order_event(order, "EXPIRED")

    def _order_event(self, order: dict[str, Any], execution: str, last_qty: Decimal = Decimal(0),
                     last_price: Decimal = Decimal(0), realized: Decimal = Decimal(0)) -> None:
        self.user_emit(userdata.order_trade_update(order, execution, last_qty, last_price, realized,
                                                   self.now_ms(), next(self._trade_ids)))

    def _apply_fill(self, symbol: str, side: str, qty: Decimal, price: Decimal) -> Decimal:
        """Update the position; returns the realized PnL of this fill."""
        position = self.account.positions.setdefault(symbol, PositionState())
        signed = qty if side == "BUY" else -qty
        amount = position.amount
        if amount == 0 or (amount > 0) == (signed > 0):
            total = abs(amount) + qty
            position.entry = (abs(amount) * position.entry + qty * price) / total
            position.amount = amount + signed
            return Decimal(0)
        closing = min(qty, abs(amount))
        pnl = closing * (price - position.entry) * (1 if amount > 0 else -1)
        position.realized += pnl
        self.account.balance += pnl
        position.amount = amount + signed
        if position.amount == 0:
            position.entry = Decimal(0)
        elif (position.amount > 0) != (amount > 0):
            position.entry = price
        return pnl

    def _on_price(self, market: SymbolMarket) -> None:
        """Fill crossed resting LIMIT orders and fire crossed algo orders for this symbol."""
        price = market.price
        for order in list(self.account.orders.values()):
            if (order["symbol"] == market.symbol and order["status"] == "NEW" and order["type"] == "LIMIT"
                    and _marketable(order["side"], Decimal(order["price"]), price)):
                self._fill(market, order, Decimal(order["origQty"]), Decimal(order["price"]))
        for algo in list(self.account.algos.values()):
            if (algo["symbol"] == market.symbol and algo["algoStatus"] == "NEW"
                    and _should_trigger(algo["orderType"], algo["side"], Decimal(algo["triggerPrice"]), price)):
                self._trigger(market, algo)

    def _trigger(self, market: SymbolMarket, algo: dict[str, Any]) -> None:
        now = self.now_ms()
        algo.update(triggerTime=now, updateTime=now)
        position = self.account.positions.get(market.symbol, PositionState())
        if algo["closePosition"] or algo["reduceOnly"]:
            reduces = position.amount != 0 and (position.amount > 0) != (algo["side"] == "BUY")
            qty = abs(position.amount) if algo["closePosition"] else min(Decimal(algo["quantity"]),
                                                                          abs(position.amount))
            if not reduces or qty == 0:
                algo["algoStatus"] = "EXPIRED"
                self._record_trigger(algo, None, "EXPIRED")
                self.user_emit(userdata.algo_update(algo, now))
                return
        else:
            qty = Decimal(algo["quantity"])
        client_id = algo["clientAlgoId"]
        if self._open_order_with(market.symbol, client_id) is not None:
            client_id = f"algo-{algo['algoId']}"
        order = _new_order(next(self._ids), market.symbol, client_id, algo["side"], "MARKET", qty, None,
                           bool(algo["reduceOnly"] or algo["closePosition"]), now, "GTC")
        order["origType"] = algo["orderType"]
        order["stopPrice"] = algo["triggerPrice"]
        self.account.orders[order["orderId"]] = order
        self.account.by_client[(market.symbol, client_id)] = order["orderId"]
        algo.update(algoStatus="TRIGGERED", actualOrderId=str(order["orderId"]))
        self.user_emit(userdata.algo_update(algo, now))
        self._order_event(order, "NEW")
        self._fill(market, order, qty, market.price)
        algo.update(algoStatus="FINISHED", actualPrice=order["avgPrice"], executedQty=order["executedQty"])
        self._record_trigger(algo, order, "FILLED")
        self.user_emit(userdata.algo_update(algo, self.now_ms()))

    def _record_trigger(self, algo: dict[str, Any], order: dict[str, Any] | None, outcome: str) -> None:
        self.record({
            "action": "trigger", "method": None, "path": None, "symbol": algo["symbol"], "side": algo["side"],
            "type": algo["orderType"], "quantity": order["origQty"] if order else None, "price": None,
            "stop_price": algo["triggerPrice"], "reduce_only": algo["reduceOnly"],
            "close_position": algo["closePosition"], "client_order_id": algo["clientAlgoId"],
            "order_id": order["orderId"] if order else None, "http_status": None, "code": None,
            "outcome": outcome, "executed": order is not None, "fault": None, "message": "algo order triggered",
        })

    def _position_json(self, market: SymbolMarket, now: int) -> dict[str, Any]:
        position = self.account.positions.get(market.symbol, PositionState())
        mark = market.price
        pnl = position.amount * (mark - position.entry) if position.amount else Decimal(0)
        notional = position.amount * mark
        return {
            "symbol": market.symbol, "positionAmt": str(position.amount), "entryPrice": str(position.entry),
            "breakEvenPrice": str(position.entry), "markPrice": str(mark), "unRealizedProfit": f"{pnl:.8f}",
            "liquidationPrice": "0", "leverage": str(self.leverage), "maxNotionalValue": "1000000000",
            "marginType": "cross", "isolatedMargin": "0", "isAutoAddMargin": "false", "positionSide": "BOTH",
            "notional": f"{notional:.8f}", "isolatedWallet": "0", "updateTime": now,
        }

    def _emit_depth(self, market: SymbolMarket, update: dict[str, Any]) -> None:
        self.emit(f"{market.symbol.lower()}@depth", update)
        ticker = market.book.ticker(update["E"])
        if ticker is not None:
            self.emit(f"{market.symbol.lower()}@bookTicker", ticker)

    def _emit_trade(self, market: SymbolMarket, trade: dict[str, Any]) -> None:
        self.emit(f"{market.symbol.lower()}@aggTrade", trade)

    def _emit_liquidation(self, market: SymbolMarket, event: dict[str, Any]) -> None:
        self.emit(f"{market.symbol.lower()}@forceOrder", event)
        self.emit("!forceOrder@arr", event)


def build_markets(symbols: list[str], start_prices: Mapping[str, float], seed: int, *, volatility: float,
                  levels: int, funding_rate: float, liquidation_rate: float,
                  specs: Mapping[str, SymbolSpec] | None = None) -> dict[str, SymbolMarket]:
    """One seeded market per symbol (each with its own RNG, so symbols do not perturb each other)."""
    markets = {}
    for symbol in symbols:
        price = float(start_prices.get(symbol, _default_price(symbol)))
        spec = (specs or {}).get(symbol) or SymbolSpec.for_price(symbol, price)
        markets[symbol] = SymbolMarket(spec, price, random.Random(f"{seed}:{symbol}"), volatility=volatility,
                                       levels=levels, funding_rate=funding_rate, liquidation_rate=liquidation_rate)
    return markets


def _default_price(symbol: str) -> float:
    return {"BTCUSDT": 100_000.0, "ETHUSDT": 3_000.0, "SOLUSDT": 150.0}.get(symbol, 100.0)


def _new_order(order_id: int, symbol: str, client_id: str, side: str, order_type: str, qty: Decimal,
               price: Decimal | None, reduce_only: bool, now: int, tif: str) -> dict[str, Any]:
    return {
        "orderId": order_id, "symbol": symbol, "status": "NEW", "clientOrderId": client_id,
        "price": str(price) if price is not None else "0", "avgPrice": "0", "origQty": str(qty),
        "executedQty": "0", "cumQty": "0", "cumQuote": "0", "timeInForce": tif, "type": order_type,
        "reduceOnly": reduce_only, "closePosition": False, "side": side, "positionSide": "BOTH", "stopPrice": "0",
        "workingType": "CONTRACT_PRICE", "priceProtect": False, "origType": order_type, "priceMatch": "NONE",
        "selfTradePreventionMode": "NONE", "goodTillDate": 0, "time": now, "updateTime": now,
    }


def _check_filters(market: SymbolMarket, order_type: str, qty: Decimal, price: Decimal | None,
                   reduce_only: bool) -> None:
    """LOT_SIZE / MARKET_LOT_SIZE bounds, PRICE_FILTER bounds, PERCENT_PRICE band, MIN_NOTIONAL (as Binance)."""
    spec = market.spec
    max_qty = spec.market_max_qty if order_type == "MARKET" else spec.max_qty
    if qty < spec.min_qty:
        raise VenueError(-4004, f"Quantity less than min quantity {spec.min_qty}.")
    if qty > max_qty:
        raise VenueError(-4005, f"Quantity greater than max quantity {max_qty}.")
    if price is not None:
        if price < spec.min_price:
            raise VenueError(-4013, f"Price less than min price {spec.min_price}.")
        if price > spec.max_price:
            raise VenueError(-4016, f"Limit price can't be higher than {spec.max_price}.")
        mark = market.price
        if price > mark * spec.percent_up:
            raise VenueError(-4016, f"Limit price can't be higher than {spec.price(mark * spec.percent_up)}.")
        if price < mark * spec.percent_down:
            raise VenueError(-4024, f"Limit price can't be lower than {spec.price(mark * spec.percent_down)}.")
    notional = qty * (price if price is not None else market.price)
    if not reduce_only and notional < spec.min_notional:
        raise VenueError(-4164, f"Order's notional must be no smaller than {spec.min_notional} "
                                f"(unless you choose reduce only).")


def _average(quote: Decimal, qty: Decimal, tick: Decimal) -> str:
    """Average fill price: on the tick when it is (one fill), else to 8 decimals (a walk across levels)."""
    average = quote / qty
    on_tick = average.quantize(tick)
    return str(on_tick if on_tick == average else average.quantize(Decimal("0.00000001")))


def _floor_to(value: Decimal, step: Decimal) -> Decimal:
    """``value`` rounded DOWN to a multiple of ``step``."""
    return (value // step) * step


def _marketable(side: str, limit: Decimal | None, price: Decimal) -> bool:
    if limit is None:
        return False
    return limit >= price if side == "BUY" else limit <= price


def _should_trigger(order_type: str, side: str, trigger: Decimal, price: Decimal) -> bool:
    if order_type == "STOP_MARKET":
        return price >= trigger if side == "BUY" else price <= trigger
    return price <= trigger if side == "BUY" else price >= trigger  # TAKE_PROFIT_MARKET


def _req(p: Mapping[str, str], name: str) -> str:
    value = p.get(name)
    if not value:
        raise VenueError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return value


def _side(p: Mapping[str, str]) -> str:
    side = _req(p, "side")
    if side not in ("BUY", "SELL"):
        raise VenueError(-1117)
    return side


def _bool(p: Mapping[str, str], name: str) -> bool:
    value = p.get(name, "false").lower()
    if value not in ("true", "false"):
        raise VenueError(-1130, f"Data sent for parameter '{name}' is not valid.")
    return value == "true"


def _int(p: Mapping[str, str], name: str, default: int) -> int:
    if name not in p:
        return default
    try:
        return int(p[name])
    except ValueError:
        raise VenueError(-1130, f"Data sent for parameter '{name}' is not valid.") from None


def _decimal(p: Mapping[str, str], name: str) -> Decimal | None:
    raw = p.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise VenueError(-1130, f"Data sent for parameter '{name}' is not valid.") from None
    if not value.is_finite():
        raise VenueError(-1130, f"Data sent for parameter '{name}' is not valid.")
    return value


def _qty(p: Mapping[str, str], name: str, spec: SymbolSpec) -> Decimal:
    value = _decimal(p, name)
    if value is None:
        raise VenueError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    if value <= 0:
        raise VenueError(-4003)
    if value % spec.step != 0:
        raise VenueError(-1111)
    return value.quantize(spec.step)


def _price(p: Mapping[str, str], name: str, spec: SymbolSpec) -> Decimal | None:
    value = _decimal(p, name)
    if value is None:
        return None
    if value <= 0:
        raise VenueError(-1130, f"Data sent for parameter '{name}' is not valid.")
    if value % spec.tick != 0:
        raise VenueError(-1111)
    return value.quantize(spec.tick)


def _check_client_id(client_id: str, name: str) -> None:
    if not is_valid_client_order_id(client_id):
        raise VenueError(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                                f"'^{CLIENT_ORDER_ID_PATTERN.pattern}$'.")
