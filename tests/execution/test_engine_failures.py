"""F1–F6, F14, F18, F25 end to end: real Redis, the simulated exchange over HTTP, the real engine.

Invariant checked everywhere: the exchange never executes two orders for one intent.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from actors.messages import StopsTriggered
from actors.core.stop_index import StopHit, StopSide
from actors.orders import OrderIntent, Purpose
from actors.messages import DirectIntent
from runtime.store.runtime_state import Position, Status
from tests.waiting import eventually


def buy(trading, strategy_id="s1", qty=0.01, stop_loss=95_000.0, generation=0):
    strategy = trading.services.config.strategy(strategy_id)
    intent = OrderIntent(strategy_id, strategy.account, "BTCUSDT", Purpose.ENTRY, qty, stop_loss, generation)
    assert trading.services.submit(intent)
    return intent


def test_entry_fills_journals_and_arms_stop(make_trading):
    t = make_trading()
    buy(t)
    update = t.wait_update("s1")
    assert update.verdict == "FILLED", update.reason
    runtime = t.runtime("s1")
    assert runtime.position is Position.BOUGHT and runtime.quantity == 0.01 and runtime.pending_order == ""
    assert [e["client_order_id"] for e in t.executed()] == ["s1:e1"]
    assert t.services.stops.armed("BTCUSDT", "s1").level == 95_000.0
    kinds = [(e.kind, e.client_order_id) for e in t.store.entries()]
    assert kinds == [("intent", "s1:e1"), ("outcome", "s1:e1")], "intent journaled before the outcome"
    assert t.store.unsettled() == []


def test_f1_timeout_is_looked_up_not_resent(make_trading):
    t = make_trading()
    t.exchange.set_fault("hold_reply", count=1, hold_s=1.0)
    buy(t)
    update = t.wait_update("s1")
    assert update.verdict == "FILLED", update.reason
    assert len(t.executed("s1:e1")) == 1, "a timed-out order that executed must not be sent twice"
    assert t.runtime("s1").position is Position.BOUGHT


def test_f1_unknown_not_executed_is_resent_with_same_id(make_trading):
    t = make_trading()
    t.exchange.set_fault("unknown_503", count=2, execute=False)
    buy(t)
    update = t.wait_update("s1")
    assert update.verdict == "FILLED", update.reason
    ids = [e["client_order_id"] for e in t.exchange.ledger() if e.get("action") == "place"]
    assert ids == ["s1:e1"] * 3, "every retry reuses the deterministic client order id"
    assert len(t.executed()) == 1


def test_f1_retries_exhausted_is_safety_abort_position_unchanged(make_trading):
    t = make_trading()
    t.exchange.set_fault("internal_error", count=10)
    buy(t)
    update = t.wait_update("s1")
    assert update.verdict == "SAFETY_ABORT" and "retries exhausted" in update.reason
    assert len([e for e in t.exchange.ledger() if e.get("action") == "place"]) == 4, "first send + 3 retries"
    runtime = t.runtime("s1")
    assert runtime.position is Position.NONE and runtime.status is Status.FAILED
    assert t.executed() == []


def test_f2_permanent_reject_aborts_at_once(make_trading):
    t = make_trading()
    t.exchange.set_fault("order_reject", count=1, code=-2019)
    buy(t)
    update = t.wait_update("s1")
    assert update.verdict == "SAFETY_ABORT" and "-2019" in update.reason
    assert len([e for e in t.exchange.ledger() if e.get("action") == "place"]) == 1, "no retry of a permanent reject"
    runtime = t.runtime("s1")
    assert runtime.status is Status.FAILED and "-2019" in runtime.reason
    buy(t, "s2", qty=0.02, stop_loss=None)
    assert t.wait_update("s2").verdict == "FILLED", "another strategy is unaffected"


def test_f3_token_invalid_no_retry_account_paused(make_trading):
    t = make_trading()
    # Not count=1: a background signed request (listenKey, reconcile) could use the one answer up.
    t.exchange.set_fault("token_invalid")
    buy(t)
    update = t.wait_update("s1")
    t.exchange.clear_faults("token_invalid")
    assert update.verdict == "ACCOUNT_PAUSED"
    assert t.runtime("s1").status is Status.PAUSED
    assert len([e for e in t.exchange.ledger() if e.get("action") == "place"]) == 0 or t.executed() == []


def test_f5_rate_limited_then_succeeds(make_trading):
    t = make_trading()
    t.exchange.set_fault("http_429", count=1, retry_after_s=0)
    buy(t)
    assert t.wait_update("s1").verdict == "FILLED"
    assert len(t.executed("s1:e1")) == 1


def test_stop_loss_fires_exactly_once_on_repeated_triggers(make_trading):
    t = make_trading()
    buy(t)
    assert t.wait_update("s1").verdict == "FILLED"
    hit = StopHit("s1", StopSide.LONG, 95_000.0, 0.01, 94_000.0)
    engine = t.services.directory.ref("execution-engine")
    for _ in range(3):  # three ticks below the stop, as if the book had not caught up
        engine.tell(StopsTriggered("BTCUSDT", (hit,), 0.0))
    eventually(lambda: t.runtime("s1").position is Position.EXITED_BY_SL, what="exited by stop-loss")
    exits = [e for e in t.executed() if e["client_order_id"] == "s1:x1"]
    assert len(exits) == 1, f"exactly one exit order for one stop, got {exits}"
    assert t.services.stops.armed("BTCUSDT", "s1") is None


def test_stale_generation_is_refused(make_trading):
    t = make_trading()
    t.services.fence.admit("strategy:s1", 7)
    buy(t, generation=6)
    update = t.wait_update("s1")
    assert update.verdict == "REFUSED" and "stale generation" in update.reason
    assert t.exchange.ledger() == []


def test_f6_stuck_lock_self_heals_after_ttl(make_trading, redis_client):
    t = make_trading()
    redis_client.set("t:lock_state:{s1}", "dead-owner", px=300)  # a crashed holder's lock
    buy(t)
    update = t.wait_update("s1")
    assert update.verdict == "FILLED", "the lock expired by TTL and the order went through"


def test_f14_corrupt_runtime_aborts_that_strategy_only(make_trading, redis_client):
    t = make_trading()
    redis_client.hset("t:runtime:{s1}", mapping={"position": "sideways", "status": "active"})
    buy(t)
    update = t.wait_update("s1")
    assert update.verdict == "SAFETY_ABORT" and "corrupt state at 't:runtime:{s1}'" in update.reason
    buy(t, "s2", qty=0.02, stop_loss=None)
    assert t.wait_update("s2").verdict == "FILLED"
    assert [e["client_order_id"] for e in t.executed()] == ["s2:e1"]


def test_f25_operator_stop_cancels_retries(make_trading):
    t = make_trading()
    t.exchange.set_fault("internal_error", count=100)
    buy(t)
    eventually(lambda: len([e for e in t.exchange.ledger() if e.get("action") == "place"]) >= 1)
    t.services.engine_cancel("s1")
    update = t.wait_update("s1")
    assert update.verdict in ("CANCELLED", "SAFETY_ABORT")
    sends = len([e for e in t.exchange.ledger() if e.get("action") == "place"])
    threading.Event().wait(0.5)
    assert len([e for e in t.exchange.ledger() if e.get("action") == "place"]) == sends, "nothing sent after the stop"
    assert t.executed() == []


def test_f18_exit_runs_while_redis_down_and_journal_replays(make_trading, redis_server):
    t = make_trading()
    buy(t)
    assert t.wait_update("s1").verdict == "FILLED"
    redis_server.kill()
    hit = StopHit("s1", StopSide.LONG, 95_000.0, 0.01, 94_000.0)
    t.services.directory.ref("execution-engine").tell(StopsTriggered("BTCUSDT", (hit,), 0.0))
    update = t.wait_update("s1", count=2)
    assert update.verdict == "FILLED", update.reason
    assert len(t.executed("s1:x1")) == 1, "the stop-loss exit went out with Redis down"
    assert t.store.buffer_pending()
    redis_server.restart()
    eventually(lambda: t.store.available())
    t.store.replay_buffer()
    journal = [(e.kind, e.client_order_id) for e in t.store.entries()]
    assert ("intent", "s1:x1") in journal and ("outcome", "s1:x1") in journal, "nothing lost from the journal"
    assert t.runtime("s1").position is Position.EXITED_BY_SL


def test_direct_intent_entry_is_never_accepted_without_store(make_trading, redis_server):
    t = make_trading()
    redis_server.kill()
    intent = OrderIntent("s1", "alice", "BTCUSDT", Purpose.ENTRY, 0.01)
    assert t.services.submit(intent) is False, "entries are refused while Redis is down"
    t.services.directory.ref("execution-engine").tell(DirectIntent(intent))
    update = t.wait_update("s1")
    assert update.verdict == "REFUSED"
    assert t.exchange.ledger() == []
    redis_server.restart()




def test_f4_send_delayed_past_its_recv_window_is_rejected_on_arrival_then_sent_once(make_trading):
    t = make_trading()
    t.exchange.set_fault("rest_latency", count=1, ms=800, scope="place")  # past the 0.5 s timeout and recvWindow
    buy(t)
    update = t.wait_update("s1")
    assert update.verdict == "FILLED", update.reason
    assert len(t.executed("s1:e1")) == 1, "a send lost to the network is settled, never doubled"
    places = [e for e in t.exchange.ledger("s1:e1") if e.get("action") == "place"]
    assert len(places) == 2 and not places[0].get("executed"), \
        "the late first request arrived after its recvWindow and was refused; the resend went after that"
    assert places[1]["time_ms"] >= places[0]["time_ms"], "resent only once the first could no longer execute"
    assert t.runtime("s1").position is Position.BOUGHT


def test_f31_exit_on_a_corrupt_runtime_repaired_by_a_newer_writer_is_refused_as_fenced(
        make_trading, redis_client, monkeypatch):
    """A stop-loss exit reads a corrupt runtime; before it sets the record aside, a newer
    incarnation repairs it. This engine is fenced: it must refuse the exit with a reason (the
    newer writer owns the strategy), not crash the engine and not send an order it can't record."""
    t = make_trading()
    buy(t)
    assert t.wait_update("s1").verdict == "FILLED"
    filled = t.runtime("s1")
    redis_client.hset("t:runtime:{s1}", mapping={"position": "sideways"})
    original = t.store.replace_corrupt_runtime

    def newer_writer_first(strategy_id, runtime, problem):
        redis_client.delete("t:runtime:{s1}")
        t.store.write_runtime(strategy_id, replace(filled, generation=filled.generation + 1_000_000))
        return original(strategy_id, runtime, problem)

    monkeypatch.setattr(t.store, "replace_corrupt_runtime", newer_writer_first)
    hit = StopHit("s1", StopSide.LONG, 95_000.0, 0.01, 94_000.0)
    t.services.directory.ref("execution-engine").tell(StopsTriggered("BTCUSDT", (hit,), 0.0))
    update = t.wait_update("s1", count=2)
    assert update.verdict == "REFUSED" and "newer" in update.reason, \
        f"a fenced engine refuses the exit and says why: {update}"
    assert t.executed("s1:x") == [], "nothing sent that this incarnation could not record"
    assert t.runtime("s1").generation == filled.generation + 1_000_000, "the newer writer's record stands"
