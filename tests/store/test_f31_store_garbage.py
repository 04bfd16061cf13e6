"""F31 garbage in the store, against a real redis-server: a bad value is classified like the
same error from a plain command, quarantined (renamed aside, never deleted) with its key
logged, and the rest works on a fresh key. F27: a store marked down fails at once."""

from __future__ import annotations

import time

import pytest
import redis.exceptions as rex

from runtime.store import CorruptState, Runtime, StoreUnavailable
from runtime.store.errors import reply_code, translated
from runtime.store.queue import Priority


def quarantined(redis_client, key: str) -> list[str]:
    return sorted(k.decode() for k in redis_client.keys(f"{key}:quarantine*"))


@pytest.mark.parametrize("inner, expected", [
    ("@user_script:1: WRONGTYPE Operation against a key holding the wrong kind of value", CorruptState),
    ("@user_script:1: @user_script: 1: -OOM command not allowed when used memory > 'maxmemory'.", StoreUnavailable),
    ("@user_script:1: @user_script: 1: -READONLY You can't write against a read only replica.", StoreUnavailable),
    ("@user_script:1: @user_script: 1: -LOADING Redis is loading the dataset in memory", StoreUnavailable),
    ("@user_script:3: NOSCRIPT No matching script. Please use EVAL.", StoreUnavailable),
])
def test_f31_lua_errors_are_classified_like_plain_commands(inner, expected):
    raised = rex.ResponseError(f"Error running script (call to f_0123abcd): {inner}")
    with pytest.raises(expected):
        with translated("journal_intent", "test:journal:{orders}"):
            raise raised


def test_f31_reply_code_strips_the_script_wrapping():
    wrapped = rex.ResponseError("Error running script (call to f_1): @user_script:1: @user_script: 1: -OOM no")
    assert reply_code(wrapped) == "OOM no"
    assert reply_code(rex.ResponseError("ERR syntax error")) == "ERR syntax error"


def test_f31_real_oom_and_readonly_inside_a_script_are_store_unavailable(store, redis_client):
    redis_client.config_set("maxmemory", 1)
    try:
        with pytest.raises(StoreUnavailable, match="OOM"):
            store.journal_intent("s1:x1", {"strategy_id": "s1"})
    finally:
        redis_client.config_set("maxmemory", 0)
    redis_client.replicaof("127.0.0.1", 1)
    try:
        with pytest.raises(StoreUnavailable, match="READONLY"):
            store.write_runtime("s1", Runtime(generation=1))
    finally:
        redis_client.replicaof("NO", "ONE")


def test_f31_journal_stream_of_the_wrong_type_is_quarantined_and_the_intent_journaled(store, redis_client):
    redis_client.set("test:journal:{orders}", "garbage")
    entry_id = store.journal_intent("s1:x1", {"strategy_id": "s1", "purpose": "stop_loss"})
    assert entry_id, "the intent was journaled on a fresh stream"
    assert [e.client_order_id for e in store.unsettled()] == ["s1:x1"]
    aside = quarantined(redis_client, "test:journal:{orders}")
    assert len(aside) == 1 and redis_client.get(aside[0]) == b"garbage", "the bad value is kept, never deleted"


def test_f31_dangling_open_index_entry_is_quarantined_and_the_rest_read(store, redis_client):
    store.journal_intent("s1:e1", {"strategy_id": "s1"})
    redis_client.hset("test:journal:{orders}:open", "o9", "1-1")
    assert [e.client_order_id for e in store.unsettled()] == ["s1:e1"]
    assert redis_client.hget("test:journal:{orders}:open:quarantine", "o9") == b"1-1"
    assert not redis_client.hexists("test:journal:{orders}:open", "o9")


@pytest.mark.parametrize("bad", ["nan", "wrongtype"])
def test_f31_bad_price_cache_is_quarantined_not_fatal(store, redis_client, bad):
    key = "test:price:{BTCUSDT}"
    if bad == "nan":
        redis_client.hset(key, mapping={"price": "nan", "ts": "1.0"})
    else:
        redis_client.rpush(key, "x")
    assert store.last_price("BTCUSDT") is None, "a bad cache reads as no cache"
    assert len(quarantined(redis_client, key)) == 1
    store.set_price("BTCUSDT", 100.0, 2.0)
    assert store.last_price("BTCUSDT").price == 100.0


def test_f31_wrong_type_price_key_is_quarantined_on_write(store, redis_client):
    redis_client.rpush("test:price:{BTCUSDT}", "x")
    store.set_price("BTCUSDT", 100.0, 2.0)
    assert store.last_price("BTCUSDT").price == 100.0
    assert len(quarantined(redis_client, "test:price:{BTCUSDT}")) == 1


def test_f31_symbol_index_of_the_wrong_type_is_quarantined(store, redis_client):
    redis_client.set("test:symbol:{BTCUSDT}:strategies", "garbage")
    store.put_strategy("s1", {"id": "s1", "symbol": "BTCUSDT"})
    assert store.strategies_for_symbol("BTCUSDT") == frozenset({"s1"})
    assert len(quarantined(redis_client, "test:symbol:{BTCUSDT}:strategies")) == 1


def test_f31_queue_stream_of_the_wrong_type_is_quarantined(store, redis_client):
    store.enqueue({"strategy_id": "s1"}, Priority.NORMAL)
    redis_client.delete(store.keys.queue_orders)
    redis_client.set(store.keys.queue_orders, "garbage")
    assert store.read("engine") == []
    store.enqueue({"strategy_id": "s2"}, Priority.NORMAL)
    assert [o.intent["strategy_id"] for o in store.read("engine")] == ["s2"]
    assert len(quarantined(redis_client, store.keys.queue_orders)) == 1


def test_f31_corrupt_runtime_is_replaced_and_kept_aside(store, redis_client):
    redis_client.hset("test:runtime:{s1}", mapping={"position": "sideways"})
    with pytest.raises(CorruptState):
        store.load_runtime("s1")
    aside = store.replace_corrupt_runtime("s1", Runtime(generation=3), "test")
    assert store.load_runtime("s1") == Runtime(generation=3)
    assert redis_client.hget(aside, "position") == b"sideways"


def test_f27_marked_down_fails_every_call_at_once(store):
    store.mark_down("probe timed out")
    started = time.monotonic()
    for call in (lambda: store.load_runtime("s1"), lambda: store.acquire_lock("s1", 1000),
                 lambda: store.journal_intent("s1:x1", {}), lambda: store.enqueue({"a": 1})):
        with pytest.raises(StoreUnavailable, match="marked down"):
            call()
    assert time.monotonic() - started < 0.05, "no network round trip while marked down"
    recorded = store.journal_intent_or_buffer("s1:x1", {"strategy_id": "s1"})
    assert recorded.where == "buffer", "exits still recorded, in the disk buffer"
    store.mark_up()
    with pytest.raises(StoreUnavailable, match="disk buffer not replayed"):
        store.load_runtime("s1")  # seed 295: Redis up, but older than the buffer until the replay
    store.replay_buffer()
    assert store.load_runtime("s1") is None


@pytest.mark.parametrize("write", [
    lambda c, k: c.set(k, "0123456789abcdef0123456789abcdef"),  # an owner token, but no expiry
    lambda c, k: c.set(k, "garbage"),  # not an owner token, no expiry
    lambda c, k: c.set(k, "garbage", px=3_600_000),  # not an owner token, an hour to live
    lambda c, k: c.hset(k, "owner", "x"),  # not even a string
])
def test_f31_lock_no_owner_could_have_written_is_stale_after_lock_ttl(store, redis_client, write):
    key = "test:lock_state:{s1}"
    write(redis_client, key)
    assert store.acquire_lock("s1", 300) is None, "not taken at once: it might be someone's"
    assert "stale lock" in store.lock_problem("s1")
    assert 0 < redis_client.pttl(key) <= 300, "given an expiry of lock_ttl"
    deadline = time.monotonic() + 5
    lock = None
    while lock is None and time.monotonic() < deadline:
        lock = store.acquire_lock("s1", 300)
        time.sleep(0.02)
    assert lock is not None, "replaced after lock_ttl"
    assert store.lock_problem("s1") is None
    assert store.release_lock(lock)


def test_f6_a_real_owners_lock_is_left_alone(store, redis_client):
    held = store.acquire_lock("s1", 60_000)
    assert store.acquire_lock("s1", 300) is None
    assert store.lock_problem("s1") is None, "a real owner's lock is not stale"
    assert redis_client.pttl("test:lock_state:{s1}") > 50_000, "its TTL untouched"
    assert store.release_lock(held)
