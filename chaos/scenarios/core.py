"""The scenarios the whole design is for: kill -9 mid-order (F19), Redis killed (F18), feed dropped (F7)."""

from __future__ import annotations

import time

from chaos.harness import Cluster, StrategySpec, wait_for
from chaos.scenario import Result, finish, ms_since, scenario


@scenario("kill-daemon", "F19")
def kill_daemon(result: Result) -> None:
    """SIGKILL the daemon between "intent journaled" and "reply received"; restart; no duplicate."""
    with Cluster("kill-daemon", [StrategySpec("k1", buy_at="+3s", stop_loss=95_000.0)]) as c:
        c.start_sampling()
        c.exchange.set_fault("hold_reply", count=1, hold_s=5.0)  # executes the BUY, holds its reply
        c.start_daemon()
        wait_for(lambda: c.executed("k1:e1"), 20, "the BUY executed at the exchange (its reply held)")
        journal = [(e.kind, e.client_order_id) for e in c.store.entries()]
        result.check(("intent", "k1:e1") in journal, "the intent was journaled before the send")
        c.kill_daemon()
        result.check([e.client_order_id for e in c.store.unsettled()] == ["k1:e1"],
                     "after kill -9 the intent is journaled and unsettled")
        t0 = time.monotonic()
        c.start_daemon()
        wait_for(lambda: (r := c.runtime("k1")) is not None and r.position.value == "bought" and not r.pending_order,
                 30, "cold start settled the order by lookup")
        result.recover_ms = ms_since(t0)
        result.check(len(c.executed("k1:e1")) == 1, "exactly one BUY at the exchange for intent k1:e1")
        result.check(c.store.unsettled() == [], "no unsettled journal entry after the cold start")
        node = c.node("position-manager") or {}
        armed = (node.get("details") or {}).get("cold_start", {}).get("armed", [])
        result.check("k1" in armed, f"the stop-loss of k1 was re-armed on cold start (armed: {armed})")
        finish(result, c)


@scenario("redis-down", "F18")
def redis_down(result: Result) -> None:
    """Kill redis-server: gate closes ≤ 1 s; a stop-loss still exits, buffered; replay on return."""
    with Cluster("redis-down", [StrategySpec("r1", buy_at="+2s", stop_loss=99_000.0)]) as c:
        c.start_sampling()
        c.start_daemon()
        wait_for(lambda: (r := c.runtime("r1")) is not None and r.position.value == "bought", 30, "r1 bought")
        wait_for(lambda: c.gate_open(), 15, "gate open before the failure")
        t0 = time.monotonic()
        c.redis.kill()
        wait_for(lambda: c.gate_open() is False, 5, "gate closed after Redis died")
        result.detect_ms = ms_since(t0)
        result.check(result.detect_ms <= 1500, f"gate closed within ~1 s of Redis dying ({result.detect_ms} ms)")
        c.exchange.set_price("BTCUSDT", 98_000.0)  # through r1's stop while Redis is down
        wait_for(lambda: c.executed("r1:x1"), 15, "the stop-loss exit went out with Redis down")
        t1 = time.monotonic()
        c.redis.restart()
        wait_for(lambda: c.gate_open(), 20, "gate reopened after replay and reconciliation")
        result.recover_ms = ms_since(t1)
        journal = [(e.kind, e.client_order_id) for e in c.store.entries()]
        result.check(("intent", "r1:x1") in journal and ("outcome", "r1:x1") in journal,
                     "the buffered exit's intent and outcome were replayed into the journal")
        result.check(c.runtime("r1").position.value == "exited_by_sl", "runtime shows exited_by_sl after replay")
        finish(result, c)


@scenario("feed-drop", "F7")
def feed_drop(result: Result) -> None:
    """Drop every WebSocket and refuse reconnects: entries blocked fast; reconnect, resync, resume."""
    with Cluster("feed-drop", [StrategySpec("d1", buy_at="+600s", sell_at="+900s")]) as c:
        c.start_sampling()
        c.start_daemon()
        wait_for(lambda: c.entries_open("BTCUSDT"), 20, "BTCUSDT entries open with a live feed")
        t0 = time.monotonic()
        c.exchange.set_fault("ws_drop", count=2)  # drop now and refuse the next two reconnects
        wait_for(lambda: c.entries_open("BTCUSDT") is False, 5, "BTCUSDT entries blocked after the feed dropped")
        result.detect_ms = ms_since(t0)
        result.check(result.detect_ms <= 1100, f"entries blocked within ~100 ms of detection ({result.detect_ms} ms)")
        feed = c.node("feed:BTCUSDT") or {}
        result.notes["feed_details_during"] = feed.get("details")
        wait_for(lambda: c.entries_open("BTCUSDT"), 40, "entries open again after reconnect, resync and clean data")
        result.recover_ms = ms_since(t0)
        finish(result, c)
