"""Store tests run against a real redis-server; see tests/redis_fixture.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runtime.store.store import Store
from tests.redis_fixture import redis_client, redis_server, redis_url, store  # noqa: F401


@pytest.fixture
def make_store(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., Store]]:  # noqa: F811
    """Another Store on the same Redis (a second process, a restarted daemon)."""
    made: list[Store] = []

    def make(namespace: str = "test", **kwargs: object) -> Store:
        kwargs.setdefault("buffer_path", tmp_path / f"buffer-{len(made)}.jsonl")
        s = Store(redis_url, namespace, **kwargs)  # type: ignore[arg-type]
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()
