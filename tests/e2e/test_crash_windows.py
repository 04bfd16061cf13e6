"""Issue 10: SIGKILL the daemon in each window of the order path, restart it, and check the ledger.

The real daemon (run.py) against a real Redis and the simulated exchange. Windows:
after the intent is journaled and before the send; after the send and before the reply
(the simulator holds the reply); after the reply and before the runtime write; after the
outcome write (its queue ack included) and before the engine hears of it. Invariant: exactly
one entry order at the venue (an intent journaled but never sent is settled once it can no
longer execute, and the restarted strategy buys afresh), and a later stop crossing gives
exactly one exit.
"""

from __future__ import annotations

import os
import time

import pytest

from chaos.harness import Cluster, StrategySpec, wait_for

WINDOWS = {"venue": "recv_window_ms = 500\nsettle_window_s = 1.0"}  # short, so the waits below stay short
LATE_S = 0.5 + 1.0 + 0.5  # recvWindow + settle window + margin: no late request can land after this


def executed(c: Cluster, prefix: str) -> list[str]:
    return [e["client_order_id"] for e in c.executed() if str(e["client_order_id"]).startswith(prefix)]


def start_frozen_at(c: Cluster, window: str) -> None:
    os.environ["WARDEN_CRASH_WINDOW"] = window
    try:
        c.start_daemon()
    finally:
        del os.environ["WARDEN_CRASH_WINDOW"]
    wait_for(lambda: c.events("crash_window"), 30, f"the daemon froze in window {window}")


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("window", ["after_journal", "after_send", "after_reply", "after_write"])
def test_sigkill_in_each_order_window_gives_one_order_per_intent_and_one_exit(window: str) -> None:
    with Cluster(f"crash-{window}", [StrategySpec("k1", buy_at="+3s", stop_loss=95_000.0)], settings=WINDOWS) as c:
        if window == "after_send":
            c.exchange.set_fault("hold_reply", count=1, hold_s=60.0)  # executed; the reply never comes
            c.start_daemon()
            wait_for(lambda: executed(c, "k1:e1"), 30, "the BUY executed at the venue, its reply held")
        else:
            start_frozen_at(c, window)
        c.kill_daemon()
        c.start_daemon()
        wait_for(lambda: (r := c.runtime("k1")) is not None and not r.pending_order, 40,
                 "the restarted daemon settled the order in doubt")
        # after_journal: k1:e1 was journaled and marked pending, never sent; it settles NOT_FOUND once its
        # settle window has passed, and the restarted strategy then buys afresh as k1:e2.
        seq = 2 if window == "after_journal" else 1
        wait_for(lambda: executed(c, f"k1:e{seq}"), 30, f"the entry k1:e{seq} executed")
        time.sleep(LATE_S)
        entries = executed(c, "k1:e")
        assert entries == [f"k1:e{seq}"], f"exactly one entry order at the venue (window {window}): {entries}"
        wait_for(lambda: c.runtime("k1").position.value == "bought", 20, "the runtime holds the fill")
        c.exchange.set_price("BTCUSDT", 94_000.0)  # through k1's stop
        wait_for(lambda: c.runtime("k1").position.value == "exited_by_sl", 30, "exited by stop-loss")
        time.sleep(LATE_S)
        assert executed(c, "k1:x") == [f"k1:x{seq}"], "a later stop crossing gives exactly one exit"
        assert c.duplicates() == 0 and c.lost() == 0
