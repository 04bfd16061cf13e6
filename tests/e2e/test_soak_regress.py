"""Violations the soak found (chaos/soak_seeds.txt) that need the real daemon: its own process,
a real redis-server, the simulated exchange. Named after the seed and the invariant broken.

Orders are counted only after late requests can no longer land (recvWindow 1 s + settle).
"""

from __future__ import annotations

import time

import pytest

from chaos.harness import Cluster, StrategySpec, wait_for
from tests.e2e.test_store_faults import FAST, LATE_REQUESTS_S, assert_finished_clean


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_seed21_I1_I5_restart_under_redis_outage_takes_back_protective_stops_and_exits_once() -> None:
    """Seed 21: SIGTERM placed protective stops; the daemon restarted while Redis was down (its
    generations then came from the process alone: 1); once Redis came back, the deferred cold
    start found a protective stop triggered meanwhile and its runtime write was refused as stale
    (generation 1 < 1000001 stored): position-manager crashed on every start, root escalated."""
    strategies = [StrategySpec("P1", buy_at="+2s", stop_loss=99_000.0),
                  StrategySpec("P2", buy_at="+2s", stop_loss=97_000.0)]
    with Cluster("seed21-e2e", strategies, settings=FAST) as c:
        assert c.store is not None
        c.store.generations()  # an earlier process reserved a block: this run's writes carry a higher one
        c.start_with_positions("P1", "P2")
        assert c.terminate_daemon() == 0
        assert c.open_stops() == ["P1:p1", "P2:p1"], "SIGTERM leaves a protective stop per position"
        c.redis.kill()
        c.start_daemon()
        c.exchange.set_price("BTCUSDT", 98_000.0)  # P1's protective stop triggers while Redis is down
        wait_for(lambda: len(c.exits("P1")) == 1, 10, "P1's protective stop triggered at the venue")
        c.redis.restart()
        wait_for(lambda: c.gate_open(), 30, "gate reopened after the deferred cold start")
        wait_for(lambda: c.open_stops() == [], 15, "P2's protective stop taken back")
        assert c.daemon is not None and c.daemon.poll() is None and not c.events("root_escalated"), \
            "I5: the daemon never escalates because it started while Redis was down"
        wait_for(lambda: c.runtime("P1").position.value == "exited_by_sl", 10,
                 "P1's runtime records the exit its protective stop made")
        c.exchange.set_price("BTCUSDT", 96_000.0)  # P2's local stop, armed again after the take-back
        wait_for(lambda: c.exits("P2"), 10, "P2's local stop exited")
        time.sleep(LATE_REQUESTS_S)
        first = [e["client_order_id"] for e in c.exits("P1") if e["client_order_id"] in ("P1:p1", "P1:x1")]
        assert first == ["P1:p1"] and [e["client_order_id"] for e in c.exits("P2")] == ["P2:x1"], \
            f"I1: one crossing, one exit per position (a scheduled P1 may buy again after the restart: e2/x2): " \
            f"{[e['client_order_id'] for e in c.exits('P1') + c.exits('P2')]}"
        assert_finished_clean(c)
