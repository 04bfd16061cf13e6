"""Every process a test starts is gone when the test (or the session) is over.

Each pytest process (each xdist worker too) marks its environment with a session id
(`MARK`); every process it starts inherits the mark, and so do theirs: the daemon, the
browser, a spawned simulator. redis-server overwrites its environment with its process
title, so the session also keeps every temporary directory under one root (its pytest
basetemp, with TMPDIR pointed inside it): a process whose command line names a path under
that root is the session's too (a redis-server's title names its socket). The embedded
redis-server runs in its own session and outlives a SIGKILLed daemon on purpose.

After each test, a session process that is no longer our descendant is an orphan: whoever
started it is gone, so nobody will stop it. At the end of the session, every session
process still alive has leaked. Both are killed and reported by `tests/conftest.py`.

Linux only (reads /proc); on other systems nothing is found and nothing is checked.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

MARK = "WARDEN_TEST_SESSION"
_PROC = Path("/proc")


@dataclass(frozen=True)
class Session:
    """What makes a process ours: the environment mark, or a path under `root` on its command line."""

    mark: str
    root: Path

    @classmethod
    def start(cls, root: Path) -> Session:
        """Mark this process and keep every temporary file of it and its children under `root`."""
        os.environ[MARK] = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        tmp = root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        os.environ["TMPDIR"] = str(tmp)
        tempfile.tempdir = str(tmp)
        return cls(os.environ[MARK], root)


@dataclass(frozen=True)
class Leftover:
    pid: int
    ppid: int
    cmdline: str

    def line(self) -> str:
        return f"pid {self.pid} (parent {self.ppid}): {self.cmdline[:300]}"


def session_processes(session: Session) -> list[Leftover]:
    """Live processes of `session` other than this one (a zombie has no command line: not counted)."""
    needle = f"{MARK}={session.mark}\0".encode()
    root = f"{session.root}{os.sep}".encode()  # not a sibling pytest-NN that shares our prefix
    found = []
    for entry in _PROC.iterdir() if _PROC.is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if not cmdline or (root not in cmdline and needle not in (entry / "environ").read_bytes() + b"\0"):
                continue
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to read
        found.append(Leftover(int(entry.name), ppid, cmdline.replace(b"\0", b" ").decode(errors="replace").strip()))
    return found


def orphans(session: Session, grace_s: float = 2.0) -> list[Leftover]:
    """Session processes that are no longer descendants of this process and still alive after
    `grace_s` (one signalled a moment ago may still be on its way out)."""
    me = os.getpid()
    found: dict[int, tuple[Leftover, psutil.Process]] = {}
    for leftover in session_processes(session):
        try:
            proc = psutil.Process(leftover.pid)
            if me not in {p.pid for p in proc.parents()}:
                found[leftover.pid] = (leftover, proc)
        except psutil.Error:
            continue
    if not found:
        return []
    _, alive = psutil.wait_procs([proc for _, proc in found.values()], timeout=grace_s)
    return [found[proc.pid][0] for proc in alive]


def kill(leftovers: list[Leftover], timeout_s: float = 10.0) -> None:
    """SIGKILL them and wait until they are gone (so the next test starts clean)."""
    procs = []
    for leftover in leftovers:
        try:
            proc = psutil.Process(leftover.pid)
            proc.kill()
            procs.append(proc)
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=timeout_s)
