"""Issue 15: money and gates visible to the operator in `/ready`, `status` and `status --watch`."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from actors.positions import account_rows, marks_from_tree, position_rows
from actors.stop_book import StopBook
from runtime.cli import EXIT_DEGRADED, EXIT_OK, assess, main, render_tree
from runtime.config import demo_config
from runtime.metrics import Metrics
from runtime.status_server import StatusServer
from runtime.store.runtime_state import Position, Runtime

from .samples import find

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def server(status):
    srv = StatusServer(lambda: status, lambda name, args: {}, Metrics().registry, bind="127.0.0.1:0").start()
    yield srv
    srv.stop()


def ready(server, query: str = "") -> tuple[int, list[str]]:
    session = requests.Session()
    session.trust_env = False
    response = session.get(server.url + "/ready" + query, timeout=5)
    return response.status_code, response.json()["reasons"]


def close(status, symbol: str, reason: str) -> None:
    status["gate"]["symbols"][symbol] = {"open": False, "reasons": [f"symbol:{symbol}: {reason}"]}


def test_issue15_ready_is_200_only_when_every_configured_symbol_is_open(server, status):
    assert ready(server) == (200, [])
    close(status, "ETHUSDT", "feed RECOVERING")  # gate.open stays true: BTCUSDT still takes entries
    code, reasons = ready(server)
    assert code == 503, "one closed symbol means the node is not fully ready"
    assert reasons == ["gate closed for ETHUSDT: symbol:ETHUSDT: feed RECOVERING"]


def test_issue15_ready_symbol_asks_about_one_symbol(server, status):
    close(status, "ETHUSDT", "feed RECOVERING")
    assert ready(server, "?symbol=BTCUSDT") == (200, [])
    assert ready(server, "?symbol=ETHUSDT")[0] == 503
    code, reasons = ready(server, "?symbol=DOGEUSDT")
    assert code == 503 and "DOGEUSDT is not a configured symbol" in reasons[0]


def test_issue15_status_names_the_closed_symbols_and_why(status):
    close(status, "ETHUSDT", "feed RECOVERING")
    text = render_tree(status)
    assert "ETHUSDT closed: symbol:ETHUSDT: feed RECOVERING" in text
    code, reasons = assess(status)
    assert code == EXIT_DEGRADED and reasons == ["gate closed for ETHUSDT (symbol:ETHUSDT: feed RECOVERING)"]


def test_issue15_status_shows_positions_with_pnl_stop_and_session_against_limits(status):
    text = render_tree(status)
    row = next(line for line in text.splitlines() if line.startswith("s1 "))
    assert row.split() == ["s1", "BTCUSDT", "bought", "0.01", "100,000.00", "100,500.00", "+5.00", "-1.50",
                           "95,000.00", "(local)"]
    assert "session P&L +3.50 (realized -1.50, unrealized +5.00); limit -10,000.00 per session" in text
    assert "account alice: P&L +3.50" in text


def test_issue15_an_open_position_without_an_armed_stop_is_flagged(status):
    status["positions"][0]["stop"] = {"level": 95000.0, "local": False, "exchange": False}
    assert "95,000.00 (NOT ARMED)" in render_tree(status)


def test_issue15_position_rows_from_runtime_stop_book_marks_and_breaker_realized():
    config = demo_config("var")
    runtimes = {"demo-btc-swing": Runtime(position=Position.BOUGHT, quantity=0.01, entry_price=100000.0,
                                          stop_loss=95000.0, pending_order="demo-btc-swing:x1",
                                          pending_purpose="exit")}
    stops = StopBook()
    stops.arm("BTCUSDT", "demo-btc-swing", 95000.0, 0.01)
    rows = position_rows(config.strategies, runtimes.get, stops, {"BTCUSDT": 101000.0}, {"demo-btc-tight": -0.5})
    swing = next(r for r in rows if r["strategy"] == "demo-btc-swing")
    assert swing["unrealized_pnl"] == pytest.approx(10.0)
    assert swing["stop"] == {"level": 95000.0, "local": True, "exchange": False}
    assert swing["pending_order"] == {"client_order_id": "demo-btc-swing:x1", "purpose": "exit"}
    tight = next(r for r in rows if r["strategy"] == "demo-btc-tight")
    assert (tight["quantity"], tight["unrealized_pnl"], tight["realized_pnl"]) == (0.0, 0.0, -0.5)
    assert account_rows(rows)["demo"]["pnl"] == pytest.approx(9.5)


def test_issue15_marks_come_from_the_state_builder_details(status):
    find(status["tree"], "state-builder")["details"] = {"symbols": {"BTCUSDT": {"price": 101.5},
                                                                   "ETHUSDT": {"price": None}}}
    assert marks_from_tree(status["tree"]) == {"BTCUSDT": 101.5}


def test_issue15_status_watch_redraws_the_tree_with_positions(server, status, capsys):
    assert main(["status", "--watch", "--frames", "2", "--interval", "0.05", "--url", server.url]) == EXIT_OK
    out = ANSI.sub("", capsys.readouterr().out)
    assert "session P&L +3.50" in out and "strategy:s1" in out and "HEALTHY" in out


def test_issue15_status_piped_into_head_has_no_broken_pipe_traceback(server, status):
    status["positions"] *= 3000  # more than a pipe buffer, so the writer outlives its reader
    pipeline = f"{sys.executable} run.py status --url {server.url} | head -1"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.startswith("warden node-a")
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr


def test_issue15_status_node_drills_down_into_one_node(server, status, capsys):
    find(status["tree"], "strategy:s1")["details"] = {"position": "bought", "timers": ["sell"]}
    assert main(["status", "--node", "s1", "--url", server.url]) == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert "id: strategy:s1" in out and "details:" in out and '  timers: ["sell"]' in out
    assert main(["status", "--node", "nope", "--url", server.url]) == EXIT_DEGRADED
    assert "no node 'nope'" in capsys.readouterr().err
