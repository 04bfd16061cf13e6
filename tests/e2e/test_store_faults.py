"""Issue 11, end to end: the real daemon (its own process), a real redis-server, the simulated
exchange. A store fault of any kind or length never costs a stop: nothing crashes, nothing
escalates, and every stop crossing on fresh data gives exactly one exit.

Orders are counted only after late requests can no longer land (recvWindow 1 s + settle).
"""

from __future__ import annotations

import time

import pytest

from chaos.harness import Cluster, StrategySpec, wait_for
from chaos.scenario import Result, finish

LATE_REQUESTS_S = 2.5  # recv_window_ms = 1000 below, plus a settle window
FAST = {"store": "protect_after_s = 2.0", "venue": "reconcile_every_s = 1.0\nrecv_window_ms = 1000"}


def bought(c: Cluster, *ids: str) -> bool:
    return all((r := c.runtime(i)) is not None and r.position.value == "bought" for i in ids)


def restarts(c: Cluster, *node_ids: str) -> dict[str, tuple[str | None, int]]:
    return {n: (c.tree_state(n), int((c.node(n) or {}).get("restarts", -1))) for n in node_ids}


def assert_finished_clean(c: Cluster) -> None:
    result = Result("e2e", "F28")
    finish(result, c)
    assert not result.failures, result.failures


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_issue11_case1_f28_long_outage_protects_positions_and_exits_once() -> None:
    strategies = [StrategySpec("L1", buy_at="+2s", stop_loss=99_000.0),
                  StrategySpec("L2", buy_at="+2s", stop_loss=97_000.0)]
    with Cluster("f28-e2e", strategies, settings=FAST) as c:
        c.start_sampling()
        c.start_daemon()
        wait_for(lambda: bought(c, "L1", "L2"), 30, "L1 and L2 bought")
        wait_for(lambda: c.gate_open(), 15, "gate open before the outage")
        c.redis.kill()
        wait_for(lambda: c.open_stops() == ["L1:p1", "L2:p1"], 15,
                 "every open position protected at the venue after protect_after_s")
        wait_for(lambda: len(c.events("reconcile_skipped")) >= 3, 20, "reconcile skipped rounds, and said so")
        assert c.daemon.poll() is None, "F28: the daemon survives an outage longer than the reconcile period"
        assert restarts(c, "execution-engine", "position-manager", "monitor:store") == {
            "execution-engine": ("running", 0), "position-manager": ("running", 0), "monitor:store": ("running", 0)}, \
            "no actor crashed or restarted because the store is down"
        assert c.status()["mode"] != "HARD_SHUTDOWN"

        c.exchange.set_price("BTCUSDT", 98_000.0)  # crosses L1's stop only, in the middle of the outage
        wait_for(lambda: c.exits("L1"), 10, "L1's stop exited while Redis is down")
        time.sleep(LATE_REQUESTS_S)
        assert len(c.exits("L1")) == 1, f"one crossing, one exit: {c.exits('L1')}"
        assert c.exits("L2") == []

        c.redis.restart()
        wait_for(lambda: c.gate_open(), 30, "gate reopened after replay and reconcile")
        wait_for(lambda: c.open_stops() == [], 15, "protective stops taken back after recovery")
        wait_for(lambda: c.runtime("L1").position.value == "exited_by_sl", 10, "L1 exited_by_sl in the store")
        assert bought(c, "L2")
        journal = {(e.kind, e.client_order_id) for e in c.store.entries()}
        assert {("intent", "L1:p1"), ("intent", "L2:p1"), ("outcome", "L1:p1"), ("outcome", "L2:p1")} <= journal, \
            "the protective stops, journaled to the disk buffer, are in the journal after replay"
        assert [e.client_order_id for e in c.store.unsettled()] == [], "every protective stop settled"

        c.exchange.set_price("BTCUSDT", 96_000.0)  # L2's local stop is armed again
        wait_for(lambda: c.exits("L2"), 10, "L2's local stop exited after the take-back")
        time.sleep(LATE_REQUESTS_S)
        assert [len(c.exits("L1")), len(c.exits("L2"))] == [1, 1]
        assert c.daemon.poll() is None
        assert_finished_clean(c)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_issue11_f27_hung_redis_closes_gate_fast_and_the_stop_still_exits_once() -> None:
    with Cluster("f27-e2e", [StrategySpec("H1", buy_at="+2s", stop_loss=99_000.0),
                             StrategySpec("H2", buy_at="+2s", stop_loss=97_000.0)], settings=FAST) as c:
        c.start_sampling()
        c.start_daemon()
        wait_for(lambda: bought(c, "H1", "H2"), 30, "H1 and H2 bought")
        wait_for(lambda: c.gate_open(), 15, "gate open before the hang")
        t0 = time.monotonic()
        c.hang_redis()
        wait_for(lambda: c.gate_open() is False, 5, "gate closed after Redis hung")
        closed_after = time.monotonic() - t0
        assert closed_after < 1.5, f"F27: gate closed within ~1 s of the hang ({closed_after:.2f} s)"
        c.exchange.set_price("BTCUSDT", 98_000.0)
        wait_for(lambda: c.exits("H1"), 10, "H1's stop exited while Redis hangs")
        wait_for(lambda: c.open_stops() == ["H2:p1"], 15, "H2 protected at the venue after protect_after_s")
        assert c.daemon.poll() is None and c.status()["mode"] != "HARD_SHUTDOWN", "nothing escalated"
        assert restarts(c, "execution-engine", "position-manager", "monitor:store", "state-builder") == {
            "execution-engine": ("running", 0), "position-manager": ("running", 0),
            "monitor:store": ("running", 0), "state-builder": ("running", 0)}, "no actor blocked into a restart"
        c.resume_redis()
        wait_for(lambda: c.gate_open(), 30, "gate reopened after the hang")
        wait_for(lambda: c.open_stops() == [], 15, "H2's protective stop taken back")
        time.sleep(LATE_REQUESTS_S)
        assert [len(c.exits("H1")), len(c.exits("H2"))] == [1, 0], "one crossing, one exit"
        assert c.runtime("H1").position.value == "exited_by_sl"
        assert_finished_clean(c)


def _corrupt_runtime(c: Cluster, sid: str) -> None:
    c.store.client.hset(f"chaos:runtime:{{{sid}}}", "position", "sideways")


def _delete_runtime(c: Cluster, sid: str) -> None:
    c.store.client.delete(f"chaos:runtime:{{{sid}}}")


def _stale_lock(c: Cluster, sid: str) -> None:
    c.store.client.set(f"chaos:lock_state:{{{sid}}}", "garbage")  # no expiry, not an owner token


BAD_VALUES = {"case2_corrupt_runtime": _corrupt_runtime, "case3_deleted_runtime": _delete_runtime,
              "case4_lock_without_expiry": _stale_lock}


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_issue11_bad_value_for_a_strategy_in_position_still_gets_its_stop(case: str) -> None:
    with Cluster(f"{case[:5]}-e2e", [StrategySpec("G1", buy_at="+2s", stop_loss=99_000.0),
                                     StrategySpec("G2", buy_at="+2s", stop_loss=97_000.0)], settings=FAST) as c:
        c.start_sampling()
        c.start_daemon()
        wait_for(lambda: bought(c, "G1", "G2"), 30, "G1 and G2 bought")
        BAD_VALUES[case](c, "G1")
        c.exchange.set_price("BTCUSDT", 98_000.0)  # crosses G1's stop only
        wait_for(lambda: c.exits("G1"), 25, f"{case}: G1's stop still exits")
        time.sleep(LATE_REQUESTS_S)
        assert len(c.exits("G1")) == 1 and c.exits("G2") == [], "F31: one crossing, one exit, that strategy only"
        assert c.daemon.poll() is None and c.status()["mode"] != "HARD_SHUTDOWN", "nothing escalated"
        wait_for(lambda: (r := c.runtime("G1")) is not None and r.position.value == "exited_by_sl", 10,
                 "G1's exit recorded in a fresh runtime record")
        if case == "case2_corrupt_runtime":
            aside = [k.decode() for k in c.store.client.keys("chaos:runtime:{G1}:quarantine:*")]
            assert len(aside) == 1 and c.store.client.hget(aside[0], "position") == b"sideways", \
                "the corrupt record is kept aside, never deleted"
            assert c.runtime("G1").status.value == "failed" and "SAFETY_ABORT" in c.runtime("G1").reason
        assert bought(c, "G2")
        c.exchange.set_price("BTCUSDT", 96_000.0)
        wait_for(lambda: c.exits("G2"), 10, "the other strategy's stop works as before")
        time.sleep(LATE_REQUESTS_S)
        assert [len(c.exits("G1")), len(c.exits("G2"))] == [1, 1]
        assert_finished_clean(c)
