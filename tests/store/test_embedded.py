"""The embedded redis-server: AOF durability across kill -9, restart, adoption; external urls."""

import os

import psutil
import pytest

from runtime.store import EmbeddedRedis, EmbeddedRedisError, Position, Runtime, Store, StoreConfigError
from runtime.store.embedded import external_endpoint, resolve_endpoint


@pytest.fixture
def embedded(tmp_path):
    server = EmbeddedRedis(tmp_path / "data").start()
    yield server
    server.stop()


def test_aof_durability_data_survives_kill_9(embedded, tmp_path):
    store = Store(embedded.url, "warden")
    generation = store.next_generation()
    store.write_runtime("s1", Runtime(position=Position.BOUGHT, generation=generation, updated_at=1.0))
    store.journal_intent("o1", {"side": "SELL"})
    client = embedded.client()
    assert client.config_get("appendfsync") == {"appendfsync": "always"}
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    old_pid = embedded.pid

    embedded.kill()  # SIGKILL: no shutdown hook, no final fsync
    assert not psutil.pid_exists(old_pid)
    embedded.restart()

    assert embedded.pid != old_pid
    assert store.load_runtime("s1") == Runtime(position=Position.BOUGHT, generation=generation, updated_at=1.0)
    assert [e.client_order_id for e in store.unsettled()] == ["o1"]
    assert store.next_generation() == generation + 1
    assert embedded.aof_path.stat().st_size > 0
    store.close()
    client.close()


def test_restart_reuses_the_socket_and_data_dir(embedded):
    url, aof = embedded.url, embedded.aof_path
    embedded.client().set("k", "v")
    embedded.stop()
    assert not embedded.running and embedded.pid is None
    embedded.restart()
    assert (embedded.url, embedded.aof_path) == (url, aof)
    assert embedded.client().get("k") == b"v"


def test_a_new_daemon_adopts_the_server_a_killed_daemon_left_running(embedded, tmp_path):
    embedded.client().set("k", "v")
    successor = EmbeddedRedis(tmp_path / "data").start()  # same data_dir, server still up
    assert successor.pid == embedded.pid
    assert successor.client().get("k") == b"v"


def test_long_data_dir_gets_a_short_stable_socket_path(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    a, b = EmbeddedRedis(deep), EmbeddedRedis(deep)
    assert len(str(a.socket_path)) <= 100 and a.socket_path == b.socket_path
    assert str(deep) not in str(a.socket_path)


def test_a_server_that_cannot_start_is_reported_with_its_log(tmp_path):
    bad = EmbeddedRedis(tmp_path / "bad", extra_config={"appendfsync": "sometimes"}, start_timeout_s=3)
    with pytest.raises(EmbeddedRedisError, match="exited with code"):
        bad.start()


def test_external_url_takes_its_password_from_the_named_env_var():
    endpoint = external_endpoint("rediss://redis.internal:6380/0", "WARDEN_REDIS_PASSWORD",
                                 {"WARDEN_REDIS_PASSWORD": "s3cret"})
    assert endpoint.password == "s3cret"
    assert "s3cret" not in repr(endpoint)
    assert external_endpoint("unix:///run/redis.sock").password is None


@pytest.mark.parametrize(("url", "field", "problem"), [
    ("redis://:s3cret@host:6379", "store.url", "carries a password"),
    ("unix:///run/redis.sock?password=s3cret", "store.url", "carries a password"),
    ("http://host:6379", "store.url", "scheme must be one of"),
    ("redis://", "store.url", "needs a host"),
    ("unix://", "store.url", "needs a socket path"),
])
def test_bad_external_urls_are_refused_without_echoing_secrets(url, field, problem):
    with pytest.raises(StoreConfigError, match=problem) as caught:
        external_endpoint(url)
    assert caught.value.field == field
    assert "s3cret" not in str(caught.value)


def test_missing_password_env_var_is_named():
    with pytest.raises(StoreConfigError, match="WARDEN_REDIS_PASSWORD is not set") as caught:
        external_endpoint("redis://host:6379", "WARDEN_REDIS_PASSWORD", {})
    assert caught.value.field == "store.password_env"


def test_no_url_starts_the_embedded_server_under_data_dir(tmp_path):
    endpoint = resolve_endpoint("", tmp_path / "var")
    try:
        assert endpoint.url.startswith("unix://") and endpoint.embedded.running
        assert endpoint.client().ping() is True
        assert os.path.exists(tmp_path / "var" / "redis.conf")
    finally:
        endpoint.embedded.stop()
    assert not endpoint.embedded.running
