"""Ports of Erlang/OTP lib/stdlib/test/supervisor_SUITE.erl cases that apply to threads.

Each test is named after the OTP case it ports. Workers live in `workers.py`.
"""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from supervision import (
    AlreadyPresent,
    AlreadyStarted,
    ChildSpec,
    NotFound,
    Restarting,
    Running,
    StartFailed,
    Supervisor,
)
from tests.supervision.workers import FlakyStart, Worker
from tests.waiting import eventually


def children(sup: Any) -> list[dict[str, Any]]:
    return sup.which_children().get(timeout=5)


def child(sup: Any, child_id: str) -> dict[str, Any]:
    return next(c for c in children(sup) if c["id"] == child_id)


def generation(sup: Any, child_id: str) -> int:
    return child(sup, child_id)["generation"]


def crash_and_wait_restart(sup: Any, child_id: str, message: str = "crash") -> dict[str, Any]:
    before = child(sup, child_id)
    before["ref"].tell(message)
    return eventually(
        lambda: (c := child(sup, child_id))["generation"] != before["generation"] and c["state"] == "running" and c,
        what=f"{child_id} restarted",
    )


def dead(ref: pykka.ActorRef[Any]) -> bool:
    return not ref.is_alive()


def specs(*ids: str, **options: Any) -> list[ChildSpec]:
    return [ChildSpec(id=i, factory=Worker, **options) for i in ids]


# --- restart strategies ------------------------------------------------------------


def test_one_for_one(start_sup):
    sup = start_sup(strategy="one_for_one", children=specs("c1", "c2"))
    c2_before = child(sup, "c2")
    crash_and_wait_restart(sup, "c1")
    assert child(sup, "c2")["ref"] is c2_before["ref"], "one_for_one must leave siblings untouched"
    assert child(sup, "c1")["restarts"] == 1


def test_one_for_one_escalation(start_sup):
    escalations: list[str] = []
    sup = start_sup(strategy="one_for_one", intensity=1, period=60, on_escalate=escalations.append,
                    children=specs("c1", "c2"))
    ref = sup.actor_ref
    crash_and_wait_restart(sup, "c1")
    c1, c2 = child(sup, "c1")["ref"], child(sup, "c2")["ref"]
    c1.tell("crash")
    eventually(lambda: dead(ref), what="supervisor stopped after intensity tripped")
    assert dead(c1) and dead(c2), "an escalating supervisor stops all its children"
    assert len(escalations) == 1 and "c1" in escalations[0]


def test_one_for_all(start_sup):
    sup = start_sup(strategy="one_for_all", children=specs("c1", "c2", "c3"))
    old = {c["id"]: c["ref"] for c in children(sup)}
    old["c2"].tell("crash")
    eventually(lambda: all(c["ref"] is not None and c["ref"] is not old[c["id"]] for c in children(sup)),
               what="all children restarted")
    assert all(dead(r) for r in old.values())
    assert [c["id"] for c in children(sup)] == ["c1", "c2", "c3"]


def test_one_for_all_escalation(start_sup):
    sup = start_sup(strategy="one_for_all", intensity=1, period=60, children=specs("c1", "c2"))
    ref = sup.actor_ref
    crash_and_wait_restart(sup, "c1")
    c2 = child(sup, "c2")["ref"]
    c2.tell("crash")
    eventually(lambda: dead(ref), what="one_for_all supervisor escalated")
    assert dead(c2), "an escalating one_for_all supervisor stops every child"


def test_rest_for_one(start_sup):
    sup = start_sup(strategy="rest_for_one", children=specs("c1", "c2", "c3"))
    old = {c["id"]: c["ref"] for c in children(sup)}
    old["c2"].tell("crash")
    eventually(lambda: child(sup, "c3")["ref"] not in (None, old["c3"]) and child(sup, "c2")["state"] == "running",
               what="c2 and c3 restarted")
    assert child(sup, "c1")["ref"] is old["c1"], "children before the failed one are untouched"
    assert dead(old["c2"]) and dead(old["c3"])


def test_rest_for_one_escalation(start_sup):
    sup = start_sup(strategy="rest_for_one", intensity=1, period=60, children=specs("c1", "c2"))
    ref = sup.actor_ref
    crash_and_wait_restart(sup, "c2")
    c1 = child(sup, "c1")["ref"]
    c1.tell("crash")
    eventually(lambda: dead(ref), what="rest_for_one supervisor escalated")
    assert dead(c1)


@pytest.mark.parametrize("strategy", ["one_for_all", "rest_for_one"])
def test_other_child_fails_restart(start_sup, strategy):
    """A sibling that fails to start during the group restart counts; the window trips."""
    plan = {"fail_starts": 0}
    sup = start_sup(strategy=strategy, intensity=3, period=60,
                    children=[ChildSpec("c1", Worker), ChildSpec("c2", FlakyStart, args=(plan,))])
    ref = sup.actor_ref
    plan["fail_starts"] = 100  # from now on c2 can never start again
    child(sup, "c1")["ref"].tell("crash")
    eventually(lambda: dead(ref), what="supervisor escalated after failed sibling restarts")
    assert plan["attempts"] == 1 + 3, "the original start plus one attempt per allowed restart"


def test_multiple_restarts():
    """Sliding window (OTP multiple_restarts), driven by freezegun through the default clock."""
    from freezegun import freeze_time

    with freeze_time("2026-01-01 00:00:00") as frozen:
        ref = Supervisor.start(intensity=3, period=600, children=specs("c1"))
        sup = ref.proxy()
        try:
            for _ in range(3):
                crash_and_wait_restart(sup, "c1")
                frozen.tick(100)
            # 3 restarts at t=0,100,200; now t=300. Move past the first one's period.
            frozen.tick(301)  # t=601: the restart at t=0 has left the window
            crash_and_wait_restart(sup, "c1")
            assert ref.is_alive(), "a restart outside the window must not count"
            crash_ref = child(sup, "c1")["ref"]
            crash_ref.tell("crash")  # window now holds t=100,200,601 + this one = 4 > 3
            eventually(lambda: dead(ref), what="4th restart within the period trips")
        finally:
            if ref.is_alive():
                ref.stop()


# --- restart types ------------------------------------------------------------------

EXITS = {"normal": "stop", "shutdown": "shutdown", "abnormal": "crash"}
EXPECT_RESTART = {
    ("permanent", "normal"): True,
    ("permanent", "shutdown"): True,
    ("permanent", "abnormal"): True,
    ("transient", "normal"): False,
    ("transient", "shutdown"): False,
    ("transient", "abnormal"): True,
    ("temporary", "normal"): False,
    ("temporary", "shutdown"): False,
    ("temporary", "abnormal"): False,
}


@pytest.mark.parametrize("restart,exit_kind", sorted(EXPECT_RESTART))
def test_restart_type_by_exit_reason(start_sup, restart, exit_kind):
    """OTP permanent_normal ... temporary_abnormal: the nine restart-type × exit-reason cases."""
    sup = start_sup(children=[ChildSpec("c1", Worker, restart=restart)])
    first = child(sup, "c1")
    first["ref"].tell(EXITS[exit_kind])
    eventually(lambda: dead(first["ref"]), what="child exited")
    if EXPECT_RESTART[(restart, exit_kind)]:
        now = eventually(lambda: (c := child(sup, "c1"))["state"] == "running" and c, what="restarted")
        assert now["generation"] > first["generation"]
    elif restart == "temporary":
        eventually(lambda: children(sup) == [], what="temporary spec forgotten")
    else:
        state = eventually(lambda: child(sup, "c1")["state"] != "running" and child(sup, "c1")["state"])
        assert state == "stopped" and child(sup, "c1")["ref"] is None


def test_temporary_bystander(start_sup):
    """A temporary child ended by a sibling's restart is not restarted and is forgotten."""
    sup = start_sup(strategy="one_for_all", children=[ChildSpec("perm", Worker), ChildSpec("temp", Worker, restart="temporary")])
    temp = child(sup, "temp")["ref"]
    child(sup, "perm")["ref"].tell("crash")
    eventually(lambda: [c["id"] for c in children(sup)] == ["perm"] and child(sup, "perm")["state"] == "running")
    assert dead(temp)


def test_do_not_save_child_specs_for_temporary_children(start_sup):
    sup = start_sup()
    spec = ChildSpec("t1", Worker, restart="temporary")
    sup.start_child(spec).get()
    sup.terminate_child("t1").get()
    assert children(sup) == []
    with pytest.raises(NotFound):
        sup.restart_child("t1").get()
    ref = sup.start_child(spec).get()
    ref.tell("crash")
    eventually(lambda: children(sup) == [], what="crashed temporary child forgotten")


# --- stopping -----------------------------------------------------------------------


def test_sup_stop_timeout(start_sup):
    """A child that overruns its shutdown timeout is abandoned, marked killed and fenced."""
    release = threading.Event()
    sup = start_sup(children=[ChildSpec("slow", Worker, kwargs={"release": release, "stop_delay": 5.0}, shutdown=0.2)])
    before = child(sup, "slow")
    sup.terminate_child("slow").get(timeout=5)
    after = child(sup, "slow")
    assert after["state"] == "killed"
    assert sup.count_children().get()["active"] == 0
    release.set()
    eventually(lambda: dead(before["ref"]), what="abandoned incarnation ends once released")


def test_sup_stop_terminates_in_reverse_order(start_sup):
    stopped: list[str] = []

    class Recorder(Worker):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        def on_stop(self) -> None:
            stopped.append(self.name)

    sup = start_sup(children=[ChildSpec(i, Recorder, args=(i,)) for i in ("a", "b", "c")])
    sup.actor_ref.stop(timeout=5)
    assert stopped == ["c", "b", "a"]


# --- introspection ------------------------------------------------------------------


def test_order_of_children(start_sup):
    sup = start_sup(strategy="one_for_one", children=specs("c1", "c2", "c3"))
    crash_and_wait_restart(sup, "c2")
    crash_and_wait_restart(sup, "c1")
    sup.start_child(ChildSpec("c4", Worker)).get()
    assert [c["id"] for c in children(sup)] == ["c1", "c2", "c3", "c4"]


def test_count_children(start_sup):
    sup = start_sup(children=[*specs("w1", "w2"),
                              ChildSpec("sub", Supervisor, kind="supervisor", kwargs={"children": specs("x")})])
    assert sup.count_children().get() == {"specs": 3, "active": 3, "supervisors": 1, "workers": 2}
    sup.terminate_child("w1").get()
    assert sup.count_children().get() == {"specs": 3, "active": 2, "supervisors": 1, "workers": 2}


def test_count_restarting_children(start_sup):
    plan = {"fail_starts": 0}
    sup = start_sup(min_backoff=0.3, max_backoff=0.3, jitter=0.0, intensity=10,
                    children=[ChildSpec("f", FlakyStart, args=(plan,))])
    child(sup, "f")["ref"].tell("crash")
    eventually(lambda: child(sup, "f")["state"] == "restarting", what="child waits out its backoff")
    assert sup.count_children().get() == {"specs": 1, "active": 0, "supervisors": 0, "workers": 1}
    with pytest.raises(Restarting):
        sup.restart_child("f").get()
    with pytest.raises(Restarting):
        sup.delete_child("f").get()
    eventually(lambda: child(sup, "f")["state"] == "running", what="restarted after the backoff")
    assert sup.count_children().get()["active"] == 1


def test_hanging_restart_loop(start_sup):
    """A child failing every restart must not make the supervisor unresponsive; it trips."""
    plan = {"fail_starts": 0}
    sup = start_sup(intensity=3, period=60, min_backoff=0.05, max_backoff=0.05, jitter=0.0,
                    children=[ChildSpec("f", FlakyStart, args=(plan,)), ChildSpec("ok", Worker)])
    ref = sup.actor_ref
    plan["fail_starts"] = 1000
    child(sup, "f")["ref"].tell("crash")
    eventually(lambda: plan["attempts"] >= 2, what="restart loop under way")
    assert ref.is_alive() and sup.count_children().get(timeout=1)["specs"] == 2, "still answers calls"
    eventually(lambda: dead(ref), what="supervisor gives up after the intensity")
    assert plan["attempts"] == 4


def test_child_adm(start_sup):
    sup = start_sup(children=specs("c1"))
    spec = ChildSpec("c1", Worker)
    with pytest.raises(AlreadyStarted):
        sup.start_child(spec).get()
    with pytest.raises(Running):
        sup.delete_child("c1").get()
    with pytest.raises(Running):
        sup.restart_child("c1").get()
    with pytest.raises(NotFound):
        sup.terminate_child("nope").get()
    with pytest.raises(NotFound):
        sup.delete_child("nope").get()
    with pytest.raises(NotFound):
        sup.restart_child("nope").get()
    sup.terminate_child("c1").get()
    assert child(sup, "c1")["state"] == "stopped"
    with pytest.raises(AlreadyPresent):
        sup.start_child(spec).get()
    ref = sup.restart_child("c1").get()
    assert ref.ask("ping") == "pong"
    sup.terminate_child("c1").get()
    sup.delete_child("c1").get()
    assert children(sup) == []
    plan = {"fail_starts": 1}
    with pytest.raises(StartFailed):
        sup.start_child(ChildSpec("f", FlakyStart, args=(plan,))).get()
    assert children(sup) == [], "a child that fails to start is not kept"


def test_tree(start_sup):
    """Nested supervisors: a sub-supervisor escalation is a child failure of its parent."""
    sub_spec = ChildSpec("sub", Supervisor, kind="supervisor",
                         kwargs={"strategy": "one_for_one", "intensity": 1, "period": 60,
                                 "children": specs("leaf1", "leaf2")})
    top = start_sup(strategy="one_for_one", intensity=1, period=60, children=[sub_spec, *specs("bystander")])
    sub = child(top, "sub")
    sub_proxy = sub["ref"].proxy()
    crash_and_wait_restart(sub_proxy, "leaf1")
    child(sub_proxy, "leaf1")["ref"].tell("crash")  # trips sub: escalates to top
    restarted = eventually(lambda: (c := child(top, "sub"))["ref"] not in (None, sub["ref"]) and c["state"] == "running" and c,
                           what="top restarted the escalated subtree")
    assert restarted["restarts"] == 1
    new_sub = restarted["ref"].proxy()
    assert [c["state"] for c in children(new_sub)] == ["running", "running"]
    snap = top.snapshot().get()
    sub_node = snap["children"][0]
    assert sub_node["id"] == "sub" and sub_node["strategy"] == "one_for_one"
    assert [n["id"] for n in sub_node["children"]] == ["leaf1", "leaf2"]
    assert sub_node["last_error"]["type"] == "escalated"
    # a second escalation inside the top's window trips the top as well
    top_ref = top.actor_ref
    bystander = child(top, "bystander")["ref"]
    leaf = child(new_sub, "leaf1")
    crash_and_wait_restart(new_sub, "leaf1")
    child(new_sub, "leaf1")["ref"].tell("crash")
    eventually(lambda: dead(top_ref), what="second subtree escalation trips the top")
    assert dead(bystander) and dead(leaf["ref"])
