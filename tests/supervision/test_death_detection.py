"""What pykka hides, the supervisor still sees (DESIGN §1 'Pykka facts')."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from supervision import ChildSpec, Fence, StartFailed, SupervisedActor, Supervisor
from supervision.errors import ActorCrashed
from tests.supervision.workers import FlakyStart, Worker
from tests.waiting import eventually


def only(sup: Any) -> dict[str, Any]:
    return sup.which_children().get(timeout=5)[0]


class SubclassIgnoresSuper(SupervisedActor):
    """Overrides every hook without calling super: detection must not depend on it."""

    def on_start(self) -> None:
        pass

    def on_stop(self) -> None:
        pass

    def on_failure(self, *exc_info: Any) -> None:
        pass

    def on_receive(self, message: Any) -> Any:
        raise ValueError(f"bad message {message!r}")


def test_on_start_failure_restarts_and_counts(start_sup):
    plan = {"fail_starts": 0}
    sup = start_sup(intensity=5, children=[ChildSpec("f", FlakyStart, args=(plan,))])
    plan["fail_starts"] = 2
    first = only(sup)
    first["ref"].tell("crash")
    c = eventually(lambda: (c := only(sup))["state"] == "running" and c["generation"] != first["generation"] and c,
                   what="started after two failed attempts")
    assert plan["attempts"] == 4
    assert c["restarts"] == 3, "the crash plus two failed restart attempts"


def test_initial_start_failure_fails_the_supervisor():
    plan = {"fail_starts": 1}
    with pytest.raises(StartFailed, match="f failed to start"):
        Supervisor.start(children=[ChildSpec("ok", Worker), ChildSpec("f", FlakyStart, args=(plan,))])
    assert not any(isinstance(r._actor, Worker) for r in pykka.ActorRegistry.get_all())  # noqa: SLF001


def test_tell_failure_detected_when_subclass_ignores_super(start_sup):
    sup = start_sup(children=[ChildSpec("s", SubclassIgnoresSuper)])
    first = only(sup)
    first["ref"].tell("x")
    c = eventually(lambda: (c := only(sup))["generation"] != first["generation"] and c)
    assert c["restarts"] == 1
    node = sup.snapshot().get()["children"][0]
    assert node["last_error"]["type"] == "ValueError" and "bad message" in node["last_error"]["message"]


def test_ask_failure_goes_to_caller_and_actor_lives(start_sup):
    sup = start_sup(children=[ChildSpec("s", SubclassIgnoresSuper)])
    ref = only(sup)["ref"]
    with pytest.raises(ValueError):
        ref.ask("x")
    assert ref.is_alive() and only(sup)["restarts"] == 0


def test_base_exception_never_reaches_stop_all(start_sup):
    sup = start_sup(children=[ChildSpec("a", Worker), ChildSpec("b", Worker)])
    b_ref = sup.which_children().get()[1]["ref"]
    a_ref = sup.which_children().get()[0]["ref"]
    a_ref.tell("system_exit")
    eventually(lambda: sup.which_children().get()[0]["generation"] > 0 and sup.which_children().get()[0]["ref"] not in (None, a_ref))
    assert b_ref.is_alive(), "a sibling must survive another actor's SystemExit"
    assert sup.actor_ref.is_alive()
    new_a = sup.which_children().get()[0]["ref"]
    with pytest.raises(ActorCrashed, match="SystemExit"):
        new_a.ask("system_exit")
    eventually(lambda: not new_a.is_alive())
    assert b_ref.is_alive()


def test_actor_that_stops_itself_is_a_normal_exit(start_sup):
    sup = start_sup(children=[ChildSpec("t", Worker, restart="transient")])
    ref = only(sup)["ref"]
    ref.tell("stop")
    eventually(lambda: only(sup)["state"] == "stopped")
    assert only(sup)["restarts"] == 0


def test_f16_hung_child_is_fenced_abandoned_and_replaced(start_sup):
    release = threading.Event()
    fence = Fence()
    sup = start_sup(fence=fence, children=[ChildSpec("h", Worker, kwargs={"release": release}, hang_timeout=0.2),
                                            ChildSpec("other", Worker)])
    hung = only(sup)
    assert fence.is_current("h", hung["generation"])
    other = sup.which_children().get()[1]["ref"]
    hung["ref"].tell("hang")
    replaced = eventually(lambda: (c := only(sup))["generation"] != hung["generation"] and c["state"] == "running" and c,
                          what="hung child replaced")
    assert not fence.is_current("h", hung["generation"]), "the hung incarnation's generation is fenced"
    assert fence.is_current("h", replaced["generation"])
    assert other.ask("ping", timeout=1) == "pong", "siblings keep serving"
    assert replaced["ref"].ask("ping", timeout=1) == "pong"
    release.set()  # the old handler returns; the fenced incarnation must stop, not carry on
    eventually(lambda: not hung["ref"].is_alive(), what="fenced incarnation stops when it wakes")
    assert sup.snapshot().get()["children"][0]["last_error"]["type"] == "hung"


def test_per_child_intensity_disables_only_that_child(start_sup):
    disabled: list[tuple[str, str]] = []
    sup = start_sup(strategy="dynamic", intensity=3, period=600, intensity_scope="child",
                    on_child_disabled=lambda cid, why: disabled.append((cid, why)))
    for cid in ("s1", "s2"):
        sup.start_child(ChildSpec(cid, Worker)).get()
    for _ in range(4):
        s1 = next(c for c in sup.which_children().get() if c["id"] == "s1")
        if s1["state"] != "running":
            break
        s1["ref"].tell("crash")
        eventually(lambda: next(c for c in sup.which_children().get() if c["id"] == "s1")["generation"] != s1["generation"]
                   or next(c for c in sup.which_children().get() if c["id"] == "s1")["state"] == "disabled")
    states = {c["id"]: c["state"] for c in sup.which_children().get()}
    assert states == {"s1": "disabled", "s2": "running"}
    assert disabled and disabled[0][0] == "s1"
    assert sup.actor_ref.is_alive(), "scope child: the supervisor does not escalate"
    ref = sup.restart_child("s1").get()  # operator enables it again: a fresh window
    assert ref.ask("ping") == "pong"


def test_dynamic_thousand_children_one_crash_others_keep_serving(start_sup):
    sup = start_sup(strategy="dynamic", intensity=3, period=600, intensity_scope="child")
    for i in range(1000):
        sup.start_child(ChildSpec(f"w{i}", Worker)).get()
    kids = sup.which_children().get()
    victim = kids[500]
    victim["ref"].tell("crash")
    answers = [k["ref"].ask("ping", timeout=2) for k in kids[:100]]
    assert answers == ["pong"] * 100
    eventually(lambda: sup.which_children().get()[500]["generation"] != victim["generation"])
    assert sup.count_children().get() == {"specs": 1000, "active": 1000, "supervisors": 0, "workers": 1000}


def test_dynamic_terminate_keeps_the_spec_visible_as_stopped(start_sup):
    sup = start_sup(strategy="dynamic", intensity_scope="child")
    sup.start_child(ChildSpec("s1", Worker)).get()
    sup.terminate_child("s1").get()
    assert [(c["id"], c["state"]) for c in sup.which_children().get()] == [("s1", "stopped")]
    assert sup.restart_child("s1").get().ask("ping") == "pong"
    sup.terminate_child("s1").get()
    sup.delete_child("s1").get()
    assert sup.which_children().get() == []
