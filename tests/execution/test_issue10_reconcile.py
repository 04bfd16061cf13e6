"""Issue 10, cases 10 and 11, and the late-fill correction of DESIGN §3 / F29.

Real Redis, the simulated exchange over HTTP and WebSocket (the engine's user-data stream on
/private), the real engine and position manager; a recorder stands in for degradation and
shows what it was told.
"""

from __future__ import annotations

import pytest

from actors.core.signals import Signal
from actors.messages import Reconcile
from runtime.store.runtime_state import Position
from supervision import actor_of
from tests.execution.test_issue10_one_intent_one_order import buy, cross_stop, executed
from tests.execution.test_issue10_venue_realism import needs, venue_position
from tests.waiting import eventually


def engine(t):
    return actor_of(t.services.directory.ref("execution-engine"))


def position_manager(t):
    return actor_of(t.services.directory.ref("position-manager"))


def told(t, cause: str, active: bool | None = None) -> list[Signal]:
    return [s for s in t.signals if isinstance(s, Signal) and s.cause == cause
            and (active is None or s.active is active)]


def test_case10_user_stream_reconnect_is_a_barrier_and_reconciles_open_orders(make_trading):
    t = make_trading()
    eventually(lambda: engine(t).user_stream is not None and engine(t).user_stream.connected, timeout=10,
               what="the engine's user-data stream connected")
    # An order of ours is open at the venue that no runtime knows of (sent by a process we lost).
    stray = t.services.venue.place_order("BTCUSDT", "BUY", "LIMIT", 0.01, "s2:e7", price=96_000.0)
    assert stray.ok, stray.describe()
    barriers = len(told(t, "reconcile_barrier", True))
    t.exchange.set_fault("ws_drop", count=0)  # drop every socket once; reconnects allowed
    eventually(lambda: len(told(t, "reconcile_barrier", True)) > barriers, timeout=15,
               what="the reconnect raised the reconciliation barrier")
    drift = eventually(lambda: position_manager(t).drift.get("BTCUSDT"), timeout=15,
                       what="the reconcile after the reconnect compared open orders")
    assert drift.get("unexplained_open_orders") == 1.0, f"the stray open order is drift: {drift}"
    blocked = eventually(lambda: told(t, "reconcile_drift", True), timeout=10, what="drift told to degradation")
    assert blocked[-1].key == "BTCUSDT" and "unexplained open order" in blocked[-1].reason, \
        "drift closes the symbol's gate until explained"
    assert t.services.venue.cancel_order("BTCUSDT", "s2:e7").ok
    position_manager(t).actor_ref.tell(Reconcile("operator: stray order cancelled"))
    eventually(lambda: "BTCUSDT" not in position_manager(t).drift, timeout=10, what="explained: the gate reopens")


@needs
def test_case11_a_delayed_exit_never_reduces_a_sibling_strategys_position(make_trading):
    t = make_trading(recv_window_ms=1500)
    buy(t, "s1", qty=0.01)
    buy(t, "s2", qty=0.02, stop_loss=None)
    assert t.wait_update("s1").verdict == "FILLED" and t.wait_update("s2").verdict == "FILLED"
    t.exchange.set_fault("network_delay", count=1, ms=900, scope="place")  # s1's exit executes late
    cross_stop(t, "s1")
    eventually(lambda: t.runtime("s1").position is Position.EXITED_BY_SL, timeout=15, what="s1 exited")
    assert executed(t, "s1:x") == ["s1:x1"], "one exit for one stop"
    assert venue_position(t) == pytest.approx(0.02), "s2's position is untouched by s1's exit"
    assert t.runtime("s2").quantity == pytest.approx(0.02)


@needs
def test_f29_a_late_duplicate_fill_is_corrected_at_once_reduce_only_and_alerted(make_trading):
    t = make_trading()
    # "unknown" reply; the order executes 3 s after arrival -- past the 1 s settle window, after the resend.
    t.exchange.set_fault("unknown_503", count=1, execute_after_s=3.0, scope="place")
    buy(t)
    assert t.wait_update("s1", timeout=15).verdict == "FILLED"
    eventually(lambda: [e for e in t.exchange.ledger() if str(e.get("client_order_id")).startswith("fix:")
                        and e.get("executed")], timeout=20, what="the excess corrected with a reduce-only SELL")
    assert venue_position(t) == pytest.approx(0.01), "the venue holds what the strategy recorded, no more"
    fix = [e for e in t.exchange.ledger() if str(e.get("client_order_id")).startswith("fix:")]
    assert len(fix) == 1 and fix[0]["reduce_only"] and float(fix[0]["quantity"]) == pytest.approx(0.01), \
        "limited to the excess, reduce-only"
    assert t.runtime("s1").position is Position.BOUGHT and t.runtime("s1").quantity == pytest.approx(0.01)
