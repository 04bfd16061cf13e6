"""DESIGN §3 / issue 9 item 1: a client id is unique among OPEN orders only, as on Binance.

Binance documents ``newClientOrderId`` as "a unique id among open orders": a
second send with the id of an order that already FILLED, EXPIRED or was
CANCELED is a NEW order. The simulator must not be kinder, so these tests pin
the rule over real HTTP: -4116 only while the earlier order is open, and a
lookup by ``origClientOrderId`` / ``clientAlgoId`` returns the most recent one.
"""

from __future__ import annotations

from decimal import Decimal

from runtime.simexchange import SimExchange
from runtime.venue import BinanceFuturesConnector
from runtime.venue import OutcomeKind as K


def executed(exchange: SimExchange, client_id: str) -> list[dict]:
    return [e for e in exchange.ledger(client_id) if e["action"] == "place" and e["executed"]]


def test_reused_id_of_a_filled_order_makes_a_second_order(exchange: SimExchange,
                                                          connector: BinanceFuturesConnector) -> None:
    first = connector.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "reuse-1")
    second = connector.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "reuse-1")
    assert (first.kind, second.kind) == (K.FILLED, K.FILLED), \
        "a filled order's id is free again: Binance executes the second send as a new order"
    assert first.order["orderId"] != second.order["orderId"]
    assert len(executed(exchange, "reuse-1")) == 2
    assert connector.positions("BTCUSDT").data[0].amount == Decimal("0.02")
    assert connector.query_order("BTCUSDT", "reuse-1").order["orderId"] == second.order["orderId"], \
        "a lookup by origClientOrderId returns the most recent order with that id"


def test_reused_id_of_a_canceled_order_makes_a_new_order(exchange: SimExchange,
                                                         connector: BinanceFuturesConnector) -> None:
    assert connector.place_order("BTCUSDT", "BUY", "LIMIT", "0.01", "reuse-2", price="96000").ok
    assert connector.place_order("BTCUSDT", "BUY", "LIMIT", "0.01", "reuse-2", price="96000").kind is K.DUPLICATE
    assert connector.cancel_order("BTCUSDT", "reuse-2").ok
    again = connector.place_order("BTCUSDT", "BUY", "LIMIT", "0.01", "reuse-2", price="97000")
    assert again.kind is K.ACCEPTED, "a canceled order's id is free again"
    assert connector.query_order("BTCUSDT", "reuse-2").order["price"] == "97000.0"


def test_reused_algo_id_of_a_finished_stop_makes_a_new_stop(exchange: SimExchange,
                                                            connector: BinanceFuturesConnector) -> None:
    assert connector.place_order("BTCUSDT", "BUY", "MARKET", "0.05", "long-1").kind is K.FILLED
    assert connector.place_stop("BTCUSDT", "SELL", "95000", "0.02", "sl-1").ok
    assert connector.place_stop("BTCUSDT", "SELL", "95000", "0.02", "sl-1").kind is K.DUPLICATE, \
        "an open algo order keeps its clientAlgoId"
    exchange.set_price("BTCUSDT", 94_000)
    assert connector.query_stop("sl-1").order_status == "FINISHED"
    exchange.set_price("BTCUSDT", 100_000)
    again = connector.place_stop("BTCUSDT", "SELL", "95000", "0.02", "sl-1")
    assert again.ok, "a finished algo order's id is free again"
    assert connector.query_stop("sl-1").order_status == "NEW", "lookup by clientAlgoId returns the newest"
