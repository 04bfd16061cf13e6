"""Issue 15 / F22: the resources breaker measures the daemon's own process tree; another
program's load on the host (the demo was put in REDUCED/HALTED by it) is context only."""
from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from chaos.harness import wait_for
from runtime.process_tree import ProcessTree

BURN = "import time\nend = time.monotonic() + {s}\nwhile time.monotonic() < end:\n    pass\n"
SLEEP = "import time\ntime.sleep({s})\n"


def spawn(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL)


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        try:
            descendants = psutil.Process(p.pid).children(recursive=True)
        except psutil.Error:
            descendants = []
        for d in descendants:
            d.kill()
        p.kill()
        p.wait(10)
        psutil.wait_procs(descendants, timeout=10)  # gone, not just signalled, when the test ends


def test_issue15_f22_a_busy_child_counts_and_a_busy_stranger_does_not(procs):
    sleeper = spawn(SLEEP.format(s=60))
    procs.append(sleeper)
    quiet_tree = ProcessTree(sleeper.pid)  # a daemon-like tree with nothing busy in it
    burner = spawn(BURN.format(s=60))  # a stranger to the sleeper's tree, a child of this test
    procs.append(burner)
    busy_tree = ProcessTree(burner.pid)
    deadline = time.monotonic() + 30
    seen_busy = 0.0
    while time.monotonic() < deadline and seen_busy <= 10.0:
        time.sleep(0.5)
        seen_busy = busy_tree.sample().cpu_percent
        quiet = quiet_tree.sample()
        assert quiet.cpu_percent < 5.0, f"another process's load leaked into the tree's figure: {quiet}"
    assert seen_busy > 10.0, "the spinning process's own tree shows its load"
    assert quiet.processes == 1 and quiet.system_cpu_percent >= 0.0


def test_issue15_f22_descendants_are_part_of_the_tree(procs):
    parent = spawn(f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {BURN.format(s=60)!r}])")
    procs.append(parent)
    tree = ProcessTree(parent.pid)
    wait_for(lambda: tree.sample().processes == 2, 20, "the grandchild is seen")
    wait_for(lambda: tree.sample().cpu_percent > 10.0, 30, "the grandchild's spinning counts for the tree",
             interval=0.5)
