"""CPU and memory of one process and all its descendants (the daemon, its embedded
redis-server, plugin children), so another program's load on the host never trips the
resources breaker (F22). System-wide figures are sampled alongside, as context only."""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

__all__ = ["ProcessTree", "TreeSample"]


@dataclass(frozen=True)
class TreeSample:
    cpu_percent: float  # of all cores (100 = every core busy), like psutil.cpu_percent()
    memory_percent: float  # resident memory of the tree, of the host's total
    processes: int
    system_cpu_percent: float
    system_memory_percent: float


class ProcessTree:
    def __init__(self, root_pid: int | None = None) -> None:
        self.root = psutil.Process(root_pid if root_pid is not None else os.getpid())
        self._known: dict[int, psutil.Process] = {}  # the same objects each time: cpu_percent needs the last call
        self._cores = psutil.cpu_count() or 1
        psutil.cpu_percent(interval=None)  # prime the system-wide figure
        self.sample()  # prime every process of the tree

    def sample(self) -> TreeSample:
        """Since the previous call: the tree's CPU share, its memory now, and the host's."""
        try:
            members = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            members = []
        cpu = rss = 0.0
        alive: dict[int, psutil.Process] = {}
        for member in members:
            known = self._known.get(member.pid)
            process = known if known is not None and _same(known, member) else member
            try:
                cpu += process.cpu_percent(interval=None)  # a process seen for the first time counts from the next call
                rss += process.memory_info().rss
            except psutil.Error:  # it ended meanwhile
                continue
            alive[member.pid] = process
        self._known = alive
        total = psutil.virtual_memory().total
        return TreeSample(cpu / self._cores, 100.0 * rss / total if total else 0.0, len(alive),
                          psutil.cpu_percent(interval=None), psutil.virtual_memory().percent)


def _same(a: psutil.Process, b: psutil.Process) -> bool:
    """The same process, not a new one that reused the pid."""
    try:
        return a.create_time() == b.create_time()
    except psutil.Error:
        return False
