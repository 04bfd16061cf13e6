"""The exchange's ledger: every order request it received, whatever happened to it.

Chaos tests prove "no two orders for one intent" from it, so it must record
refused, faulted and held requests as faithfully as fills.
"""

from __future__ import annotations

from collections import Counter

import requests

from runtime.simexchange import SimExchange
from runtime.venue import BinanceFuturesConnector


def test_ledger_records_every_order_request_in_order_with_outcomes(exchange: SimExchange,
                                                                   connector: BinanceFuturesConnector) -> None:
    connector.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "L-1")
    connector.place_order("BTCUSDT", "BUY", "LIMIT", "0.01", "L-2", price="96000")
    connector.cancel_order("BTCUSDT", "L-2")
    connector.place_order("BTCUSDT", "BUY", "MARKET", "100", "L-3")
    exchange.set_fault("http_429", count=1, scope="place")
    connector.place_order("ETHUSDT", "SELL", "MARKET", "0.5", "L-4")
    connector.query_order("BTCUSDT", "L-1")  # reads are not order requests

    ledger = exchange.ledger()
    assert [(e["action"], e["client_order_id"], e["outcome"]) for e in ledger] == [
        ("place", "L-1", "FILLED"), ("place", "L-2", "NEW"), ("cancel", "L-2", "CANCELED"),
        ("place", "L-3", "REJECTED"), ("place", "L-4", "REJECTED")]
    assert [e["seq"] for e in ledger] == [1, 2, 3, 4, 5]
    first, *_, last = ledger
    assert (first["symbol"], first["side"], first["type"], first["quantity"]) == ("BTCUSDT", "BUY", "MARKET", "0.01")
    assert first["executed"] and isinstance(first["order_id"], int) and first["time_ms"] > 0
    assert (last["http_status"], last["code"], last["fault"], last["executed"]) == (429, -1003, "http_429", False)

    over_http = requests.get(f"{exchange.admin_url}/ledger", timeout=2).json()["entries"]
    assert over_http == ledger
    only = requests.get(f"{exchange.admin_url}/ledger", params={"client_order_id": "L-2"}, timeout=2).json()
    assert [e["action"] for e in only["entries"]] == ["place", "cancel"]


def test_no_two_executed_orders_for_one_intent_across_a_lookup_before_resend(exchange: SimExchange,
                                                                             make_connector) -> None:
    """The DESIGN §3 discipline, done by hand: on doubt, look up the client id before sending again."""
    venue = make_connector(exchange, timeout_s=0.3)
    doubts = {"I-1": ("hold_reply", {"hold_s": 0.8}), "I-2": ("unknown_503", {"execute": False}), "I-3": None}
    for intent, doubt in doubts.items():
        if doubt:
            exchange.set_fault(doubt[0], count=1, **doubt[1])
        for _attempt in range(3):
            outcome = venue.place_order("BTCUSDT", "BUY", "MARKET", "0.01", intent)
            if outcome.ok or (outcome.needs_lookup and venue.query_order("BTCUSDT", intent).ok):
                break
    executed = Counter(e["client_order_id"] for e in exchange.ledger() if e["executed"] and e["action"] == "place")
    assert executed == {"I-1": 1, "I-2": 1, "I-3": 1}, "no two orders for one intent"
    sent = Counter(e["client_order_id"] for e in exchange.ledger())
    assert sent == {"I-1": 1, "I-2": 2, "I-3": 1}, "only the 503 that did not execute needed a resend"
    assert exchange.ledger("I-1")[0]["fault"] == "hold_reply"
