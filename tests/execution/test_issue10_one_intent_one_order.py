"""Issue 10, cases 1-9: one intent, one order; every doubt settles (DESIGN §3, F1, F4, F6, F19, F29, F30).

Real Redis, the simulated exchange over HTTP, the real engine and position manager. Every test
that counts orders first waits until no late request can land any more (recvWindow plus the
settle window: LATE_LANDING_S), then counts what the exchange executed.
"""

from __future__ import annotations

import time
from dataclasses import replace

from actors.core.degradation import Gate, Mode
from actors.messages import Flatten, StopsTriggered, Wake
from actors.orders import OrderIntent, Purpose
from actors.recovery import cold_start
from bench.round_trips import RoundTrips
from runtime.store.errors import StaleGeneration
from runtime.store.runtime_state import Position, Status
from runtime.venue.budget import WeightBudget
from tests.execution.conftest import LATE_LANDING_S, OPEN_GATE
from tests.waiting import eventually

HALTED = Gate(Mode.NORMAL, False, frozenset(), 0.5, ("operator HALT",), {})


def buy(trading, strategy_id="s1", qty=0.01, stop_loss=95_000.0, **kwargs):
    strategy = trading.services.config.strategy(strategy_id)
    intent = OrderIntent(strategy_id, strategy.account, "BTCUSDT", Purpose.ENTRY, qty, stop_loss, **kwargs)
    assert trading.services.submit(intent)
    return intent


def unpaced(trading) -> None:
    """The connector's budget without pacing, so a test waits only for what the venue says."""
    trading.services.venue.budget = WeightBudget(max_rate_per_s=1000.0, min_rate_per_s=1000.0)


def executed(trading, prefix: str) -> list[str]:
    """Client ids of the orders the exchange executed, after no late request can land any more."""
    time.sleep(LATE_LANDING_S)
    return [e["client_order_id"] for e in trading.exchange.ledger()
            if e.get("executed") and str(e.get("client_order_id")).startswith(prefix)]


def places(trading, prefix: str) -> list[dict]:
    return [e for e in trading.exchange.ledger()
            if e.get("action") == "place" and str(e.get("client_order_id")).startswith(prefix)]


def cross_stop(trading, strategy_id="s1", price=94_000.0) -> None:
    """A tick crossing the stop, as the state builder delivers it: popped from the stop book."""
    hits = trading.services.stops.triggered("BTCUSDT", price)
    assert [h.strategy_id for h in hits] == [strategy_id], f"the stop of {strategy_id} is armed and crossed"
    trading.services.directory.ref("execution-engine").tell(StopsTriggered("BTCUSDT", tuple(hits), 0.0))


def test_case1_unknown_entry_settles_during_the_run_arms_its_stop_and_tells_the_strategy(make_trading):
    t = make_trading()
    unpaced(t)
    t.exchange.set_fault("hold_reply", count=1, hold_s=1.5)  # executes; the reply comes after the timeout
    t.exchange.set_fault("http_429", count=7, retry_after_s=0, scope="GET /fapi/v1/order")  # lookups fail
    buy(t)
    assert t.wait_update("s1").verdict == "UNKNOWN", "first the entry is in doubt"
    filled = t.wait_update("s1", count=2, timeout=20)
    assert filled.verdict == "FILLED" and filled.fill is not None and filled.fill.purpose == "entry", \
        f"the settle loop settles the order during the run and tells the strategy (it schedules its exit): {filled}"
    runtime = t.runtime("s1")
    assert runtime.position is Position.BOUGHT and runtime.pending_order == "" and runtime.quantity == 0.01
    assert t.services.stops.armed("BTCUSDT", "s1") is not None, "the settled entry's stop is armed at once"
    assert t.store.unsettled() == []
    cross_stop(t)
    eventually(lambda: t.runtime("s1").position is Position.EXITED_BY_SL, timeout=10, what="exit by stop-loss")
    assert executed(t, "s1:") == ["s1:e1", "s1:x1"], "one entry and one exit for one intent each"


def test_case1_flatten_includes_an_entry_in_doubt(make_trading):
    t = make_trading()
    unpaced(t)
    t.exchange.set_fault("hold_reply", count=1, hold_s=1.5)
    t.exchange.set_fault("http_429", count=7, retry_after_s=0, scope="GET /fapi/v1/order")
    buy(t)
    assert t.wait_update("s1").verdict == "UNKNOWN"
    t.services.directory.ref("execution-engine").tell(Flatten("breaker", strategy_id="s1"))
    eventually(lambda: t.runtime("s1").position is Position.SOLD, timeout=20,
               what="the flatten waits for the entry in doubt to settle, then closes it")
    assert executed(t, "s1:") == ["s1:e1", "s1:x1"], "the entry that filled is flattened, once"


def test_case1_unknown_stop_loss_exit_is_retried_under_the_same_intent_until_flat(make_trading):
    t = make_trading()
    buy(t)
    assert t.wait_update("s1").verdict == "FILLED"
    unpaced(t)
    t.exchange.set_fault("unknown_503", count=1, execute=False, scope="place")  # the exit: "unknown", never ran
    t.exchange.set_fault("http_429", count=7, retry_after_s=0, scope="GET /fapi/v1/order")
    cross_stop(t)
    eventually(lambda: t.runtime("s1").position is Position.EXITED_BY_SL, timeout=25,
               what="the exit in doubt settled NOT_FOUND after its settle window, then sent again: flat")
    exits = executed(t, "s1:x")
    assert len(exits) == 1, f"exactly one exit executed for one stop: {exits}"
    assert t.services.stops.armed("BTCUSDT", "s1") is None and t.store.unsettled() == []


def test_case3_lookup_never_races_a_send_still_on_the_wire(make_trading):
    t = make_trading(recv_window_ms=1500)
    t.exchange.set_fault("rest_latency", count=1, ms=800, scope="place")  # past the 0.5 s timeout, inside recvWindow
    buy(t)
    assert t.wait_update("s1", timeout=15).verdict == "FILLED"
    assert len(places(t, "s1:e1")) == 1, \
        "no second send while the first may still execute: its late arrival is what filled"
    assert executed(t, "s1:") == ["s1:e1"]
    assert t.runtime("s1").position is Position.BOUGHT


def test_case4_account_pause_is_serialized_with_a_fill_in_progress(make_trading):
    t = make_trading()
    t.exchange.set_fault("hold_reply", count=1, hold_s=1.0)  # s3's entry: executes, reply after the timeout
    buy(t, "s3", stop_loss=None)
    eventually(lambda: places(t, "s3:e1"), what="s3's entry reached the venue")
    t.exchange.set_fault("token_invalid", count=1, scope="place")
    buy(t, "s1")  # same account: TOKEN_INVALID pauses s3 while its fill is being settled
    eventually(lambda: t.runtime("s3").position is Position.BOUGHT and t.runtime("s3").status is Status.PAUSED,
               timeout=10, what="both the fill and the account pause in s3's runtime")
    time.sleep(LATE_LANDING_S)
    runtime = t.runtime("s3")
    assert runtime.position is Position.BOUGHT and runtime.status is Status.PAUSED, \
        f"neither write reverted the other: {runtime}"


def test_case4_operator_disable_is_never_lost_to_a_concurrent_fill(make_trading):
    from actors.node import Node

    t = make_trading()
    t.exchange.set_fault("hold_reply", count=1, hold_s=1.0)
    buy(t)
    eventually(lambda: places(t, "s1:e1"), what="the entry reached the venue")

    class Operator:  # the node's runtime-write path, with this test's services
        services = t.services

    Node._write_status(Operator(), "s1", Status.DISABLED, "disabled by operator: test")  # type: ignore[arg-type]
    eventually(lambda: t.runtime("s1").position is Position.BOUGHT, timeout=10, what="the fill")
    time.sleep(LATE_LANDING_S)
    runtime = t.runtime("s1")
    assert runtime.status is Status.DISABLED and runtime.position is Position.BOUGHT, \
        f"the operator's disable and the fill both stand: {runtime}"


def test_case5_cold_start_waits_for_the_live_engine_and_never_settles_an_order_in_flight(make_trading):
    t = make_trading(recv_window_ms=1500)
    t.exchange.set_fault("rest_latency", count=1, ms=800, scope="place")
    buy(t)
    eventually(lambda: t.store.unsettled(), what="the entry journaled and in flight")
    cold_start(t.services)  # a position-manager restart while the engine's order is on the wire
    eventually(lambda: t.runtime("s1").position is Position.BOUGHT, timeout=10, what="the fill")
    outcomes = [e.outcome for e in t.store.entries() if e.kind == "outcome" and e.client_order_id == "s1:e1"]
    assert "NOT_FOUND" not in outcomes, f"never settled NOT_FOUND while it could still execute: {outcomes}"
    assert executed(t, "s1:") == ["s1:e1"]
    runtime = t.runtime("s1")
    assert runtime.position is Position.BOUGHT and runtime.entry_seq == 1, f"no stale write over the fill: {runtime}"


def test_case6_a_stale_queue_entry_never_opens_a_second_position(make_trading):
    t = make_trading()
    intent = buy(t)
    assert t.wait_update("s1").verdict == "FILLED"
    sell = OrderIntent("s1", "alice", "BTCUSDT", Purpose.EXIT, reason="scheduled sell_at")
    assert t.services.submit(sell)
    assert t.wait_update("s1", count=2).verdict == "FILLED"
    assert t.runtime("s1").position is Position.SOLD
    # The first entry's ack was lost (a Redis blip): the same entry is delivered again.
    stale = replace(intent, position_seq=0)
    t.store.enqueue(stale.to_fields())
    t.services.directory.ref("execution-engine").tell(Wake())
    refused = t.wait_update("s1", count=3)
    assert refused.verdict == "REFUSED" and "single-use" in refused.reason, refused.reason
    assert executed(t, "s1:") == ["s1:e1", "s1:x1"], "one intent, one position: no e2"


def test_case7_resend_rechecks_the_gate_an_entry_never_goes_out_after_a_halt(make_trading):
    t = make_trading()
    unpaced(t)
    t.exchange.set_fault("http_429", count=1, retry_after_s=1, scope="place")
    buy(t)
    eventually(lambda: places(t, "s1:e1"), what="the first send, rate-limited")
    t.services.gate.publish(HALTED)
    update = t.wait_update("s1", timeout=10)
    assert update.verdict == "REFUSED" and "gate closed" in update.reason, update.reason
    t.services.gate.publish(OPEN_GATE)
    assert executed(t, "s1:") == [], "nothing went out after the HALT"
    runtime = t.runtime("s1")
    assert runtime.pending_order == "" and runtime.position is Position.NONE
    assert t.store.unsettled() == []


def test_case7_an_entry_not_sent_within_its_bound_is_dropped_never_sent_late(make_trading):
    t = make_trading()
    unpaced(t)
    t.exchange.set_fault("http_429", count=1, retry_after_s=2, scope="place")
    buy(t, created_at=time.time() - t.services.pipeline.entry_bound_s + 1.0)
    update = t.wait_update("s1", timeout=10)
    assert update.verdict == "REFUSED" and "never sent late" in update.reason, update.reason
    assert executed(t, "s1:") == [], "the rate-limited entry was dropped, not sent after its bound"


def test_case9_lock_is_extended_while_an_order_is_in_progress(make_trading):
    t = make_trading(recv_window_ms=1500)
    t.services.pipeline.lock_ttl_ms = 600
    t.exchange.set_fault("rest_latency", count=1, ms=1200, scope="place")
    buy(t)
    eventually(lambda: t.store.unsettled(), what="the entry journaled and in flight")
    held_at = time.monotonic()
    seen: list[bool] = []
    while time.monotonic() - held_at < 1.0:  # well past the 600 ms TTL, while the order is still settling
        seen.append(t.store.lock_holder("s1") is not None)
        time.sleep(0.05)
    assert all(seen), "the strategy's lock never lapsed while its order was in progress"
    assert t.wait_update("s1", timeout=10).verdict == "FILLED"
    assert executed(t, "s1:") == ["s1:e1"]


def test_case8_generations_are_monotonic_across_processes_and_stale_side_effects_are_refused(make_trading):
    before = make_trading("gen", start=False)  # the earlier process
    old = before.generations()
    before.services.fence.admit("strategy:s1", old)
    queued = OrderIntent("s1", "alice", "BTCUSDT", Purpose.ENTRY, 0.01, 95_000.0, generation=old, position_seq=0)
    before.services.pipeline.update_runtime("s1", lambda r: replace(r, reason="written by the earlier process"))

    after = make_trading("gen")  # the next process, same Redis; its cold start fences every runtime
    new = after.generations()
    assert new > old and after.services.generation > before.services.generation, \
        "generations never restart: every incarnation of a later process is above every earlier one"
    after.services.fence.admit("strategy:s1", new)
    before.store.enqueue(queued.to_fields())  # the earlier process's entry, still in the queue
    after.services.directory.ref("execution-engine").tell(Wake())
    refused = after.wait_update("s1")
    assert refused.verdict == "REFUSED" and "stale generation" in refused.reason, refused.reason
    try:
        before.services.pipeline.update_runtime("s1", lambda r: replace(r, status=Status.PAUSED))
    except StaleGeneration:
        pass
    else:
        raise AssertionError("a late runtime write of the earlier process must be refused by the store")
    assert executed(after, "s1:") == [], "the earlier process's queued entry never reached the venue"


def test_an_order_needs_one_redis_round_trip_before_the_wire(make_trading):
    t = make_trading()
    counter = RoundTrips()
    with counter.counting(t.services.pipeline):
        buy(t)
        assert t.wait_update("s1").verdict == "FILLED"
        cross_stop(t)
        eventually(lambda: t.runtime("s1").position is Position.EXITED_BY_SL, timeout=10, what="exit by stop-loss")
    assert counter.per_order == [1, 1], \
        f"DESIGN §6: lock + load + journal intent in one Redis round trip, entry and stop-loss: {counter.per_order}"
    assert [e.kind for e in t.store.entries()] == ["intent", "outcome", "intent", "outcome"]


def test_a_runtime_changed_behind_the_cache_takes_the_two_round_trip_path_and_sends_once(make_trading):
    t = make_trading()
    buy(t)
    assert t.wait_update("s1").verdict == "FILLED"
    stored = t.runtime("s1")
    t.store.write_runtime("s1", replace(stored, reason="written by someone else"))  # the cache is now stale
    counter = RoundTrips()
    with counter.counting(t.services.pipeline):
        cross_stop(t)
        eventually(lambda: t.runtime("s1").position is Position.EXITED_BY_SL, timeout=10, what="exit by stop-loss")
    assert counter.per_order == [2], f"lock + load, then journal + pending: {counter.per_order}"
    assert t.runtime("s1").reason == "written by someone else", "the order was made from the stored runtime"
    assert executed(t, "s1:") == ["s1:e1", "s1:x1"]
