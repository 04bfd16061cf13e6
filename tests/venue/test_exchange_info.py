"""Issue 9 item 5: exchangeInfo as Binance serves it, its filters enforced by the venue and
applied by the connector before sending, and the v3 account endpoints.

The venue's codes (-1111, -4164, -4004/-4005, -4016/-4024, -1121) are proven with
raw signed requests; the connector must never provoke them: it rounds quantity
DOWN to the step and price to the tick, and refuses locally (``sent=False``)
what the filters would refuse.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests

from runtime.simexchange import SimExchange
from runtime.venue import BinanceFuturesConnector
from runtime.venue import OutcomeKind as K
from runtime.venue.filters import parse_exchange_info
from runtime.venue.signing import signed_query


def raw(exchange: SimExchange, method: str, path: str, **params: str) -> dict:
    """One signed request as a third party would send it, without the connector's checks."""
    params = {**params, "recvWindow": "5000", "timestamp": str(exchange.now_ms())}
    reply = requests.request(method, f"{exchange.rest_url}{path}?{signed_query(exchange.api_secret, params)}",
                             headers={"X-MBX-APIKEY": exchange.api_key}, timeout=2)
    return reply.json()


def test_exchange_info_has_what_third_party_clients_read(exchange: SimExchange) -> None:
    info = requests.get(f"{exchange.rest_url}/fapi/v1/exchangeInfo", timeout=2).json()
    assert {"timezone", "serverTime", "rateLimits", "exchangeFilters", "assets", "symbols"} <= set(info)
    assert {r["rateLimitType"] for r in info["rateLimits"]} == {"REQUEST_WEIGHT", "ORDERS"}
    btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    assert (btc["baseAsset"], btc["quoteAsset"], btc["marginAsset"]) == ("BTC", "USDT", "USDT")
    assert btc["contractType"] == "PERPETUAL" and btc["status"] == "TRADING"
    assert "MARKET" in btc["orderTypes"] and "GTC" in btc["timeInForce"]
    assert (btc["pricePrecision"], btc["quantityPrecision"]) == (1, 3)
    filters = {f["filterType"]: f for f in btc["filters"]}
    assert {"PRICE_FILTER", "LOT_SIZE", "MARKET_LOT_SIZE", "MAX_NUM_ORDERS", "PERCENT_PRICE",
            "MIN_NOTIONAL"} <= set(filters)
    assert filters["MIN_NOTIONAL"]["notional"] == "100", "futures spell it 'notional'; BTCUSDT's is 100"
    assert {"minQty", "maxQty", "stepSize"} <= set(filters["LOT_SIZE"])
    parsed = parse_exchange_info(info)["BTCUSDT"]
    assert (parsed.tick_size, parsed.step_size, parsed.market_max_qty) == (Decimal("0.1"), Decimal("0.001"),
                                                                           Decimal("120"))


@pytest.mark.parametrize("params,code", [
    ({"symbol": "BTCUSDT", "type": "MARKET", "quantity": "0.0001"}, -1111),  # finer than the step
    ({"symbol": "BTCUSDT", "type": "LIMIT", "quantity": "0.01", "price": "100000.05", "timeInForce": "GTC"},
     -1111),  # finer than the tick
    ({"symbol": "ETHUSDT", "type": "MARKET", "quantity": "0.001"}, -4164),  # 3 USDT < MIN_NOTIONAL 5
    ({"symbol": "BTCUSDT", "type": "MARKET", "quantity": "121"}, -4005),  # above MARKET_LOT_SIZE maxQty
    ({"symbol": "BTCUSDT", "type": "LIMIT", "quantity": "0.01", "price": "106000", "timeInForce": "GTC"}, -4016),
    ({"symbol": "BTCUSDT", "type": "LIMIT", "quantity": "0.01", "price": "94000", "timeInForce": "GTC"}, -4024),
    ({"symbol": "DOGEUSDT", "type": "MARKET", "quantity": "1"}, -1121),
])
def test_venue_enforces_the_filters_like_binance(exchange: SimExchange, params: dict, code: int) -> None:
    reply = raw(exchange, "POST", "/fapi/v1/order", side="BUY", newClientOrderId="f-1", **params)
    assert reply.get("code") == code, reply
    assert not [e for e in exchange.ledger("f-1") if e["executed"]]


def test_reduce_only_is_exempt_from_min_notional(exchange: SimExchange) -> None:
    assert raw(exchange, "POST", "/fapi/v1/order", symbol="ETHUSDT", side="BUY", type="MARKET",
               quantity="0.01", newClientOrderId="eth-long", newOrderRespType="RESULT")["status"] == "FILLED"
    reply = raw(exchange, "POST", "/fapi/v1/order", symbol="ETHUSDT", side="SELL", type="MARKET",
                quantity="0.001", reduceOnly="true", newClientOrderId="eth-ro", newOrderRespType="RESULT")
    assert reply["status"] == "FILLED", "a reduce-only order below MIN_NOTIONAL is accepted"


def test_connector_rounds_quantity_down_and_price_to_the_tick(exchange: SimExchange,
                                                              connector: BinanceFuturesConnector) -> None:
    market = connector.place_order("BTCUSDT", "BUY", "MARKET", "0.0159", "round-1")
    assert market.kind is K.FILLED and market.order["origQty"] == "0.015", "rounded DOWN, never up"
    limit = connector.place_order("BTCUSDT", "BUY", "LIMIT", "0.01", "round-2", price="99000.06")
    assert limit.ok and limit.order["price"] == "99000.1"
    assert [e["quantity"] for e in exchange.ledger("round-1")] == ["0.015"]


@pytest.mark.parametrize("symbol,qty,kwargs,fragment", [
    ("ETHUSDT", "0.001", {"reference_price": "3000"}, "MIN_NOTIONAL"),
    ("BTCUSDT", "0.0004", {}, "minQty"),
    ("BTCUSDT", "500", {}, "MARKET_LOT_SIZE maxQty"),
    ("DOGEUSDT", "1", {}, "not a TRADING symbol"),
])
def test_connector_refuses_what_the_filters_refuse_without_sending(exchange: SimExchange,
                                                                    connector: BinanceFuturesConnector,
                                                                    symbol: str, qty: str, kwargs: dict,
                                                                    fragment: str) -> None:
    outcome = connector.place_order(symbol, "BUY", "MARKET", qty, "local-1", **kwargs)
    assert outcome.kind is K.REJECTED_PERMANENT and not outcome.sent and fragment in outcome.message, \
        outcome.describe()
    assert exchange.ledger("local-1") == [], "a filter refusal never reaches the venue"


def test_connector_lets_a_small_reduce_only_exit_through(exchange: SimExchange,
                                                         connector: BinanceFuturesConnector) -> None:
    assert connector.place_order("ETHUSDT", "BUY", "MARKET", "0.01", "eth-1").kind is K.FILLED
    exit_ = connector.place_order("ETHUSDT", "SELL", "MARKET", "0.001", "eth-2", reduce_only=True,
                                  reference_price="3000")
    assert exit_.kind is K.FILLED, "an exit is never refused for its notional"


def test_connector_loads_exchange_info_on_first_order(exchange: SimExchange, make_connector) -> None:
    venue = make_connector(exchange)
    assert venue.symbol_filters("BTCUSDT") is None
    assert venue.place_order("BTCUSDT", "BUY", "MARKET", "0.0109", "lazy-1").order["origQty"] == "0.010"
    assert venue.symbol_filters("BTCUSDT").min_notional == Decimal("100")


def test_v3_position_risk_lists_open_positions_only(exchange: SimExchange,
                                                    connector: BinanceFuturesConnector) -> None:
    assert raw(exchange, "GET", "/fapi/v3/positionRisk") == [], "v3 lists only symbols with a position"
    connector.place_order("BTCUSDT", "BUY", "MARKET", "0.02", "v3-1")
    [btc] = raw(exchange, "GET", "/fapi/v3/positionRisk")
    assert btc["symbol"] == "BTCUSDT" and btc["positionAmt"] == "0.020" and "leverage" not in btc
    [eth] = connector.positions("ETHUSDT").data
    assert eth.amount == 0, "a requested symbol v3 leaves out is flat"
    assert [p.symbol for p in connector.positions().data] == ["BTCUSDT"]


def test_account_balance_and_leverage_brackets(exchange: SimExchange, connector: BinanceFuturesConnector) -> None:
    connector.place_order("BTCUSDT", "BUY", "MARKET", "0.02", "acct-1")
    account = connector.account().data
    assert Decimal(account["totalWalletBalance"]) == Decimal(100_000)
    assert Decimal(account["totalInitialMargin"]) == Decimal("100"), "0.02 x 100000 / 20x"
    assert account["assets"][0]["asset"] == "USDT"
    assert next(p for p in account["positions"] if p["symbol"] == "BTCUSDT")["positionAmt"] == "0.020"
    for version in ("v2", "v3"):
        [usdt] = raw(exchange, "GET", f"/fapi/{version}/balance")
        assert usdt["asset"] == "USDT" and Decimal(usdt["balance"]) == Decimal(100_000)
    assert connector.balances().data[0]["asset"] == "USDT"
    bracket = connector.leverage_brackets("BTCUSDT").data
    assert bracket["symbol"] == "BTCUSDT" and bracket["brackets"][0]["initialLeverage"] == 125
    assert len(raw(exchange, "GET", "/fapi/v1/leverageBracket")) == 2, "every symbol when none is named"
