"""The order queue: stop entries first, blocking reads, reclaim of a dead consumer's entries."""

import threading
import time

import pytest

from runtime.store import Priority


def test_stop_entries_are_consumed_before_earlier_normal_entries(store):
    for n in range(3):
        store.enqueue({"strategy": f"s{n}", "side": "BUY"})
    store.enqueue({"strategy": "s9", "side": "SELL", "reason": "stop_loss"}, Priority.STOP)

    batch = store.read("engine-1", count=10)

    assert [o.intent["strategy"] for o in batch] == ["s9", "s0", "s1", "s2"]
    assert batch[0].priority is Priority.STOP and batch[0].stream == "test:queue:{orders}:stop"


def test_read_blocks_until_an_entry_arrives(store):
    producer = threading.Timer(0.1, lambda: store.enqueue({"strategy": "s1"}, Priority.STOP))
    producer.start()
    started = time.monotonic()
    batch = store.read("engine-1", count=1, block_ms=350)
    waited = time.monotonic() - started
    producer.join()
    assert [o.intent for o in batch] == [{"strategy": "s1"}]
    assert 0.05 < waited < 0.35


def test_read_returns_empty_after_its_block(store):
    started = time.monotonic()
    assert store.read("engine-1", count=5, block_ms=100) == []
    assert time.monotonic() - started < 0.4


def test_blocking_longer_than_the_socket_timeout_is_refused(store):
    with pytest.raises(ValueError, match="exceeds 400 ms"):
        store.read("engine-1", block_ms=1000)


def test_reclaim_takes_over_a_dead_consumers_pending_entries(store, make_store):
    normal_id = store.enqueue({"strategy": "s1", "side": "BUY"})
    stop_id = store.enqueue({"strategy": "s2", "side": "SELL"}, Priority.STOP)
    dead = make_store()  # another process ...
    assert len(dead.read("node-a", count=10)) == 2  # ... takes both entries, then dies without acking
    assert store.queue.pending() == 2
    assert store.read("node-b", count=10) == [], "delivered entries are not handed out again by read"

    assert store.reclaim("node-b", min_idle_ms=150) == [], "entries not yet idle long enough stay put"
    time.sleep(0.2)
    claimed = store.reclaim("node-b", min_idle_ms=150)

    assert [(o.entry_id, o.priority) for o in claimed] == [(stop_id, Priority.STOP), (normal_id, Priority.NORMAL)]
    assert all(store.ack(o) for o in claimed)
    assert store.queue.pending() == 0
    assert store.reclaim("node-b", min_idle_ms=0) == []


def test_ack_removes_the_entry_and_a_second_ack_is_a_no_op(store, redis_client):
    store.enqueue({"strategy": "s1"})
    (order,) = store.read("engine-1")
    assert store.ack(order) is True
    assert store.ack(order) is False
    assert redis_client.xlen("test:queue:{orders}") == 0
    assert store.queue.pending() == 0


def test_corrupt_queue_entry_is_dead_lettered_and_does_not_block_the_queue(store, redis_client):
    store.queue.ensure_group()
    redis_client.xadd("test:queue:{orders}", {"intent": "{not json"})
    redis_client.xadd("test:queue:{orders}", {"wrong": "field"})
    store.enqueue({"strategy": "s1"})

    batch = store.read("engine-1", count=10)

    assert [o.intent for o in batch] == [{"strategy": "s1"}]
    letters = store.queue.dead_letters()
    assert len(letters) == 2
    assert "test:queue:{orders}" in letters[0]["problem"] and "not valid JSON" in letters[0]["problem"]
    assert "intent (entry" in letters[1]["problem"] and "'wrong'" in letters[1]["problem"]
    assert store.queue.pending() == 1, "dead letters are acked; only the good entry is pending"


def test_queue_and_its_group_survive_a_redis_kill(store, redis_server, make_store):
    store.enqueue({"strategy": "s1"}, Priority.STOP)
    store.read("engine-1")  # delivered, unacked
    store.enqueue({"strategy": "s2"})
    redis_server.kill()
    redis_server.restart()

    fresh = make_store()
    assert [o.intent["strategy"] for o in fresh.read("engine-2")] == ["s2"]
    assert [o.intent["strategy"] for o in fresh.reclaim("engine-2", min_idle_ms=0)] == ["s1", "s2"]


def test_queue_recreates_a_lost_group(store, redis_client):
    store.enqueue({"strategy": "s1"})
    assert len(store.read("engine-1")) == 1
    redis_client.flushall()  # Redis lost its data (not our AOF, but an external server might)
    store.enqueue({"strategy": "s2"})
    assert [o.intent["strategy"] for o in store.read("engine-1")] == ["s2"]


def test_enqueue_refuses_what_it_cannot_store(store):
    with pytest.raises(ValueError, match="JSON"):
        store.enqueue({"at": object()})
    with pytest.raises(ValueError, match="JSON"):
        store.enqueue({"price": float("nan")})
