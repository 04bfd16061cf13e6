"""Issue 11, end to end: the real daemon (its own process), a real redis-server, the simulated
exchange. A store fault of any kind or length never costs a stop: nothing crashes, nothing
escalates, and every stop crossing on fresh data gives exactly one exit.

Orders are counted only after late requests can no longer land (recvWindow 1 s + settle window 1 s).
"""

from __future__ import annotations

import time

import pytest

from chaos.harness import Cluster, StrategySpec, wait_for
from chaos.scenario import Result, finish

LATE_REQUESTS_S = 1.0 + 1.0 + 0.5  # recv_window_ms + settle_window_s below, plus a margin: no late request lands after
FAST = {"store": "protect_after_s = 2.0",
        "venue": "reconcile_every_s = 1.0\nrecv_window_ms = 1000\nsettle_window_s = 1.0"}


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
                  StrategySpec("L2", buy_at="+2s", stop_loss=97_000.0),
                  StrategySpec("L3", buy_at="+2s")]  # no stop-loss level: nothing to place at the venue
    with Cluster("f28-e2e", strategies, settings=FAST) as c:
        c.start_with_positions("L1", "L2", "L3")
        c.redis.kill()
        wait_for(lambda: c.open_stops() == ["L1:p1", "L2:p1"], 15,
                 "every open position with a stop level protected at the venue after protect_after_s")
        wait_for(lambda: "position of strategy:L3 unprotected" in c.health()[1], 10, "/health names L3 unprotected")
        assert c.health()[0] == 503 and c.status()["mode"] == "REDUCED", "unprotected: not healthy, at least REDUCED"
        assert any(e["level"] == "ERROR" and e["details"].get("strategy") == "L3"
                   for e in c.events("position_unprotected")), "said at ERROR"
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
        wait_for(lambda: c.health()[0] == 200, 10, "healthy again once the local stop book protects")
        wait_for(lambda: c.runtime("L1").position.value == "exited_by_sl", 10, "L1 exited_by_sl in the store")
        assert c.bought("L2")
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
        c.start_with_positions("H1", "H2")
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
        c.start_with_positions("G1", "G2")
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
            wait_for(lambda: "strategy:G1 failed" in c.health()[1], 10, "/health names G1 failed")
            assert c.health()[0] == 503 and c.status()["mode"] == "REDUCED", "failed: not healthy, at least REDUCED"
            g1 = (c.node("strategy:G1") or {}).get("details") or {}
            assert g1.get("status") == "failed" and "corrupt state" in g1.get("reason", ""), g1
        assert c.bought("G2")
        c.exchange.set_price("BTCUSDT", 96_000.0)
        wait_for(lambda: c.exits("G2"), 10, "the other strategy's stop works as before")
        time.sleep(LATE_REQUESTS_S)
        assert [len(c.exits("G1")), len(c.exits("G2"))] == [1, 1]
        assert_finished_clean(c)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_issue11_case5_journal_of_the_wrong_type_costs_no_stop_and_no_protective_stop() -> None:
    strategies = [StrategySpec(f"J{i}", buy_at="+2s", stop_loss=99_000.0) for i in (1, 2, 3)] + \
        [StrategySpec("J4", buy_at="+2s", stop_loss=97_000.0)]
    with Cluster("case5-e2e", strategies, settings=FAST) as c:
        c.start_with_positions("J1", "J2", "J3", "J4")
        c.store.client.delete("chaos:journal:{orders}")
        c.store.client.set("chaos:journal:{orders}", "garbage")
        c.exchange.set_price("BTCUSDT", 98_000.0)
        wait_for(lambda: all(c.exits(f"J{i}") for i in (1, 2, 3)), 15, "3 of 3 stops executed")
        time.sleep(LATE_REQUESTS_S)
        assert [len(c.exits(f"J{i}")) for i in (1, 2, 3, 4)] == [1, 1, 1, 0], "one crossing, one exit each"
        assert c.store.client.get(
            next(k for k in c.store.client.keys("chaos:journal:{orders}:quarantine:*"))) == b"garbage", \
            "the bad journal value is kept aside, never deleted"
        assert {("intent", f"J{i}:x1") for i in (1, 2, 3)} <= {(e.kind, e.client_order_id) for e in c.store.entries()}
        assert c.terminate_daemon() == 0, "F26: a clean exit, no traceback"
        assert c.open_stops() == ["J4:p1"], "the open position got its protective stop at shutdown"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_issue11_case6_bad_cache_index_queue_or_journal_entry_never_blocks_a_start() -> None:
    with Cluster("case6-e2e", [StrategySpec("K1", buy_at="+2s", stop_loss=99_000.0)], settings=FAST) as c:
        c.start_with_positions("K1")
        c.kill_daemon()
        # (a "nan" price a fresh tick overwrites before anyone reads it is no harm: tests/store covers it)
        bad = {"chaos:price:{BTCUSDT}": lambda k: c.store.client.rpush(k, "garbage"),
               "chaos:symbol:{BTCUSDT}:strategies": lambda k: c.store.client.set(k, "garbage"),
               "chaos:queue:{orders}": lambda k: c.store.client.set(k, "garbage")}
        for key, write in bad.items():
            c.store.client.delete(key)
            write(key)
        c.store.client.hset("chaos:journal:{orders}:open", "K9:e1", "1-1")  # dangling: no such entry
        c.start_daemon()
        wait_for(lambda: c.gate_open(), 30, "the daemon started and reopened entries")
        for key in bad:
            assert c.store.client.keys(f"{key}:quarantine:*"), f"{key} quarantined (renamed aside)"
        assert c.store.client.hget("chaos:journal:{orders}:open:quarantine", "K9:e1") == b"1-1"
        assert c.tree_state("position-manager") == "running" and c.tree_state("execution-engine") == "running"
        c.exchange.set_price("BTCUSDT", 98_000.0)
        wait_for(lambda: c.exits("K1"), 10, "K1's re-armed stop exits")
        time.sleep(LATE_REQUESTS_S)
        assert len(c.exits("K1")) == 1, "one crossing, one exit"
        assert_finished_clean(c)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_issue11_case7_operator_command_on_a_corrupt_record_is_refused_whole() -> None:
    with Cluster("case7-e2e", [StrategySpec("O1", buy_at="+2s", stop_loss=99_000.0)], settings=FAST) as c:
        c.start_with_positions("O1")
        c.store.client.hset("chaos:runtime:{O1}", "position", "sideways")
        for command in ("strategy-disable", "strategy-enable"):
            with pytest.raises(AssertionError, match="HTTP 409.*corrupt state.*position") as refused:
                c.command(command, id="O1")
            assert "nothing changed" in str(refused.value)
        assert c.tree_state("strategy:O1") == "running", "refused whole: the strategy was not stopped"
        assert c.store.client.hget("chaos:runtime:{O1}", "position") == b"sideways", "nothing written"
        c.exchange.set_price("BTCUSDT", 98_000.0)
        wait_for(lambda: c.exits("O1"), 10, "its stop still exits")
        time.sleep(LATE_REQUESTS_S)
        assert len(c.exits("O1")) == 1
        assert_finished_clean(c)
