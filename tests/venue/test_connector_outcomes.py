"""The connector against the simulated exchange over real sockets: every outcome class (F1-F5, F21).

Each test states what the venue did (from its ledger) next to what the
connector concluded, because the point of an outcome is what it lets the
engine assume about the venue.
"""

from __future__ import annotations

import socket
import time
from decimal import Decimal

import pytest
from loguru import logger

from runtime.simexchange import SimExchange
from runtime.venue import BinanceFuturesConnector, OutcomeKind, Priority, WeightBudget

K = OutcomeKind


def executed(exchange: SimExchange, client_order_id: str) -> list[dict]:
    return [e for e in exchange.ledger(client_order_id) if e["executed"] and e["action"] == "place"]


def test_f2_market_order_filled_and_position_follows(exchange: SimExchange, connector: BinanceFuturesConnector) -> None:
    outcome = connector.place_order("BTCUSDT", "BUY", "MARKET", "0.05", "s1:buy:1")
    assert outcome.kind is K.FILLED, outcome.describe()
    assert outcome.order["executedQty"] == "0.050" and Decimal(outcome.order["avgPrice"]) == Decimal("100000.0")
    [position] = connector.positions("BTCUSDT").data
    assert position.amount == Decimal("0.05") and position.side == "LONG"
    assert position.entry_price == Decimal("100000")


def test_limit_order_accepted_listed_cancelled_then_not_found(exchange: SimExchange,
                                                              connector: BinanceFuturesConnector) -> None:
    placed = connector.place_order("BTCUSDT", "BUY", "LIMIT", "0.01", "lim-1", price="96000")
    assert placed.kind is K.ACCEPTED and placed.order_status == "NEW"
    assert [o["clientOrderId"] for o in connector.open_orders("BTCUSDT").data] == ["lim-1"]
    cancelled = connector.cancel_order("BTCUSDT", "lim-1")
    assert cancelled.kind is K.ACCEPTED and cancelled.order_status == "CANCELED"
    assert connector.open_orders().data == []
    again = connector.cancel_order("BTCUSDT", "lim-1")
    assert again.kind is K.NOT_FOUND, again.describe()


def test_resting_limit_fills_when_the_price_crosses(exchange: SimExchange, connector: BinanceFuturesConnector) -> None:
    assert connector.place_order("BTCUSDT", "SELL", "LIMIT", "0.01", "lim-2", price="101000").kind is K.ACCEPTED
    exchange.set_price("BTCUSDT", 101_500)
    assert connector.query_order("BTCUSDT", "lim-2").kind is K.FILLED


def test_f2_permanent_reject_margin_insufficient_executes_nothing(exchange: SimExchange,
                                                                   connector: BinanceFuturesConnector) -> None:
    outcome = connector.place_order("BTCUSDT", "BUY", "MARKET", "100", "big-1")
    assert outcome.kind is K.REJECTED_PERMANENT and outcome.code == -2019, outcome.describe()
    assert not outcome.retryable and not outcome.needs_lookup
    assert executed(exchange, "big-1") == [] and exchange.ledger("big-1")[0]["code"] == -2019
    assert connector.positions("BTCUSDT").data[0].amount == 0


@pytest.mark.parametrize("symbol,order_type,qty,code", [
    ("BTCUSDT", "STOP_MARKET", "0.01", -4120),  # conditional orders moved to /fapi/v1/algoOrder
])
def test_f2_permanent_rejects_by_code(connector: BinanceFuturesConnector, symbol: str, order_type: str, qty: str,
                                      code: int) -> None:
    outcome = connector.place_order(symbol, "BUY", order_type, qty, f"perm{code}")
    assert (outcome.kind, outcome.code) == (K.REJECTED_PERMANENT, code), outcome.describe()


def test_f2_transient_reject_then_same_client_id_succeeds(exchange: SimExchange,
                                                          connector: BinanceFuturesConnector) -> None:
    exchange.set_fault("internal_error", count=1)
    first = connector.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "tr-1")
    assert first.kind is K.REJECTED_TRANSIENT and first.code == -1001 and first.retryable
    assert connector.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "tr-1").kind is K.FILLED
    assert [e["outcome"] for e in exchange.ledger("tr-1")] == ["REJECTED", "FILLED"]
    assert len(executed(exchange, "tr-1")) == 1


def test_f5_429_retry_after_then_local_budget_holds_requests_back(exchange: SimExchange,
                                                                  connector: BinanceFuturesConnector) -> None:
    exchange.set_fault("http_429", count=1, retry_after_s=2)
    limited = connector.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "rl-1", priority=Priority.STOP)
    assert limited.kind is K.RATE_LIMITED and limited.retry_after_s == 2.0 and limited.sent
    assert executed(exchange, "rl-1") == []
    held = connector.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "rl-1", priority=Priority.STOP)
    assert held.kind is K.RATE_LIMITED and not held.sent, "the budget must not send into a Retry-After window"
    assert 1.0 < held.retry_after_s <= 2.0
    assert len(exchange.ledger("rl-1")) == 1, "the held request never reached the venue"
    assert connector.budget.snapshot()["rate_per_s"] < connector.budget.snapshot()["max_rate_per_s"]


def test_f5_418_ban_is_rate_limited(exchange: SimExchange, connector: BinanceFuturesConnector) -> None:
    exchange.set_fault("http_418", count=1, retry_after_s=30)
    outcome = connector.positions()
    assert outcome.kind is K.RATE_LIMITED and outcome.retry_after_s == 30.0 and "418" in outcome.message


def test_f5_weight_header_followed_and_natural_limit_answers_429(make_exchange, make_connector) -> None:
    exchange = make_exchange(weight_limit=12)
    venue = make_connector(exchange, budget=WeightBudget(weight_limit=2400))
    assert venue.positions().ok and venue.positions().ok  # 5 + 5 weight
    assert venue.budget.snapshot()["used_weight"] == 10, "budget follows X-MBX-USED-WEIGHT-1M"
    outcome = venue.positions()
    assert outcome.kind is K.RATE_LIMITED and outcome.code == -1003 and outcome.retry_after_s >= 1
    strict = make_connector(exchange, budget=WeightBudget(weight_limit=12))
    assert strict.depth("BTCUSDT", 5).kind is K.RATE_LIMITED  # the sim's 429 leaves a Retry-After window


def test_f1_timeout_is_unknown_and_order_exists(exchange: SimExchange, make_connector) -> None:
    venue = make_connector(exchange, timeout_s=0.3)
    exchange.set_fault("hold_reply", count=1, hold_s=1.0)
    started = time.monotonic()
    outcome = venue.place_order("BTCUSDT", "BUY", "MARKET", "0.02", "to-1")
    assert outcome.kind is K.UNKNOWN and outcome.needs_lookup, outcome.describe()
    assert time.monotonic() - started < 0.9, "the connector must give up at its timeout"
    lookup = venue.query_order("BTCUSDT", "to-1")
    assert lookup.kind is K.FILLED, "the venue executed the order whose reply we never saw"
    assert len(executed(exchange, "to-1")) == 1 and exchange.ledger("to-1")[0]["fault"] == "hold_reply"


def test_f1_503_unknown_executed_lookup_finds_the_order(exchange: SimExchange,
                                                         connector: BinanceFuturesConnector) -> None:
    exchange.set_fault("unknown_503", count=1, execute=True)
    outcome = connector.place_order("BTCUSDT", "SELL", "MARKET", "0.01", "u-1")
    assert (outcome.kind, outcome.code, outcome.http_status) == (K.UNKNOWN, -1007, 503)
    assert connector.query_order("BTCUSDT", "u-1").kind is K.FILLED
    [entry] = exchange.ledger("u-1")
    assert (entry["http_status"], entry["executed"], entry["fault"]) == (503, True, "unknown_503")


def test_f1_503_unknown_not_executed_lookup_absent_then_resend_fills_once(exchange: SimExchange,
                                                                          connector: BinanceFuturesConnector) -> None:
    exchange.set_fault("unknown_503", count=1, execute=False, code=-1006)
    assert connector.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "u-2").kind is K.UNKNOWN
    assert connector.query_order("BTCUSDT", "u-2").kind is K.NOT_FOUND
    assert connector.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "u-2").kind is K.FILLED
    assert len(executed(exchange, "u-2")) == 1, "one intent, one executed order"


@pytest.mark.parametrize("mode,fragment", [("html", "not JSON"), ("truncated", "not JSON"),
                                           ("missing_field", "missing field 'status'")])
def test_f1_malformed_reply_is_unknown_naming_the_problem(exchange: SimExchange, connector: BinanceFuturesConnector,
                                                          mode: str, fragment: str) -> None:
    exchange.set_fault("rest_corrupt", count=1, mode=mode)
    outcome = connector.place_order("BTCUSDT", "BUY", "MARKET", "0.01", f"mal-{mode}")
    assert outcome.kind is K.UNKNOWN and fragment in outcome.message, outcome.describe()
    assert connector.query_order("BTCUSDT", f"mal-{mode}").kind is K.FILLED


def test_f3_token_invalid_fault_and_unknown_key(exchange: SimExchange, connector: BinanceFuturesConnector,
                                                make_connector) -> None:
    exchange.set_fault("token_invalid", count=1)
    outcome = connector.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "tok-1")
    assert (outcome.kind, outcome.code, outcome.http_status) == (K.TOKEN_INVALID, -2015, 401)
    assert not outcome.retryable and executed(exchange, "tok-1") == []
    stranger = make_connector(exchange, api_key="not-a-key")
    assert stranger.positions().kind is K.TOKEN_INVALID
    assert connector.depth("BTCUSDT", 5).ok, "public market data needs no key"


def test_f3_bad_signature_is_answered_1022_and_nothing_executes(exchange: SimExchange, make_connector) -> None:
    forger = make_connector(exchange, api_secret="wrong-secret")
    outcome = forger.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "sig-1")
    assert (outcome.code, outcome.http_status) == (-1022, 400), outcome.describe()
    assert outcome.kind is K.TOKEN_INVALID, "a wrong secret fails every strategy of the account: operator"
    [entry] = exchange.ledger("sig-1")
    assert entry["code"] == -1022 and not entry["executed"]


def test_duplicate_client_id_4116_means_an_open_order_exists(exchange: SimExchange,
                                                              connector: BinanceFuturesConnector) -> None:
    assert connector.place_order("BTCUSDT", "BUY", "LIMIT", "0.01", "dup-1", price="96000").kind is K.ACCEPTED
    again = connector.place_order("BTCUSDT", "BUY", "LIMIT", "0.01", "dup-1", price="96000")
    assert (again.kind, again.code) == (K.DUPLICATE, -4116) and again.needs_lookup
    assert connector.query_order("BTCUSDT", "dup-1").order_status == "NEW"
    assert len(executed(exchange, "dup-1")) == 1


def test_not_found_for_unknown_client_id(connector: BinanceFuturesConnector) -> None:
    query = connector.query_order("BTCUSDT", "never-sent")
    assert (query.kind, query.code) == (K.NOT_FOUND, -2013)
    cancel = connector.cancel_order("BTCUSDT", "never-sent")
    assert (cancel.kind, cancel.code) == (K.NOT_FOUND, -2011)


@pytest.mark.parametrize("skew_ms", [30_000, -30_000])
def test_f21_timestamp_outside_recv_window_resyncs_clock(exchange: SimExchange,
                                                          connector: BinanceFuturesConnector, skew_ms: int) -> None:
    exchange.set_fault("clock_skew", ms=skew_ms)
    outcome = connector.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "ts-1")
    assert (outcome.kind, outcome.code) == (K.REJECTED_TRANSIENT, -1021) and outcome.clock_skew
    assert connector.clock.offset_ms == pytest.approx(skew_ms, abs=500), "connector resynced on -1021"
    assert connector.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "ts-1").kind is K.FILLED


def test_f4_connection_refused_is_unknown_for_submits_transient_for_reads() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    venue = BinanceFuturesConnector(f"http://127.0.0.1:{port}", "k", "s", timeout_s=0.5)
    try:
        submit = venue.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "net-1")
        assert submit.kind is K.UNKNOWN and "connection error" in submit.message
        assert venue.positions().kind is K.REJECTED_TRANSIENT
    finally:
        venue.close()


def test_latency_fault_delays_the_request(exchange: SimExchange, connector: BinanceFuturesConnector) -> None:
    exchange.set_fault("rest_latency", count=1, ms=200)
    started = time.monotonic()
    assert connector.positions().ok
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    assert connector.positions().ok
    assert time.monotonic() - started < 0.2, "count=1 means one request only"


def test_bad_client_order_id_raises_before_anything_is_sent(exchange: SimExchange,
                                                            connector: BinanceFuturesConnector) -> None:
    with pytest.raises(ValueError, match="invalid client order id 'bad id'"):
        connector.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "bad id")
    with pytest.raises(ValueError, match="quantity must be a positive number"):
        connector.place_order("BTCUSDT", "BUY", "MARKET", "-1", "ok-id")
    with pytest.raises(ValueError, match="invalid side"):
        connector.place_order("BTCUSDT", "HOLD", "MARKET", "1", "ok-id")
    assert exchange.ledger() == []


def test_depth_snapshot_is_typed_and_sorted(connector: BinanceFuturesConnector) -> None:
    snapshot = connector.depth("BTCUSDT", 5).data
    assert len(snapshot.bids) == 5 and len(snapshot.asks) == 5
    assert snapshot.bids[0][0] < Decimal(100_000) <= snapshot.asks[0][0]
    assert [p for p, _ in snapshot.bids] == sorted((p for p, _ in snapshot.bids), reverse=True)


def test_secrets_never_appear_in_logs(exchange: SimExchange, make_connector) -> None:
    records: list[str] = []
    sink = logger.add(lambda message: records.append(str(message) + repr(message.record["extra"])), level="TRACE")
    try:
        venue = make_connector(exchange)
        venue.server_time()
        venue.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "log-1")
        venue.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "log-1")  # a warning-level outcome
        make_connector(exchange, api_secret="another-secret-value").positions()
        text = "\n".join(records) + repr(venue)
    finally:
        logger.remove(sink)
    assert "venue_request" in text, "the connector logged nothing: this test would prove nothing"
    for secret in (exchange.api_secret, exchange.api_key, "another-secret-value", "signature="):
        assert secret not in text
