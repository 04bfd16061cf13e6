"""The PING probe behind monitor:store (F18 detection)."""

import time


def test_probe_reports_up_with_latency(store):
    health = store.health()
    assert health.up is True and health.error is None
    assert 0 < health.latency_ms < 250
    assert store.available() is True


def test_probe_reports_down_within_a_second_of_a_kill_and_up_after_restart(store, redis_server):
    assert store.available()
    redis_server.kill()
    started = time.monotonic()
    health = store.health()
    assert time.monotonic() - started < 1.0
    assert health.up is False and health.latency_ms is None and "ConnectionError" in health.error
    redis_server.restart()
    assert store.health().up is True
