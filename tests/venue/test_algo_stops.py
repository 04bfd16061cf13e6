"""Exchange-side stops via /fapi/v1/algoOrder: placed, listed, triggered by price, cancelled."""

from __future__ import annotations

import time
from decimal import Decimal

import requests

from runtime.simexchange import SimExchange
from runtime.venue import BinanceFuturesConnector, OutcomeKind

K = OutcomeKind


def long_position(connector: BinanceFuturesConnector, qty: str = "0.05") -> None:
    assert connector.place_order("BTCUSDT", "BUY", "MARKET", qty, f"entry-{qty}").kind is K.FILLED


def test_stop_placed_then_triggered_by_a_price_move_closes_the_position(exchange: SimExchange,
                                                                        connector: BinanceFuturesConnector) -> None:
    long_position(connector)
    placed = connector.place_stop("BTCUSDT", "SELL", "95000", "0.05", "s1:sl:1")
    assert placed.kind is K.ACCEPTED and placed.order_status == "NEW", placed.describe()
    assert [a["clientAlgoId"] for a in connector.open_stops("BTCUSDT").data] == ["s1:sl:1"]

    exchange.set_price("BTCUSDT", 96_000)
    assert connector.query_stop("s1:sl:1").order_status == "NEW", "not crossed yet"
    exchange.set_price("BTCUSDT", 94_900)

    triggered = connector.query_stop("s1:sl:1")
    assert triggered.kind is K.FILLED and triggered.order_status == "FINISHED", triggered.describe()
    assert connector.positions("BTCUSDT").data[0].amount == 0, "the stop closed the long"
    assert connector.open_stops().data == []
    actions = [(e["action"], e["outcome"]) for e in exchange.ledger("s1:sl:1")]
    assert actions == [("place_algo", "NEW"), ("trigger", "FILLED")]


def test_close_position_stop_fires_on_a_price_spike_fault(exchange: SimExchange,
                                                          connector: BinanceFuturesConnector) -> None:
    long_position(connector, "0.03")
    assert connector.place_stop("BTCUSDT", "SELL", 97_000, None, "cp-1", close_position=True).ok
    response = requests.post(f"{exchange.admin_url}/faults", json={"name": "price_spike", "pct": -5,
                                                                   "symbol": "BTCUSDT"}, timeout=2)
    assert response.status_code == 200, response.text
    assert exchange.price("BTCUSDT") == Decimal("95000.0")
    assert connector.query_stop("cp-1").kind is K.FILLED
    assert connector.positions("BTCUSDT").data[0].amount == 0


def test_stop_that_would_trigger_immediately_is_a_permanent_reject(connector: BinanceFuturesConnector) -> None:
    long_position(connector)
    outcome = connector.place_stop("BTCUSDT", "SELL", "100500", "0.05", "bad-sl")
    assert (outcome.kind, outcome.code) == (K.REJECTED_PERMANENT, -2021), outcome.describe()


def test_cancelled_stop_does_not_fire(exchange: SimExchange, connector: BinanceFuturesConnector) -> None:
    long_position(connector)
    assert connector.place_stop("BTCUSDT", "SELL", "95000", "0.05", "cx-1").ok
    cancelled = connector.cancel_stop("BTCUSDT", "cx-1")
    assert cancelled.ok and cancelled.data["clientAlgoId"] == "cx-1"
    exchange.set_price("BTCUSDT", 90_000)
    assert connector.query_stop("cx-1").order_status == "CANCELED"
    assert connector.positions("BTCUSDT").data[0].amount == Decimal("0.05")
    assert connector.cancel_stop("BTCUSDT", "cx-1").kind is K.NOT_FOUND
    assert connector.query_stop("never").kind is K.NOT_FOUND


def test_duplicate_stop_client_id_is_duplicate(connector: BinanceFuturesConnector) -> None:
    long_position(connector)
    assert connector.place_stop("BTCUSDT", "SELL", "95000", "0.05", "dup-sl").ok
    assert connector.place_stop("BTCUSDT", "SELL", "95000", "0.05", "dup-sl").kind is K.DUPLICATE


def test_scripted_price_path_triggers_a_short_stop_on_the_way_up(exchange: SimExchange,
                                                                 connector: BinanceFuturesConnector) -> None:
    assert connector.place_order("BTCUSDT", "SELL", "MARKET", "0.02", "short-1").kind is K.FILLED
    assert connector.place_stop("BTCUSDT", "BUY", "102000", "0.02", "short-sl").ok
    response = requests.post(f"{exchange.admin_url}/price",
                             json={"symbol": "BTCUSDT", "path": [100500, 101500, 102500, 103000]}, timeout=2)
    assert response.status_code == 200 and response.json()["scripted_steps"] == 4
    deadline = time.monotonic() + 2.0
    while exchange.price("BTCUSDT") < Decimal("102500") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert exchange.price("BTCUSDT") >= Decimal("102500"), "the scripted path never reached the trigger"
    assert connector.query_stop("short-sl").kind is K.FILLED
    assert connector.positions("BTCUSDT").data[0].amount == 0
