"""Per-strategy locks (F6: lock stuck -> self-heals within its TTL, no manual step)."""

import time

import pytest

from runtime.store import LockBusy


def wait_until(predicate, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_f6_stuck_lock_self_heals_after_ttl(store):
    crashed = store.acquire_lock("s1", ttl_ms=200)  # owner dies without releasing
    assert crashed is not None
    assert store.acquire_lock("s1", ttl_ms=200) is None, "a held lock must not be taken"

    started = time.monotonic()
    taken = []
    assert wait_until(lambda: taken.append(store.acquire_lock("s1", ttl_ms=5000)) or taken[-1], 2.0)
    healed_after = time.monotonic() - started
    assert 0.1 < healed_after < 1.0, f"lock should heal by TTL (200 ms), took {healed_after:.3f}s"
    assert store.lock_holder("s1") == taken[-1].token


def test_f6_stale_owner_cannot_release_or_extend_the_new_owners_lock(store):
    stale = store.acquire_lock("s1", ttl_ms=100)
    assert wait_until(lambda: store.lock_holder("s1") is None, 1.0)
    fresh = store.acquire_lock("s1", ttl_ms=5000)
    assert fresh is not None and fresh.token != stale.token

    assert store.release_lock(stale) is False
    assert store.extend_lock(stale, 60_000) is False
    assert store.lock_holder("s1") == fresh.token, "compare-and-delete must leave someone else's lock alone"
    assert store.locks.ttl_ms(fresh.key) <= 5000
    assert store.release_lock(fresh) is True
    assert store.lock_holder("s1") is None


def test_extend_keeps_a_lock_past_its_first_ttl(store):
    lock = store.acquire_lock("s1", ttl_ms=150)
    assert store.extend_lock(lock, 1000) is True
    time.sleep(0.25)
    assert store.lock_holder("s1") == lock.token


def test_locks_are_per_strategy(store):
    assert store.acquire_lock("s1", 1000) is not None
    assert store.acquire_lock("s2", 1000) is not None


def test_locked_block_releases_and_reports_busy(store):
    with store.locked("s1", ttl_ms=1000) as lock:
        assert store.lock_holder("s1") == lock.token
        with pytest.raises(LockBusy, match="lock_state:{s1}"):
            with store.locked("s1", ttl_ms=1000):
                pass
    assert store.lock_holder("s1") is None


def test_ttl_must_be_positive(store):
    with pytest.raises(ValueError):
        store.acquire_lock("s1", 0)


def test_f6_lock_of_an_earlier_process_is_taken_over_by_a_later_one(store):
    earlier = store.acquire_lock("s1", ttl_ms=60_000, generation=5)  # SIGKILLed mid-order: never released
    assert earlier is not None
    assert store.acquire_lock("s1", ttl_ms=1000, generation=3) is None, "an older process never takes it"
    assert store.acquire_lock("s1", ttl_ms=1000, generation=5) is None, "nor the same process (serialised)"
    later = store.acquire_lock("s1", ttl_ms=1000, generation=1_000_005)
    assert later is not None and store.lock_holder("s1") == later.token, "a later process takes it over at once"
    assert not store.release_lock(earlier), "the earlier owner can no longer release it"
    plain = store.acquire_lock("s2", ttl_ms=60_000)
    assert store.acquire_lock("s2", ttl_ms=1000, generation=9) is None, "a lock without a generation waits its TTL"
    assert plain is not None
