"""F18 Redis down, against a redis-server SIGKILLed for real: fast detection, exits buffered
to disk, ordered replay with no duplicate and no loss, even when the replay itself is cut."""

import time

import pytest

from runtime.store import Position, Runtime, StaleGeneration, StoreUnavailable


def timed(call):
    started = time.monotonic()
    try:
        call()
    except StoreUnavailable as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


def test_f18_redis_sigkill_raises_store_unavailable_within_1s(store, redis_server):
    store.write_runtime("s1", Runtime(generation=1))
    redis_server.kill()

    calls = {
        "load_runtime": lambda: store.load_runtime("s1"),
        "write_runtime": lambda: store.write_runtime("s1", Runtime(generation=1)),
        "acquire_lock": lambda: store.acquire_lock("s1", 1000),
        "enqueue": lambda: store.enqueue({"strategy": "s1"}),
        "read": lambda: store.read("engine-1", block_ms=200),
        "journal_intent": lambda: store.journal_intent("o1", {}),
        "next_generation": store.next_generation,
    }
    for name, call in calls.items():
        elapsed, exc = timed(call)
        assert exc is not None, f"{name} must raise StoreUnavailable while Redis is down"
        assert elapsed < 1.0, f"{name} took {elapsed:.3f}s to notice Redis is down"
        assert exc.operation

    started = time.monotonic()
    assert store.available() is False
    assert time.monotonic() - started < 1.0


def test_f18_exits_buffered_to_disk_then_replayed_in_order_without_duplicates(store, redis_server):
    store.journal_intent("buy-1", {"strategy": "s1", "side": "BUY"})
    store.journal_outcome("buy-1", "FILLED")
    generation = store.next_generation()
    store.write_runtime("s1", Runtime(position=Position.BOUGHT, generation=generation, updated_at=1.0))
    redis_server.kill()

    # The stop-loss still runs; its records go to the disk buffer.
    written = [
        store.journal_intent_or_buffer("sl-1", {"strategy": "s1", "side": "SELL", "reason": "stop_loss"}),
        store.journal_outcome_or_buffer("sl-1", "FILLED", {"price": 94990.0}),
        store.write_runtime_or_buffer(
            "s1", Runtime(position=Position.EXITED_BY_SL, generation=generation, updated_at=2.0, last_orders=("sl-1",))),
    ]
    assert [w.where for w in written] == ["buffer"] * 3
    assert len(store.buffer.read()[0]) == 3

    redis_server.restart()
    # Redis is back but the buffer is not drained yet: a new record queues behind the old ones.
    late = store.journal_intent_or_buffer("sl-2", {"strategy": "s2", "side": "SELL"})
    assert late.where == "buffer"

    report = store.replay_buffer()

    assert (report.applied, report.duplicates, report.corrupt) == (4, 0, [])
    journal = store.entries()
    assert [(e.client_order_id, e.kind, e.source) for e in journal] == [
        ("buy-1", "intent", "redis"), ("buy-1", "outcome", "redis"),
        ("sl-1", "intent", "buffer"), ("sl-1", "outcome", "buffer"), ("sl-2", "intent", "buffer"),
    ], "replay keeps order and loses nothing"
    assert [r.record_id for r in written[:2] + [late]] == [e.record_id for e in journal[2:]]
    assert store.load_runtime("s1").position == Position.EXITED_BY_SL
    assert [e.client_order_id for e in store.unsettled()] == ["sl-2"]
    assert not store.buffer_pending()

    assert store.replay_buffer().seen == 0 and len(store.entries()) == 5, "a second replay adds nothing"
    assert store.journal_intent_or_buffer("sl-3", {}).where == "redis", "drained buffer: writes go to Redis again"


def test_f18_replay_interrupted_half_way_by_a_real_kill_then_resumed(store, redis_server):
    redis_server.kill()
    ids = [store.journal_intent_or_buffer(f"x-{n}", {"n": n}).record_id for n in range(6)]
    redis_server.restart()

    class KillAfterThree:
        """Redis dies for real while the replay is half way through."""

        def __init__(self):
            self.calls = 0

        def apply_buffered(self, record):
            self.calls += 1
            if self.calls == 4:
                redis_server.kill()
            return store.apply_buffered(record)

    with pytest.raises(StoreUnavailable):
        store.buffer.replay(KillAfterThree())
    assert store.buffer_pending(), "an interrupted replay keeps the buffer"

    redis_server.restart()
    assert [e.fields["n"] for e in store.entries()] == [0, 1, 2], "AOF kept what the cut replay wrote"
    report = store.replay_buffer()

    assert (report.applied, report.duplicates) == (3, 3)
    journal = store.entries()
    assert [e.fields["n"] for e in journal] == [0, 1, 2, 3, 4, 5]
    assert [e.record_id for e in journal] == ids, "each record exactly once, in order"
    assert not store.buffer_pending()


def test_f18_a_write_whose_reply_was_lost_is_not_duplicated_by_the_replay(store, monkeypatch):
    real_intent = store.journal.intent

    def lands_but_reply_lost(*args, **kwargs):
        real_intent(*args, **kwargs)
        raise StoreUnavailable("journal_intent", "connection reset after the write")

    monkeypatch.setattr(store.journal, "intent", lands_but_reply_lost)
    recorded = store.journal_intent_or_buffer("o1", {"n": 1})
    monkeypatch.undo()

    assert recorded.where == "buffer"
    report = store.replay_buffer()
    assert (report.applied, report.duplicates) == (0, 1)
    assert [e.record_id for e in store.entries()] == [recorded.record_id]


def test_f18_buffered_runtime_write_is_still_fenced_at_replay(store, redis_server):
    store.write_runtime("s1", Runtime(position=Position.BOUGHT, generation=3))
    redis_server.kill()
    store.write_runtime_or_buffer("s1", Runtime(position=Position.EXITED_BY_SL, generation=3))
    redis_server.restart()
    store.write_runtime("s1", Runtime(position=Position.NONE, generation=4))  # a newer incarnation took over

    report = store.replay_buffer()

    assert report.refused == 1 and "stale generation" in report.corrupt[0].problem
    assert store.load_runtime("s1").generation == 4
    with pytest.raises(StaleGeneration):
        store.write_runtime("s1", Runtime(generation=3))


def test_f18_without_a_buffer_the_fallback_raises(redis_url, redis_server, make_store):
    bare = make_store(buffer_path=None)
    redis_server.kill()
    with pytest.raises(StoreUnavailable):
        bare.journal_intent_or_buffer("o1", {})
