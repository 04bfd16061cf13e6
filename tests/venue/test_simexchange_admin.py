"""Simulated exchange controls: admin HTTP, fault board, WS handshake errors, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from runtime.simexchange import FAULTS, FaultBoard, FaultError, SimExchange
from runtime.simexchange.faults import RequestInfo

ROOT = Path(__file__).resolve().parents[2]
PLACE = RequestInfo("POST", "/fapi/v1/order", True, True)
READ = RequestInfo("GET", "/fapi/v2/positionRisk", True, False)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_fault_count_means_the_next_n_matching_requests() -> None:
    board = FaultBoard()
    board.set("hold_reply", count=2, hold_s=0.5)
    assert board.take("hold_reply", READ) is None, "default scope 'orders' skips reads"
    assert board.take("hold_reply", PLACE) == {"hold_s": 0.5}
    assert board.take("hold_reply", PLACE) is not None
    assert board.take("hold_reply", PLACE) is None and board.snapshot() == {}


def test_fault_duration_expires_and_switch_off_works() -> None:
    clock = FakeClock()
    board = FaultBoard(clock)
    board.set("ws_stall", duration_s=1.5)
    assert board.peek("ws_stall") is not None
    clock.t = 1.5
    assert board.peek("ws_stall") is None
    board.set("http_429")
    board.set("http_429", on=False)
    assert board.take("http_429", READ) is None


@pytest.mark.parametrize("payload,fragment", [
    ({"name": "meteor"}, "unknown fault 'meteor'; known faults: ws_drop"),
    ({"name": "hold_reply", "hold": 3}, "unknown field 'hold'; allowed: hold_s"),
    ({"name": "hold_reply", "hold_s": "long"}, "field 'hold_s' must be float"),
    ({"name": "unknown_503", "code": -1}, "must be one of [-1007, -1006]"),
    ({"name": "clock_skew"}, "missing required field 'ms'"),
    ({"name": "clock_skew", "ms": 5, "count": 2}, "'count' does not apply"),
    ({"name": "http_429", "count": 0}, "count must be an integer >= 1"),
    ({"name": "http_429", "scope": "everywhere"}, "bad scope 'everywhere'"),
    ({"name": "ws_gap", "scope": "all"}, "'scope' applies only to REST faults"),
    ({"nam": "http_429"}, "missing field 'name'"),
    ("http_429", "expected a JSON object"),
])
def test_admin_faults_rejects_bad_input_naming_what_is_wrong(exchange: SimExchange, payload: object,
                                                             fragment: str) -> None:
    response = requests.post(f"{exchange.admin_url}/faults", json=payload, timeout=2)
    assert response.status_code == 400
    assert fragment in response.json()["error"]
    with pytest.raises(FaultError):
        FaultBoard().apply_json(payload)


def test_admin_faults_switch_on_list_and_clear(exchange: SimExchange) -> None:
    url = f"{exchange.admin_url}/faults"
    body = [{"name": "http_429", "count": 3, "retry_after_s": 2}, {"name": "ws_gap", "symbol": "BTCUSDT"}]
    response = requests.post(url, json=body, timeout=2)
    assert response.status_code == 200, response.text
    active = requests.get(url, timeout=2).json()["active"]
    assert active["http_429"]["remaining"] == 3 and active["http_429"]["retry_after_s"] == 2
    assert active["ws_gap"]["symbol"] == "BTCUSDT"
    assert requests.get(f"{exchange.rest_url}/fapi/v1/time", timeout=2).status_code == 429
    assert requests.post(url, json={"name": "http_429", "on": False}, timeout=2).json()["active"].keys() == {"ws_gap"}
    assert requests.post(url, json={"clear": True}, timeout=2).json()["active"] == {}
    assert requests.get(f"{exchange.rest_url}/fapi/v1/time", timeout=2).status_code == 200


def test_admin_is_never_faulted(exchange: SimExchange) -> None:
    exchange.set_fault("http_429")
    exchange.set_fault("rest_latency", ms=2000)
    assert requests.get(f"{exchange.admin_url}/state", timeout=1).status_code == 200


def test_admin_price_state_book_market_and_reset(exchange: SimExchange) -> None:
    admin = exchange.admin_url
    assert requests.post(f"{admin}/price", json={"symbol": "BTCUSDT", "price": 90000}, timeout=2).json()["price"] \
        == "90000.0"
    moved = requests.post(f"{admin}/price", json={"symbol": "ETHUSDT", "pct": 10}, timeout=2).json()["moved"]
    assert moved == {"ETHUSDT": "3300.00"}
    bad = requests.post(f"{admin}/price", json={"symbol": "BTCUSDT", "price": 1, "pct": 2}, timeout=2)
    assert bad.status_code == 400 and "exactly one of" in bad.json()["error"]
    unknown = requests.post(f"{admin}/price", json={"symbol": "XRPUSDT", "price": 1}, timeout=2)
    assert unknown.status_code == 400 and unknown.json()["code"] == -1121

    state = requests.get(f"{admin}/state", timeout=2).json()
    assert state["symbols"]["BTCUSDT"]["price"] == "90000.0" and state["ws_connections"] == 0
    book = requests.get(f"{admin}/book", params={"symbol": "BTCUSDT"}, timeout=2).json()
    assert set(book) == {"lastUpdateId", "bids", "asks"} and len(book["bids"]) == 20

    paused = requests.post(f"{admin}/market", json={"paused": True}, timeout=2).json()
    assert paused["paused"] is True
    assert requests.post(f"{admin}/market", json={"speed": 2}, timeout=2).status_code == 400

    exchange.set_fault("http_418")
    requests.post(f"{admin}/reset", timeout=2).raise_for_status()
    assert exchange.price("BTCUSDT") == Decimal("100000.0") and exchange.ledger() == []
    assert exchange.faults.snapshot() == {}
    assert requests.get(f"{admin}/nope", timeout=2).status_code == 404


def test_admin_rejects_invalid_json(exchange: SimExchange) -> None:
    response = requests.post(f"{exchange.admin_url}/faults", data="{not json", timeout=2)
    assert response.status_code == 400 and "invalid JSON body" in response.json()["error"]


def test_unknown_fapi_path_and_method(exchange: SimExchange) -> None:
    assert requests.get(f"{exchange.rest_url}/fapi/v9/nothing", timeout=2).status_code == 404
    assert requests.put(f"{exchange.rest_url}/fapi/v1/order", timeout=2).status_code == 405


def test_exchange_validates_its_own_configuration() -> None:
    with pytest.raises(ValueError, match="start_prices names symbols not traded"):
        SimExchange(["BTCUSDT"], {"ETHUSDT": 1.0})
    with pytest.raises(ValueError, match="depth_interval_s"):
        SimExchange(["BTCUSDT"], depth_interval_s=0)
    with pytest.raises(RuntimeError, match="not started"):
        SimExchange(["BTCUSDT"]).rest_url


def test_cli_help_documents_every_fault_and_its_fields() -> None:
    result = subprocess.run([sys.executable, "-m", "runtime.simexchange", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    for name, spec in FAULTS.items():
        assert f"{name}:" in result.stdout, f"--help does not document fault {name}"
        for param in spec.params:
            assert f"- {param.name} (" in result.stdout, f"--help does not document {name}.{param.name}"
    for route in ("/admin/faults", "/admin/ledger", "/admin/price", "/admin/reset", "/admin/state"):
        assert route in result.stdout


def test_cli_serves_then_exits_zero_on_sigterm() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "runtime.simexchange", "--symbols", "BTCUSDT", "ETHUSDT",
                             "--price", "BTCUSDT=50000", "--depth-interval-ms", "20"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        info = json.loads(line)
        assert info["rest_url"].startswith("http://127.0.0.1:") and info["ws_url"].startswith("ws://127.0.0.1:")
        assert "secret" not in line
        state = requests.get(f"{info['admin_url']}/state", timeout=2).json()
        assert Decimal(state["symbols"]["BTCUSDT"]["price"]) > 0 and set(state["symbols"]) == {"BTCUSDT", "ETHUSDT"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()  # type: ignore[union-attr]


def test_cli_rejects_a_bad_price_argument() -> None:
    result = subprocess.run([sys.executable, "-m", "runtime.simexchange", "--price", "BTCUSDT"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "SYMBOL=PRICE" in result.stderr
