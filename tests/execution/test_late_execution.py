"""F29 / issue 14 (seed 1001's residual): an order answered "unknown" (-1007/503) that executes
late inside the venue.

Binance documents no bound on how late such an order may execute, so the simulator documents
the horizon it models (`MAX_LATE_EXECUTION_S`) and the engine's default settle window exceeds it
with margin: within the horizon the engine never sends a second order. Beyond it (an operator's
short settle window here) a late fill is an excess, in either direction, corrected at once,
limited to the excess and alerted.

Real Redis, the simulated exchange over HTTP and WebSocket, the real engine and position manager.
"""

from __future__ import annotations

import time

import pytest
from loguru import logger

from actors.core.retry import RetryConfig
from actors.orders import OrderIntent, Purpose
from runtime.alerts import alert_for
from runtime.config import VenueConfig
from runtime.simexchange.faults import MAX_LATE_EXECUTION_S
from runtime.store.runtime_state import Position
from tests.execution.conftest import LATE_LANDING_S, RECV_WINDOW_MS
from tests.execution.test_soak_regress import buy, sells
from tests.waiting import eventually


def venue_position(trading) -> float:
    """The simulator's net position (not through the connector: polling it must not spend the budget)."""
    return float(trading.exchange.position("BTCUSDT")["positionAmt"])


def corrections(trading) -> list[dict]:
    return [e for e in trading.exchange.ledger() if e.get("action") == "place"
            and str(e.get("client_order_id")).startswith("fix:")]


def test_f29_issue14_an_unknown_exit_executing_at_the_venues_horizon_is_never_sent_twice(make_trading):
    """Seed 1001's residual: the nemesis drew executions up to 6.0 s after a 503, the settle window
    was 5 s, so an exit executing after the window plus the retry backoff was sold twice. With the
    daemon's defaults (settle window, retry backoff) an exit executing at the simulator's documented
    horizon is learned before any resend."""
    settle_window_s = VenueConfig().settle_window_s
    t = make_trading(settle_window_s=None, retry=RetryConfig())  # the daemon's defaults
    buy(t, "s1", stop_loss=None)
    buy(t, "s3")  # a sibling on the same account and symbol: a double exit would take its position
    assert t.wait_update("s1").verdict == "FILLED" and t.wait_update("s3").verdict == "FILLED"
    t.exchange.set_fault("unknown_503", count=1, execute=True, execute_after_s=MAX_LATE_EXECUTION_S,
                         scope="place")
    sent = time.monotonic()
    assert t.services.submit(OrderIntent("s1", "alice", "BTCUSDT", Purpose.EXIT, reason="target reached"))
    eventually(lambda: t.runtime("s1").position is Position.SOLD, timeout=settle_window_s + 20,
               what="s1:x1 settled by its late execution")
    # Count only once no late request can land: recvWindow plus the settle window after the send.
    eventually(lambda: time.monotonic() >= sent + RECV_WINDOW_MS / 1000 + settle_window_s, timeout=60,
               interval=0.1, what="late requests can no longer land")
    assert sells(t, "s1") == ["s1:x1"], \
        "I1: one intent, at most one executed order: an exit executing within the venue's horizon is never resent"
    arrivals = [e for e in t.exchange.ledger("s1:x1") if e.get("action") == "place" and e["outcome"] != "PENDING"]
    assert len(arrivals) == 1, f"no second send (the PENDING entry is the one late execution): {arrivals}"
    assert venue_position(t) == pytest.approx(0.01), "the sibling's position is untouched"
    assert corrections(t) == [], "nothing to correct"


def test_f29_issue14_a_late_excess_sell_is_bought_back_at_once_limited_to_the_excess_and_alerted(make_trading):
    """Beyond the settle window (1 s in these tests) the late execution of an "unknown" exit
    lands after its resend filled: s1's exit sold twice, and the second sale took the sibling s3's
    share of the account's one net position. (Exits are reduce-only, so only a sibling's long
    makes an oversell possible.) It is bought back at once, exactly the excess, once, and alerted.
    The venue's net position is long, so a reduce-only BUY would be refused (-2022): the buy-back
    is a plain BUY of exactly the excess, under a client id derived from the late fill."""
    t = make_trading(retry=RetryConfig(backoff=(0.05,), jitter=0.0))
    buy(t, "s1", stop_loss=None)
    buy(t, "s3", stop_loss=None)
    assert t.wait_update("s1").verdict == "FILLED" and t.wait_update("s3").verdict == "FILLED"
    alerts: list[dict] = []
    sink = logger.add(lambda m: alerts.append(alert_for(m.record["extra"], m.record["level"].name, "n", 0.0)))
    try:
        # Executes 2 s after it arrived: after the 1 s settle window and the resend (within the horizon).
        t.exchange.set_fault("unknown_503", count=1, execute=True, execute_after_s=2.0, scope="place")
        assert t.services.submit(OrderIntent("s1", "alice", "BTCUSDT", Purpose.EXIT, reason="target reached"))
        eventually(lambda: len([e for e in t.exchange.ledger("s1:x1") if e.get("executed")]) == 2, timeout=20,
                   what="s1:x1 executed twice (the resend, then the late one)")
        eventually(lambda: corrections(t), timeout=20, what="the excess sell bought back")
        time.sleep(LATE_LANDING_S)  # no late request can land after this: count
    finally:
        logger.remove(sink)
    fixes = corrections(t)
    assert len(fixes) == 1 and fixes[0]["executed"], \
        f"I4: the venue holds what the strategies recorded: one correction of the excess: {fixes}"
    assert fixes[0]["side"] == "BUY" and float(fixes[0]["quantity"]) == pytest.approx(0.01), "exactly the excess"
    assert not fixes[0]["reduce_only"], "the venue is long: a reduce-only BUY would be refused"
    assert venue_position(t) == pytest.approx(0.01), "s3's position is restored"
    assert t.runtime("s1").position is Position.SOLD and t.runtime("s3").position is Position.BOUGHT
    assert any(a and a["event"] == "excess_corrected" for a in alerts), "the correction is alerted"
