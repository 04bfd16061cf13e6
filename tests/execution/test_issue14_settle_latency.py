"""Issue 14 (`make soak`, seeds 1001 and 4242): stop-loss exits that were correct but later than
the money-safety rule requires. An order in doubt is never resent before its NOT_FOUND is final
(`SettleTiming.final_not_found_at`); these prove it is resent at that moment, not a backoff later.

Real Redis, the simulated exchange over HTTP and WebSocket, the real engine and position manager.
Arrival times are the venue ledger's (`time_ms`, the simulator's clock).
"""

from __future__ import annotations

import time

from actors.core.retry import RetryConfig
from actors.messages import SettlePending, StopsTriggered
from runtime.store.runtime_state import Position
from tests.execution.conftest import RECV_WINDOW_MS
from tests.execution.test_cold_start import exit_left_pending
from tests.execution.test_soak_regress import long_with_a_sibling
from tests.waiting import eventually


def places(trading, strategy_id: str) -> list[dict]:
    return [e for e in trading.exchange.ledger() if e.get("action") == "place"
            and str(e.get("client_order_id")).startswith(f"{strategy_id}:x")]


def wait_until_no_late_request_can_land(since: float, settle_window_s: float) -> None:
    eventually(lambda: time.monotonic() >= since + RECV_WINDOW_MS / 1000 + settle_window_s + 0.5,
               timeout=settle_window_s + 30, interval=0.1, what="late requests can no longer land")


def test_seed1001_I3_a_stop_loss_settled_not_found_is_resent_at_once_not_a_backoff_later(make_trading):
    """Seed 1001 t13:x75: a stop-loss answered -1007 "unknown" (never executed) was looked up until
    its NOT_FOUND was final (+12.0 s), then waited its retry backoff (~1 s) again before the resend
    (+13.05 s). The backoff counts from the failed attempt, which the settle wait already outlasted."""
    settle_window_s, backoff_s = 3.0, 2.5  # the backoff is shorter than the settle window, as the daemon's
    t = long_with_a_sibling(make_trading(settle_window_s=settle_window_s,
                                         retry=RetryConfig(backoff=(backoff_s,), jitter=0.0)))
    t.exchange.set_fault("unknown_503", count=1, execute=False, scope="place")  # x1 in doubt, never runs
    started = time.monotonic()
    hits = t.services.stops.triggered("BTCUSDT", 94_000.0)
    t.services.directory.ref("execution-engine").tell(StopsTriggered("BTCUSDT", tuple(hits), time.perf_counter()))
    eventually(lambda: t.runtime("s1").position is Position.EXITED_BY_SL, timeout=settle_window_s + backoff_s + 30,
               what="s1's stop-loss settled NOT_FOUND and sent again")
    wait_until_no_late_request_can_land(started, settle_window_s)
    sent = places(t, "s1")
    assert [(e["client_order_id"], bool(e.get("executed"))) for e in sent] == [("s1:x1", False), ("s1:x1", True)], \
        f"I1: one stop-loss, one execution: the unknown send, then its one resend: {sent}"
    waited_s = (sent[1]["time_ms"] - sent[0]["time_ms"]) / 1000.0
    assert waited_s >= settle_window_s, f"never resent before its settle window ends: resent after {waited_s:.3f} s"
    assert waited_s <= settle_window_s + 1.0, \
        f"I3: a stop-loss settled NOT_FOUND is resent at once, not a retry backoff ({backoff_s:g} s) later: " \
        f"resent {waited_s:.3f} s after the first send (settle window {settle_window_s:g} s)"
    assert float(t.exchange.position("BTCUSDT")["positionAmt"]) == 0.01, "the sibling's position is untouched"


def test_seed4242_I3_the_settle_loop_looks_up_when_the_not_found_becomes_final(make_trading):
    """Seed 4242 t28:x37: an exit pending from a SIGKILLed process was looked up by the settle loop at
    +0.73, +1.15, +1.96, +3.56, +6.77, +13.17 s; its NOT_FOUND was final at +10.4 s (pending_since
    + the settle window), but nothing looked until +13.17 s. The loop's backoff now never passes
    that moment."""
    settle_window_s = 6.0  # the loop's lookups (0.4, 0.8, 1.6, 3.2, 6.4 s apart) straddle it widely
    t = make_trading(settle_window_s=settle_window_s)
    client_id = exit_left_pending(t, sends=1)  # as the killed process left it: it may have left
    started = time.monotonic()
    final_at_ms = t.runtime("s1").pending_since * 1000.0 + settle_window_s * 1000.0
    t.services.directory.ref("execution-engine").tell(SettlePending("s1"))
    eventually(lambda: t.runtime("s1").position is Position.SOLD, timeout=settle_window_s + 30,
               what="s1's exit settled NOT_FOUND by the settle loop and sent again")
    wait_until_no_late_request_can_land(started, settle_window_s)
    sent = places(t, "s1")
    assert [e["client_order_id"] for e in sent] == [f"{client_id}.2"], \
        f"I1: one exit executed, sent only once its NOT_FOUND was final: {sent}"
    late_s = (sent[0]["time_ms"] - final_at_ms) / 1000.0
    assert late_s >= 0, f"never resent before its NOT_FOUND is final: {late_s:.3f} s before"
    assert late_s <= 1.5, \
        f"I3: the settle loop looks the order up when its NOT_FOUND becomes final, not a backoff later: " \
        f"the exit went {late_s:.3f} s after that moment"
