"""The classification table (DESIGN §4, failure rows F1-F5): one reply, one outcome, pure."""

from __future__ import annotations

import json

import pytest
import requests

from runtime.venue.outcomes import Expect, OutcomeKind, classify, classify_exception, parse_retry_after

K = OutcomeKind
ORDER = {"orderId": 1, "symbol": "BTCUSDT", "status": "FILLED", "clientOrderId": "c1", "executedQty": "1"}


def err(code: int, msg: str = "x") -> str:
    return json.dumps({"code": code, "msg": msg})


@pytest.mark.parametrize("status,body,mutating,kind", [
    (503, err(-1007, "Timeout waiting for response from backend server."), True, K.UNKNOWN),
    (503, err(-1007), False, K.REJECTED_TRANSIENT),
    (500, err(-1006), True, K.UNKNOWN),
    (401, err(-2015, "Invalid API-key, IP, or permissions for action."), True, K.TOKEN_INVALID),
    (401, err(-2014, "API-key format invalid."), False, K.TOKEN_INVALID),
    (401, "", True, K.TOKEN_INVALID),
    (400, err(-1022, "Signature for this request is not valid."), True, K.TOKEN_INVALID),
    (400, err(-4116, "ClientOrderId is duplicated."), True, K.DUPLICATE),
    (400, err(-2013, "Order does not exist."), False, K.NOT_FOUND),
    (400, err(-2011, "Unknown order sent."), True, K.NOT_FOUND),
    (429, err(-1003, "Too many requests"), True, K.RATE_LIMITED),
    (418, err(-1003, "Way too many requests; IP banned"), True, K.RATE_LIMITED),
    (400, err(-1001, "Internal error; unable to process your request."), True, K.REJECTED_TRANSIENT),
    (500, err(-1001), True, K.REJECTED_TRANSIENT),
    (400, err(-2019, "Margin is insufficient."), True, K.REJECTED_PERMANENT),
    (400, err(-1121, "Invalid symbol."), True, K.REJECTED_PERMANENT),
    (400, err(-2010, "NEW_ORDER_REJECTED"), True, K.REJECTED_PERMANENT),
    (400, err(-1111, "Precision is over the maximum defined for this asset."), True, K.REJECTED_PERMANENT),
    (400, err(-4120, "Order type not supported for this endpoint."), True, K.REJECTED_PERMANENT),
    (400, err(-2021, "Order would immediately trigger."), True, K.REJECTED_PERMANENT),
    (503, json.dumps({"code": -1, "msg": "Service Unavailable."}), True, K.REJECTED_TRANSIENT),
    (503, json.dumps({"code": -1, "msg": "Unknown error, please check your request or try again later."}),
     True, K.UNKNOWN),
    (503, "Service Unavailable.", True, K.REJECTED_TRANSIENT),
    (502, "<html>Bad Gateway</html>", True, K.UNKNOWN),
    (502, "<html>Bad Gateway</html>", False, K.REJECTED_TRANSIENT),
    (504, "", True, K.UNKNOWN),
])
def test_f2_error_codes_map_to_one_kind(status: int, body: str, mutating: bool, kind: OutcomeKind) -> None:
    outcome = classify(status, body, {}, mutating=mutating, client_order_id="c1")
    assert outcome.kind is kind, outcome.describe()
    assert outcome.http_status == status
    assert outcome.client_order_id == "c1"


def test_f21_timestamp_outside_window_is_transient_with_clock_skew_flag() -> None:
    outcome = classify(400, err(-1021, "Timestamp for this request is outside of the recvWindow."), mutating=True)
    assert outcome.kind is K.REJECTED_TRANSIENT
    assert outcome.clock_skew and outcome.retryable and outcome.code == -1021


def test_f5_rate_limited_carries_retry_after_seconds() -> None:
    outcome = classify(429, err(-1003), {"retry-after": "7"}, mutating=True)
    assert outcome.kind is K.RATE_LIMITED and outcome.retry_after_s == 7.0
    assert classify(418, err(-1003), {"Retry-After": "120"}).retry_after_s == 120.0
    assert classify(429, err(-1003), {}).retry_after_s is None


def test_retry_after_accepts_an_http_date() -> None:
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, now_s=1445412480.0) == 10.0
    assert parse_retry_after({"Retry-After": "soon"}) is None


@pytest.mark.parametrize("status,kind", [("FILLED", K.FILLED), ("NEW", K.ACCEPTED), ("PARTIALLY_FILLED", K.ACCEPTED),
                                         ("CANCELED", K.ACCEPTED), ("EXPIRED", K.ACCEPTED)])
def test_order_replies_classified_by_status(status: str, kind: OutcomeKind) -> None:
    outcome = classify(200, json.dumps({**ORDER, "status": status}), expect=Expect.ORDER, mutating=True,
                       client_order_id="c1")
    assert outcome.kind is kind and outcome.order_status == status and outcome.order["orderId"] == 1


@pytest.mark.parametrize("body,fragment", [
    ("<html>oops</html>", "not JSON"),
    ("", "empty"),
    (b"\xff\xfe", "not UTF-8"),
    (json.dumps([1, 2]), "expected an order object"),
    (json.dumps({k: v for k, v in ORDER.items() if k != "status"}), "missing field 'status'"),
    (json.dumps({**ORDER, "clientOrderId": "other"}), "expected 'c1'"),
    (json.dumps({**ORDER, "status": "WEIRD"}), "unknown status 'WEIRD'"),
])
def test_f1_malformed_order_reply_is_unknown_and_says_what_was_wrong(body: object, fragment: str) -> None:
    outcome = classify(200, body, expect=Expect.ORDER, mutating=True, client_order_id="c1")
    assert outcome.kind is K.UNKNOWN, outcome.describe()
    assert "malformed venue reply" in outcome.message and fragment in outcome.message
    assert outcome.needs_lookup


def test_malformed_read_reply_is_transient_not_unknown() -> None:
    outcome = classify(200, "garbage", expect=Expect.ORDER, mutating=False)
    assert outcome.kind is K.REJECTED_TRANSIENT and "not JSON" in outcome.message


@pytest.mark.parametrize("exc", [requests.ReadTimeout("read timed out"), requests.ConnectTimeout("connect"),
                                 requests.ConnectionError("reset by peer"), TimeoutError()])
def test_f1_f4_transport_errors_are_unknown_for_submits_transient_for_reads(exc: Exception) -> None:
    submit = classify_exception(exc, mutating=True, client_order_id="c9")
    assert submit.kind is K.UNKNOWN and submit.client_order_id == "c9" and submit.needs_lookup
    read = classify_exception(exc, mutating=False)
    assert read.kind is K.REJECTED_TRANSIENT and read.retryable


def test_success_with_any_shape_is_accepted_and_carries_data() -> None:
    outcome = classify(200, '{"serverTime": 5}')
    assert outcome.ok and outcome.data == {"serverTime": 5} and outcome.order is None


def test_describe_names_kind_code_and_client_id() -> None:
    text = classify(400, err(-2019, "Margin is insufficient."), client_order_id="c1").describe()
    assert text.startswith("REJECTED_PERMANENT") and "code=-2019" in text and "client_order_id=c1" in text
