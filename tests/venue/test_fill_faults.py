"""F29 / F30 and issue 9 item 4: the venue outcomes a kind simulator used to hide.

Each fault is driven over real HTTP and WebSocket: a request delayed in the
network (recvWindow checked on arrival), an "unknown" reply whose order executes
later (and shows up on the user-data stream), partial fills, MARKET orders that
EXPIRE with part or none executed, and a thin book that a large order walks.
"""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest
import requests

from runtime.simexchange import SimExchange
from runtime.venue import BinanceFuturesConnector
from runtime.venue import OutcomeKind as K
from tests.venue.user_socket import UserSocket
from tests.waiting import eventually

NEW_FAULTS = ("network_delay", "partial_fill", "market_expire", "thin_book")


def entries(exchange: SimExchange, client_id: str) -> list[dict]:
    return [e for e in exchange.ledger(client_id) if e["action"] == "place"]


def position(connector: BinanceFuturesConnector) -> Decimal:
    return connector.positions("BTCUSDT").data[0].amount


def test_f29_delayed_request_older_than_its_recv_window_is_rejected_1021_and_never_executes(
        exchange: SimExchange, make_connector) -> None:
    venue = make_connector(exchange, recv_window_ms=500, timeout_s=0.3)
    exchange.set_fault("network_delay", count=1, ms=1200)
    outcome = venue.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "late-1")
    assert outcome.kind is K.UNKNOWN, "the client timed out while its request was still in the network"
    [entry] = eventually(lambda: entries(exchange, "late-1"), timeout=10, what="the delayed request arrives")
    assert (entry["code"], entry["executed"]) == (-1021, False), \
        "a request older than its recvWindow on arrival is rejected -1021 and never executed"
    assert position(venue) == 0


def test_f29_delayed_request_inside_its_recv_window_executes_after_the_client_gave_up(
        exchange: SimExchange, make_connector) -> None:
    venue = make_connector(exchange, recv_window_ms=5000, timeout_s=0.3)
    exchange.set_fault("network_delay", count=1, ms=800)
    assert venue.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "late-2").kind is K.UNKNOWN
    [entry] = eventually(lambda: entries(exchange, "late-2"), timeout=10, what="the delayed request arrives")
    assert entry["executed"] and entry["outcome"] == "FILLED", \
        "a delayed request still inside its recvWindow executes though nobody waits for the reply"
    assert venue.query_order("BTCUSDT", "late-2").kind is K.FILLED


def test_f29_unknown_reply_executes_later_and_shows_up_on_the_user_data_stream(
        exchange: SimExchange, connector: BinanceFuturesConnector) -> None:
    user = UserSocket(exchange)
    try:
        exchange.set_fault("unknown_503", count=1, execute_after_s=1.0)
        outcome = connector.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "unk-1")
        assert (outcome.kind, outcome.code) == (K.UNKNOWN, -1007)
        assert connector.query_order("BTCUSDT", "unk-1").kind is K.NOT_FOUND, \
            "right after the unknown reply the venue has no such order yet: one NOT_FOUND settles nothing"
        updates = eventually(lambda: [o for o in user.orders("unk-1") if o["X"] == "FILLED"], timeout=10,
                             what="the late execution on the user-data stream")
        assert updates[0]["z"] == "0.010" and updates[0]["x"] == "TRADE"
        assert connector.query_order("BTCUSDT", "unk-1").kind is K.FILLED
        assert position(connector) == Decimal("0.01")
        [pending, late] = entries(exchange, "unk-1")
        assert (pending["outcome"], pending["executed"], late["executed"]) == ("PENDING", False, True)
    finally:
        user.close()


def test_f30_partial_fill_then_filled_carries_executed_qty(exchange: SimExchange,
                                                          connector: BinanceFuturesConnector) -> None:
    user = UserSocket(exchange)
    try:
        exchange.set_fault("partial_fill", count=1, ratio=0.4, rest_after_s=0.5)
        outcome = connector.place_order("BTCUSDT", "BUY", "MARKET", "0.05", "part-1")
        assert outcome.order_status == "PARTIALLY_FILLED" and outcome.order["executedQty"] == "0.020"
        assert eventually(lambda: connector.query_order("BTCUSDT", "part-1").order_status == "FILLED", timeout=10,
                      interval=0.1)
        assert connector.query_order("BTCUSDT", "part-1").order["executedQty"] == "0.050"
        assert position(connector) == Decimal("0.05")
        trades = eventually(lambda: [(o["l"], o["z"], o["X"]) for o in user.orders("part-1") if o["x"] == "TRADE"]
                            if len(user.orders("part-1")) >= 3 else None, timeout=5)
        assert trades == [("0.020", "0.020", "PARTIALLY_FILLED"), ("0.030", "0.050", "FILLED")]
    finally:
        user.close()


def test_f30_partially_filled_limit_canceled_keeps_its_executed_qty(exchange: SimExchange,
                                                                     connector: BinanceFuturesConnector) -> None:
    exchange.set_fault("partial_fill", count=1, ratio=0.5, rest_after_s=60)
    outcome = connector.place_order("BTCUSDT", "BUY", "LIMIT", "0.04", "part-2", price="100100")
    assert outcome.order_status == "PARTIALLY_FILLED"
    assert connector.open_orders("BTCUSDT").data[0]["clientOrderId"] == "part-2"
    cancel = connector.cancel_order("BTCUSDT", "part-2")
    assert (cancel.order_status, cancel.order["executedQty"]) == ("CANCELED", "0.020")
    assert position(connector) == Decimal("0.02"), "the position is what executed, not what was asked"


@pytest.mark.parametrize("ratio,status,executed", [(0.0, "EXPIRED", "0"), (0.5, "EXPIRED_IN_MATCH", "0.025")])
def test_f30_market_order_expires_with_part_or_none_executed(exchange: SimExchange,
                                                             connector: BinanceFuturesConnector,
                                                             ratio: float, status: str, executed: str) -> None:
    exchange.set_fault("market_expire", count=1, ratio=ratio, status=status)
    outcome = connector.place_order("BTCUSDT", "BUY", "MARKET", "0.05", "exp-1")
    assert outcome.kind is K.ACCEPTED and outcome.order_status == status
    assert Decimal(outcome.order["executedQty"]) == Decimal(executed)
    assert position(connector) == Decimal(executed), "position = executedQty of the expired order"
    assert connector.query_order("BTCUSDT", "exp-1").order_status == status


def test_f30_thin_book_walks_the_levels_and_expires_the_rest(exchange: SimExchange,
                                                             connector: BinanceFuturesConnector) -> None:
    exchange.pause_market()
    asks = exchange.book_snapshot("BTCUSDT", 5)["asks"]
    available = sum(Decimal(q) for _, q in asks[:2])
    exchange.set_fault("thin_book", count=1, levels=2)
    outcome = connector.place_order("BTCUSDT", "BUY", "MARKET", "15", "thin-1")
    assert outcome.order_status == "EXPIRED"
    assert Decimal(outcome.order["executedQty"]) == available, "a large order takes what the book has"
    assert Decimal(asks[0][0]) <= Decimal(outcome.order["avgPrice"]) <= Decimal(asks[1][0])
    assert position(connector) == available
    after = exchange.book_snapshot("BTCUSDT", 5)["asks"]
    assert [p for p, _ in after[:2]] != [p for p, _ in asks[:2]], "the levels it took are gone from the book"


@pytest.mark.parametrize("name", NEW_FAULTS + ("unknown_503",))
def test_new_fault_controls_are_documented_in_help_and_admin(exchange: SimExchange, name: str) -> None:
    catalog = requests.get(f"{exchange.admin_url}/help", timeout=2).json()["faults"]
    assert name in catalog
    reply = requests.post(f"{exchange.admin_url}/faults", json={"name": name, "count": 1}, timeout=2)
    assert reply.status_code == 200 and name in reply.json()["active"]


def test_new_fault_controls_are_in_cli_help() -> None:
    text = subprocess.run([sys.executable, "-m", "runtime.simexchange", "--help"], capture_output=True, text=True,
                          timeout=30).stdout
    for name in NEW_FAULTS + ("execute_after_s",):
        assert name in text


@pytest.mark.parametrize("fault,fields,fragment", [
    ("partial_fill", {"ratio": 1.0}, "in (0, 1)"),
    ("market_expire", {"ratio": -0.1}, "in [0, 1)"),
    ("thin_book", {"levels": 0}, "> 0"),
    ("network_delay", {"ms": -5}, ">= 0"),
    ("unknown_503", {"execute_after_s": 8.5}, "the simulator's late-execution horizon"),
])
def test_fault_bounds_named_in_the_error(exchange: SimExchange, fault: str, fields: dict, fragment: str) -> None:
    reply = requests.post(f"{exchange.admin_url}/faults", json={"name": fault, **fields}, timeout=2)
    assert reply.status_code == 400 and fragment in reply.json()["error"]
