"""Suite-wide guard: no test leaves a process behind (see tests/process_guard.py)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from types import FrameType

import psutil
import pytest

from tests.process_guard import Leftover, Session, kill, orphans, session_processes


def pytest_configure(config: pytest.Config) -> None:
    """A SIGTERM to the run (`timeout`, a CI cancel; it reaches every xdist worker too) ends it as
    Ctrl-C does: the fixtures are torn down, so the redis-servers and daemons they started are
    stopped. Left to its default, SIGTERM ends pytest at once, and a redis-server, which runs in
    its own session, outlives it."""
    if threading.current_thread() is not threading.main_thread():
        return
    distributing = not hasattr(config, "workerinput") and config.getoption("numprocesses", None)
    signal.signal(signal.SIGTERM, _interrupt_workers if distributing else _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}: tearing the fixtures down")


def _interrupt_workers(signum: int, frame: FrameType | None) -> None:
    """The xdist controller runs no test: its children are the workers. Each is told to tear its
    fixtures down, and the controller waits (bounded) until what they started is gone; ended by the
    controller instead, the workers would run no teardown."""
    started: list[psutil.Process] = []
    for worker in psutil.Process().children():
        try:
            started += worker.children(recursive=True)
            worker.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    psutil.wait_procs(started, timeout=30)
    _interrupt(signum, frame)


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
