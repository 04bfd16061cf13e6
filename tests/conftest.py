"""Suite-wide guard: no test leaves a process behind (see tests/process_guard.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.process_guard import Leftover, Session, kill, orphans, session_processes


def _fail_on(leftovers: list[Leftover], what: str) -> None:
    if leftovers:
        kill(leftovers)
        pytest.fail(f"{what} (now killed):\n" + "\n".join(f"  {p.line()}" for p in leftovers), pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def test_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """Set up before any other fixture, torn down last: every process this session started is gone."""
    session = Session.start(tmp_path_factory.getbasetemp())
    yield session
    _fail_on(session_processes(session), "processes started in this test session are still alive")


@pytest.fixture(autouse=True)
def no_orphan_process_after_the_test(test_session: Session) -> Iterator[None]:
    """After the test and its fixtures: nothing it started runs on with nobody left to stop it."""
    yield
    _fail_on(orphans(test_session), "processes started by this test outlived whoever started them")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest first (slow, then by timeout bound), so that no worker starts a long e2e test when
    the others have run out of work; stable, so the order within a cost class stays the file order."""
    def cost(item: pytest.Item) -> tuple[bool, float]:
        bound = item.get_closest_marker("timeout")
        return item.get_closest_marker("slow") is None, -float(bound.args[0]) if bound and bound.args else 0.0
    items.sort(key=cost)
