"""The suite's leak guard finds what a test leaves running (tests/process_guard.py, tests/conftest.py).

The realistic leaks: a daemon SIGKILLed by a test leaves its embedded redis-server running (it
runs in its own session so that a restarted daemon can adopt it), and a test run ended by
SIGTERM (`timeout`) used to leave its session's redis-server behind. Nobody is left to stop them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests import process_guard
from tests.process_guard import Session
from tests.waiting import eventually

# A stand-in for the daemon: starts an embedded redis-server under `data_dir`, says its pid, waits.
OWNER = """
import sys, time
from runtime.store.embedded import EmbeddedRedis
server = EmbeddedRedis(sys.argv[1]).start()
print(server.pid, flush=True)
time.sleep(120)
"""


def test_guard_finds_the_redis_server_a_sigkilled_daemon_leaves_behind(tmp_path: Path, test_session: Session) -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(tmp_path / "redis")], stdout=subprocess.PIPE,
                             text=True, cwd=Path(__file__).resolve().parents[1])
    redis_pid = int(owner.stdout.readline())  # type: ignore[union-attr]
    try:
        assert redis_pid in {p.pid for p in process_guard.session_processes(test_session)}, \
            "a process started by a test's child carries the session mark"
        assert redis_pid not in {p.pid for p in process_guard.orphans(test_session)}, "while its owner runs it is no orphan"
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        leaked = eventually(lambda: [p for p in process_guard.orphans(test_session) if p.pid == redis_pid], timeout=10,
                            what="the redis-server seen as an orphan")
        assert "redis-server" in leaked[0].cmdline, "the guard names the leaked process"
    finally:
        owner.kill()
        owner.wait(10)
        process_guard.kill([process_guard.Leftover(redis_pid, 0, "")])
    assert not psutil.pid_exists(redis_pid) or psutil.Process(redis_pid).status() == psutil.STATUS_ZOMBIE
    assert redis_pid not in {p.pid for p in process_guard.session_processes(test_session)}


def test_guard_ignores_processes_of_other_sessions(test_session: Session) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             env={**os.environ, process_guard.MARK: "someone-else"})
    try:
        assert other.pid not in {p.pid for p in process_guard.session_processes(test_session)}, \
            "another helper's (or another worker's) processes are not ours to kill"
    finally:
        other.kill()
        other.wait(10)


# A test run of its own on the suite's conftest and Redis fixture: each test waits with Redis up.
INNER = """
import time
from tests.redis_fixture import redis_server, redis_url  # noqa: F401

def test_waits(redis_url):
    time.sleep(120)

def test_waits_too(redis_url):
    time.sleep(120)
"""


def redis_servers_under(root: Path) -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline"])
            if "redis-server" in " ".join(p.info["cmdline"] or ()) and str(root) in " ".join(p.info["cmdline"] or ())]


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one_process", "xdist_controller_only"])
def test_sigterm_to_a_test_run_stops_the_redis_servers_of_its_session(tmp_path: Path, workers: list[str]) -> None:
    (tmp_path / "test_inner.py").write_text(INNER, encoding="utf-8")
    root, basetemp = Path(__file__).resolve().parents[1], tmp_path / "inner-tmp"
    run = subprocess.Popen([sys.executable, "-m", "pytest", "-q", *workers, "-p", "tests.conftest", "-p",
                            "no:cacheprovider", "-c", "/dev/null", "--rootdir", str(tmp_path), "--basetemp",
                            str(basetemp), str(tmp_path / "test_inner.py")],
                           cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        started = eventually(lambda: redis_servers_under(basetemp), timeout=60, what="the inner run's Redis up")
        eventually(lambda: len(redis_servers_under(basetemp)) >= (2 if workers else 1), timeout=60,
                   what="one Redis per worker")
        run.send_signal(signal.SIGTERM)  # to the run alone (with xdist: the controller, not its workers)
        run.wait(90)
        assert redis_servers_under(basetemp) == [], \
            f"a test run ended by SIGTERM leaves no redis-server behind (had {started})"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(10)
