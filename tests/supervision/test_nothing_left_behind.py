"""Issue 12, done-when: crash/restart cycles and escalation leave no thread, registry
entry or live child behind."""

from __future__ import annotations

import threading
from typing import Any

import pykka

from supervision import ChildSpec, Supervisor
from tests.supervision.workers import Worker
from tests.waiting import eventually


def child(sup: Any, child_id: str) -> dict[str, Any]:
    return next(c for c in sup.which_children().get(timeout=10) if c["id"] == child_id)


EXITS = ["crash", "system_exit", "stop", "shutdown"]  # an exception, a BaseException, a normal exit, shutdown


def registered() -> set[str]:
    return {ref.actor_urn for ref in pykka.ActorRegistry.get_all()}


def test_thousand_crash_restart_cycles_leave_nothing_behind():
    threads_before, registry_before = set(threading.enumerate()), registered()
    ref = Supervisor.start(name="cycles", intensity=5000, period=600,
                           children=[ChildSpec("w", Worker, hang_timeout=30.0), ChildSpec("bystander", Worker)])
    sup = ref.proxy()
    incarnations = []
    for cycle in range(1000):
        current = child(sup, "w")
        incarnations.append(current["ref"])
        current["ref"].tell(EXITS[cycle % len(EXITS)])
        eventually(lambda: (c := child(sup, "w"))["state"] == "running" and c["generation"] != current["generation"],
                   timeout=10, what="replacement running")
    incarnations.append(child(sup, "w")["ref"])
    incarnations.append(child(sup, "bystander")["ref"])
    assert child(sup, "w")["restarts"] == 1000
    assert ref.stop(timeout=30)
    eventually(lambda: set(threading.enumerate()) <= threads_before, timeout=10,
               what="no thread left behind by 1,000 crash/restart cycles and the stop")
    assert registered() == registry_before, "no registry entry left behind"
    assert not any(r.is_alive() for r in incarnations), "no live child left behind"


def test_three_level_escalation_leaves_nothing_behind():
    threads_before, registry_before = set(threading.enumerate()), registered()
    escalations: list[str] = []
    leaf = ChildSpec("leaf", Supervisor, kind="supervisor", hang_timeout=30.0,
                     kwargs={"intensity": 0, "children": [ChildSpec("worker", Worker, hang_timeout=30.0)]})
    mid = ChildSpec("mid", Supervisor, kind="supervisor", hang_timeout=30.0,
                    kwargs={"intensity": 0, "children": [leaf, ChildSpec("mid-worker", Worker)]})
    root = Supervisor.start(name="three-levels", intensity=0, on_escalate=escalations.append,
                            children=[mid, ChildSpec("root-worker", Worker)])
    mid_ref = child(root.proxy(), "mid")["ref"]
    leaf_ref = child(mid_ref.proxy(), "leaf")["ref"]
    refs = [root, mid_ref, leaf_ref, child(root.proxy(), "root-worker")["ref"],
            child(mid_ref.proxy(), "mid-worker")["ref"], child(leaf_ref.proxy(), "worker")["ref"]]
    refs[-1].tell("crash")
    eventually(lambda: not root.is_alive(), timeout=30, what="the escalation reached the root")
    assert len(escalations) == 1 and escalations[0].startswith("mid:"), escalations
    assert not any(r.is_alive() for r in refs), "no live child left behind at any level"
    eventually(lambda: set(threading.enumerate()) <= threads_before, timeout=10,
               what="no thread (actor, watchdog, timer) left behind by a 3-level escalation")
    assert registered() == registry_before, "no registry entry left behind"
