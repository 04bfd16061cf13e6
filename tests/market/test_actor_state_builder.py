"""The state-builder actor behind a real feed, the real simulated exchange and real Redis.

The tick path under test: exchange -> WebSocket -> feed:BTCUSDT -> state-builder ->
stop book -> a recording execution-engine. Stops fire once, never on blind data (F10);
ticks reach only subscribed strategies; blind past stale_exit_after with policy
flatten tells degradation (F10); a crashed state-builder comes back INVALID, reloads
its snapshot and the venue's depth, validates, and clears INVALID (F17).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from actors.core.feed_health import FeedHealthConfig
from actors.core.stop_index import StopSide
from actors.messages import StopsTriggered
from actors.state_builder import NODE_ID, StateBuilder, TakeSnapshot
from actors.strategy import Tick
from runtime.store.store import Store
from supervision import ChildSpec, Supervisor
from tests.market.actor_rig import (  # noqa: F401 - fixtures
    SYMBOL,
    Rig,
    exchange,
    make_rig,
    start_recorder,
    venue,
)
from tests.redis_fixture import redis_server, redis_url  # noqa: F401 - fixtures
from tests.waiting import eventually

FAST_BUILDER = {"price_write_interval_s": 0.05, "snapshot_interval_s": 0.3, "poll_interval_s": 0.02,
                "rebuild_retry_s": 0.1}


@pytest.fixture
def store(redis_url: str, tmp_path: Path):  # noqa: F811
    s = Store(redis_url, namespace="mkt", buffer_path=tmp_path / "buffer.jsonl")
    yield s
    s.close()


def start_builder(rig: Rig, **overrides):
    ref = StateBuilder.start(rig.services, **{**FAST_BUILDER, **overrides})
    rig.actors.insert(0, ref)  # stopped after the feed
    return ref


def builder_details(rig: Rig, ref) -> dict:
    return rig.details(ref)


def symbol_details(rig: Rig, ref) -> dict:
    return builder_details(rig, ref)["symbols"].get(SYMBOL, {})


def wait_ready(rig: Rig, ref, timeout: float = 5.0) -> dict:
    return eventually(lambda: (d := builder_details(rig, ref))["ready"] and d, timeout=timeout,
                      what="state-builder ready")


def test_f10_price_crossing_armed_stop_sends_exactly_one_stops_triggered(make_rig, store):
    rig = make_rig(store)
    rig.services.stops.arm(SYMBOL, "s1", 99_000.0, 0.01, StopSide.LONG)
    rig.services.stops.arm(SYMBOL, "s2", 90_000.0, 0.01, StopSide.LONG)  # not crossed
    builder = start_builder(rig)
    feed = rig.start_feed()
    rig.wait_status(feed, "LIVE")
    wait_ready(rig, builder)
    assert rig.engine.messages(StopsTriggered) == [], "no stop fires above its level"

    rig.exchange.set_price(SYMBOL, 98_500.0)
    (t_recv, fired), = eventually(lambda: rig.engine.timed(StopsTriggered), timeout=3.0, what="StopsTriggered")
    time.sleep(0.3)  # several more crossing ticks arrive
    triggered = rig.engine.messages(StopsTriggered)
    assert len(triggered) == 1, f"a crossed stop fires exactly once, got {len(triggered)} StopsTriggered"
    assert fired.symbol == SYMBOL and [h.strategy_id for h in fired.hits] == ["s1"]
    assert fired.hits[0].price <= 99_000.0
    assert 0 < t_recv - fired.tick_perf < 0.5, "tick_perf is the frame's receipt time"
    latency_ms = (t_recv - fired.tick_perf) * 1e3
    print(f"\nF10 tick (frame receipt) -> StopsTriggered at execution-engine: {latency_ms:.2f} ms")
    assert rig.services.stops.armed(SYMBOL, "s1") is None and rig.services.stops.armed(SYMBOL, "s2") is not None
    price = eventually(lambda: (p := store.last_price(SYMBOL)) and p.price == 98_500.0 and p, timeout=2.0,
                       what="price:{S} written (throttled, off the tick path)")
    assert price.ts > time.time() - 5


def test_f10_no_stop_fires_while_symbol_is_stale(make_rig):
    rig = make_rig()
    rig.services.stops.arm(SYMBOL, "s1", 99_000.0, 0.01, StopSide.LONG)
    builder = start_builder(rig)
    feed = rig.start_feed(health=FeedHealthConfig(stale_after=0.3, heartbeat_timeout=2.0, resume_after_clean=0.2))
    rig.wait_status(feed, "LIVE")
    wait_ready(rig, builder)

    # Trickling data: marks every 0.5 s, nothing else, stale_after 0.3 s -> every price arrives on a STALE feed.
    rig.exchange.pause_market()
    rig.exchange.configure_market(mark_interval_s=0.5)
    rig.wait_status(feed, "STALE", timeout=2.0)
    suspended = symbol_details(rig, builder)["suspended_ticks"]
    rig.exchange.set_price(SYMBOL, 98_500.0)
    eventually(lambda: (d := symbol_details(rig, builder))["mark_price"] == 98_500.0 and
               d["suspended_ticks"] >= suspended + 2, timeout=3.0, what="two crossing prices seen while STALE")
    assert symbol_details(rig, builder)["price"] == 100_000.0, "a blind price is not the symbol's price"
    assert rig.details(feed)["status"] == "STALE"
    assert rig.engine.messages(StopsTriggered) == [], "F10: no stop may fire on a STALE symbol's price"
    assert rig.services.stops.armed(SYMBOL, "s1") is not None, "the stop stays armed for the first fresh price"

    rig.exchange.configure_market(mark_interval_s=0.05)
    rig.exchange.resume_market()
    fired = eventually(lambda: rig.engine.messages(StopsTriggered), timeout=3.0, what="stop after fresh data")
    time.sleep(0.2)
    assert len(rig.engine.messages(StopsTriggered)) == 1 and fired[0].hits[0].strategy_id == "s1"
    assert rig.details(feed)["status"] in ("LIVE", "RECOVERING"), "it fired once the data was fresh again"


def test_ticks_fan_out_only_to_subscribed_strategies(make_rig):
    rig = make_rig()
    subscribed = start_recorder(rig.services, "strategy:a")
    other = start_recorder(rig.services, "strategy:b")
    rig.services.ticks.subscribe(SYMBOL, "strategy:a")
    try:
        builder = start_builder(rig)
        feed = rig.start_feed()
        rig.wait_status(feed, "LIVE")
        wait_ready(rig, builder)
        ticks = eventually(lambda: len(subscribed.messages(Tick)) >= 5 and subscribed.messages(Tick), timeout=3.0,
                           what="ticks at the subscribed strategy")
        assert all(t.symbol == SYMBOL and t.price == 100_000.0 for t in ticks)
        assert other.messages() == [], "a strategy that did not subscribe gets no ticks"
    finally:
        subscribed.ref.stop(timeout=5)
        other.ref.stop(timeout=5)


def test_f10_stale_beyond_stale_exit_after_with_policy_flatten_tells_degradation(make_rig):
    rig = make_rig(stale_exit_after_s=0.6, stale_policy="flatten")
    builder = start_builder(rig)
    feed = rig.start_feed()
    rig.wait_status(feed, "LIVE")
    wait_ready(rig, builder)
    assert rig.degradation.signals("stale_exit") == []

    t0 = time.perf_counter()
    rig.exchange.set_fault("ws_stall", duration_s=1.5)
    raised = eventually(lambda: [s for s in rig.degradation.signals("stale_exit") if s.active], timeout=3.0,
                        what="stale_exit raised")[0]
    blind_for = time.perf_counter() - t0
    assert raised.key == SYMBOL and raised.effect.value == "FLATTEN", "F10: degradation turns it into a flatten"
    assert blind_for >= 0.6, f"stale_exit raised after {blind_for:.2f}s, before stale_exit_after"
    rig.wait_status(feed, "LIVE", timeout=5.0)
    eventually(lambda: [s for s in rig.degradation.signals("stale_exit") if not s.active], timeout=2.0,
               what="stale_exit cleared once the feed is LIVE")


def test_f17_state_builder_crash_invalid_then_snapshot_reload_and_ready(make_rig, store, monkeypatch):
    rig = make_rig(store)
    feed = rig.start_feed()
    root = Supervisor.start(strategy="one_for_one", intensity=3, period=600.0, min_backoff=0.0, jitter=0.0,
                            children=[ChildSpec(id=NODE_ID, factory=StateBuilder, args=(rig.services,),
                                                kwargs={**FAST_BUILDER, "snapshot_interval_s": 60.0})])
    try:
        rig.wait_status(feed, "LIVE")
        node = lambda: root.proxy().snapshot().get(timeout=2)["children"][0]  # noqa: E731
        first = eventually(lambda: (n := node()).get("details", {}).get("ready") and n, timeout=5.0,
                           what="first incarnation ready")
        invalid = rig.degradation.signals("state_invalid")
        assert invalid[0].active and not invalid[-1].active, "F17: every start is INVALID until rebuilt"

        # a distinctive value only the snapshot can bring back (the feed carries no open interest)
        rig.services.directory.tell(NODE_ID, TakeSnapshot(SYMBOL))
        eventually(lambda: (d := store.load_snapshot(SYMBOL)) and d.data.get("generation") == first["generation"],
                   timeout=2.0, what="snapshot written")
        doc = store.load_snapshot(SYMBOL)
        store.put_snapshot(SYMBOL, {**doc.data, "open_interest": 12_345.0}, doc.ts)

        before = len(rig.degradation.signals("state_invalid"))
        real = rig.services.stops.triggered

        def crash_once(symbol, price):
            monkeypatch.setattr(rig.services.stops, "triggered", real)
            raise RuntimeError("injected state-builder crash")

        monkeypatch.setattr(rig.services.stops, "triggered", crash_once)
        t0 = time.perf_counter()
        restarted = eventually(lambda: (n := node())["generation"] != first["generation"] and
                               n.get("details", {}).get("ready") and n, timeout=10.0,
                               what="replacement incarnation ready")
        wall = (time.perf_counter() - t0) * 1000
        after = eventually(lambda: (a := rig.degradation.signals("state_invalid")[before:]) and not a[-1].active
                           and a, timeout=1.0, what="state_invalid cleared at degradation")
        assert after[0].active, "F17: trading blocked (state INVALID) as soon as the state-builder dies"
        assert not after[-1].active, "F17: cleared once the replacement validated its state"
        details = restarted["details"]
        ttr = details["time_to_ready_ms"]
        print(f"\nF17 crash -> ready: time_to_ready {ttr:.1f} ms (crash -> ready seen {wall:.0f} ms)")
        assert ttr < 30_000, "F17: resume < 30 s"
        assert restarted["restarts"] == 1
        sym = details["symbols"][SYMBOL]
        assert sym["state"] == "READY" and sym["open_interest"] == 12_345.0, "F17: hot state reloaded from Redis"
        assert sym["best_bid"] is not None and sym["best_bid"] < sym["best_ask"]
        eventually(lambda: node()["details"]["symbols"][SYMBOL]["ticks"] > 0, timeout=2.0,
                   what="ticks flow into the replacement")
    finally:
        root.stop(timeout=10)


def test_f17_rebuild_waits_for_valid_venue_depth_and_redis_down_never_breaks_ticks(
        make_rig, store, redis_server):  # noqa: F811
    redis_server.kill()  # no snapshot to reload, and every price/snapshot write fails
    rig = make_rig(store)
    rig.services.stops.arm(SYMBOL, "s1", 99_000.0, 0.01, StopSide.LONG)
    rig.exchange.set_fault("rest_latency", count=2, ms=700, scope="/fapi/v1/depth")  # > the 0.5 s timeout
    builder = start_builder(rig)
    details = wait_ready(rig, builder)
    assert details["symbols"][SYMBOL]["rebuild_attempts"] == 3, "two timed-out depth requests are not a valid state"
    invalid = eventually(lambda: (s := rig.degradation.signals("state_invalid")) and not s[-1].active and s,
                         timeout=1.0, what="state_invalid cleared")
    assert [s.active for s in invalid] == [True, False], "INVALID held until the venue's depth validated"

    feed = rig.start_feed()
    rig.wait_status(feed, "LIVE")
    rig.exchange.set_price(SYMBOL, 98_000.0)
    fired = eventually(lambda: rig.engine.messages(StopsTriggered), timeout=3.0, what="stop with Redis down")
    assert [h.strategy_id for h in fired[0].hits] == ["s1"], "a Redis outage must not break the tick path"
    store_stats = eventually(lambda: (d := builder_details(rig, builder))["store"]["errors"] > 0 and d["store"],
                             timeout=2.0, what="failed writes counted")
    assert store_stats["writes"] == 0
