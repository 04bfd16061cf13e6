"""Fenced runtime writes (§1 Fencing, F6 'stale generation refused') and F14 on load."""

import pytest

from runtime.store import CorruptState, Position, Runtime, StaleGeneration, Status


def test_stale_generation_refused(store):
    old, new = store.next_generation(), store.next_generation()
    store.write_runtime("s1", Runtime(position=Position.BOUGHT, generation=new, updated_at=2.0))

    with pytest.raises(StaleGeneration) as caught:
        store.write_runtime("s1", Runtime(position=Position.NONE, generation=old, updated_at=3.0))

    assert (caught.value.attempted, caught.value.current) == (old, new)
    assert caught.value.key == "test:runtime:{s1}"
    assert store.load_runtime("s1") == Runtime(position=Position.BOUGHT, generation=new, updated_at=2.0), \
        "a refused write must leave the stored record untouched"


def test_same_and_newer_generations_write(store):
    g = store.next_generation()
    store.write_runtime("s1", Runtime(generation=g, updated_at=1.0))
    store.write_runtime("s1", Runtime(position=Position.BOUGHT, generation=g, updated_at=2.0, last_orders=("o1",)))
    store.write_runtime("s1", Runtime(position=Position.SOLD, generation=g + 1, updated_at=3.0, reason="sell_at"))
    assert store.load_runtime("s1") == Runtime(position=Position.SOLD, generation=g + 1, updated_at=3.0,
                                               reason="sell_at")


def test_fence_locks_out_the_old_incarnation_before_the_new_one_writes(store):
    hung = store.next_generation()
    store.write_runtime("s1", Runtime(position=Position.BOUGHT, generation=hung, updated_at=1.0))
    replacement = store.next_generation()

    assert store.fence("s1", replacement) is True
    assert store.fence("s1", hung) is False, "fencing never lowers a generation"
    with pytest.raises(StaleGeneration):
        store.write_runtime("s1", Runtime(position=Position.NONE, generation=hung, updated_at=2.0))
    fenced = store.load_runtime("s1")
    assert (fenced.position, fenced.generation) == (Position.BOUGHT, replacement)
    assert store.fence("nobody", replacement) is False


def test_generation_compare_is_exact_beyond_float_precision(store):
    big = 2**62
    assert float(big) == float(big + 1)  # a float compare could not tell these apart
    store.write_runtime("s1", Runtime(generation=big + 1))
    with pytest.raises(StaleGeneration):
        store.write_runtime("s1", Runtime(generation=big))


def test_generations_keep_increasing_across_a_redis_kill_and_a_new_process(store, redis_server, make_store):
    before = [store.next_generation() for _ in range(3)]
    redis_server.kill()
    redis_server.restart()
    after = make_store().next_generation()  # a freshly started daemon
    assert before == sorted(set(before)) and after > before[-1]


def test_f14_corrupt_runtime_is_detected_and_only_that_strategy_is_affected(store, redis_client):
    for sid in ("s1", "s2"):
        store.write_runtime(sid, Runtime(position=Position.BOUGHT, generation=1, updated_at=1.0))
    redis_client.hset("test:runtime:{s1}", "position", "flying")

    with pytest.raises(CorruptState) as caught:
        store.load_runtime("s1")

    assert (caught.value.key, caught.value.field) == ("test:runtime:{s1}", "position")
    assert "flying" in caught.value.problem
    assert store.load_runtime("s2").position == Position.BOUGHT, "F14 aborts that strategy only"


def test_f14_runtime_key_of_the_wrong_type_is_named(store, redis_client):
    redis_client.set("test:runtime:{s1}", "bought")
    with pytest.raises(CorruptState) as caught:
        store.load_runtime("s1")
    assert (caught.value.key, caught.value.field) == ("test:runtime:{s1}", "type")
    with pytest.raises(CorruptState, match="expected a hash, found a string"):
        store.write_runtime("s1", Runtime(generation=5))


def test_f14_fenced_write_refuses_to_overwrite_a_corrupt_generation(store, redis_client):
    store.write_runtime("s1", Runtime(generation=3))
    redis_client.hset("test:runtime:{s1}", "generation", "3.5")
    with pytest.raises(CorruptState) as caught:
        store.write_runtime("s1", Runtime(generation=9, status=Status.FAILED))
    assert caught.value.field == "generation" and "3.5" in caught.value.problem
    redis_client.hdel("test:runtime:{s1}", "generation")
    with pytest.raises(CorruptState, match="'generation': missing"):
        store.fence("s1", 10)


def test_missing_runtime_loads_as_none(store):
    assert store.load_runtime("never-written") is None


def test_every_runtime_field_round_trips_through_redis(store):
    full = Runtime(position=Position.BOUGHT, status=Status.ACTIVE, last_orders=("s1:e1",), generation=7,
                   updated_at=1700000000.125, reason="scheduled buy_at", quantity=0.01, entry_price=95010.5,
                   stop_loss=95000.0, entry_seq=1, pending_order="s1:x1", pending_purpose="stop_loss")
    store.write_runtime("s1", full)
    assert store.load_runtime("s1") == full
