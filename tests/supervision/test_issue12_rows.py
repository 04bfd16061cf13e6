"""Issue 12, rows 1–14: where the supervisor deviated from OTP's semantics and DESIGN §1.

Each test is named after its row and first failed on the code the issue describes.
"""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from supervision import ChildSpec, StartFailed, SupervisedActor, Supervisor
from supervision.actor import actor_of
from supervision.incarnation import Incarnation
from supervision.watchdog import HangWatchdog
from tests.fakes import FakeClock
from tests.supervision.workers import ExitInInit, FlakyStart, Logged, Worker
from tests.waiting import eventually


def children(sup: Any) -> list[dict[str, Any]]:
    return sup.which_children().get(timeout=10)


def child(sup: Any, child_id: str) -> dict[str, Any]:
    return next(c for c in children(sup) if c["id"] == child_id)


def dead(ref: pykka.ActorRef[Any]) -> bool:
    return not ref.is_alive()


def watchdog_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"hang-watchdog:{name}" and t.is_alive()]


class FaultySupervisor(Supervisor):
    """A supervisor whose own handler has a bug: 'boom' raises, 'exit' raises SystemExit."""

    def on_receive(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError("bug in the supervisor's own handler")
        if message == "exit":
            raise SystemExit("BaseException in the supervisor's own handler")
        return super().on_receive(message)


# --- row 1 -------------------------------------------------------------------------


@pytest.mark.parametrize("message", ["boom", "exit"])
def test_row01_handler_exception_stops_children(message):
    ref = FaultySupervisor.start(name="row01", children=[ChildSpec("w1", Worker), ChildSpec("w2", Worker)])
    kids = [c["ref"] for c in children(ref.proxy())]
    ref.tell(message)
    eventually(lambda: dead(ref), what="supervisor died of its handler's error")
    eventually(lambda: all(dead(k) for k in kids), timeout=10,
               what="children die with their supervisor, whatever it died of")


def test_row01_nested_supervisor_crash_never_runs_two_copies(start_sup):
    sub = ChildSpec("sub", FaultySupervisor, kind="supervisor", kwargs={"children": [ChildSpec("leaf", Worker)]})
    top = start_sup(name="row01-top", children=[sub])
    old_sub = child(top, "sub")["ref"]
    old_leaf = child(old_sub.proxy(), "leaf")["ref"]
    old_sub.tell("boom")
    new_sub = eventually(lambda: (c := child(top, "sub"))["state"] == "running" and c["ref"] is not old_sub
                         and c["ref"], timeout=10, what="parent restarted the crashed sub-supervisor")
    new_leaf = child(new_sub.proxy(), "leaf")["ref"]
    assert new_leaf is not old_leaf
    assert dead(old_leaf), "the old leaf died with its supervisor before the parent restarted it: never two copies"


def test_row01_callback_exception_is_logged_not_fatal(start_sup):
    def broken_callback(child_id: str, reason: str) -> None:
        raise RuntimeError("bug in on_child_disabled")

    sup = start_sup(name="row01-cb", strategy="dynamic", intensity=0, intensity_scope="child",
                    on_child_disabled=broken_callback, children=[ChildSpec("w1", Worker), ChildSpec("w2", Worker)])
    w2 = child(sup, "w2")["ref"]
    child(sup, "w1")["ref"].tell("crash")
    eventually(lambda: child(sup, "w1")["state"] == "disabled", what="w1 disabled")
    assert sup.actor_ref.is_alive(), "a user callback's exception is logged, never fatal to the supervisor"
    assert w2.ask("ping", timeout=5) == "pong"


# --- row 2 -------------------------------------------------------------------------


def test_row02_base_exception_in_child_init_is_a_start_failure_at_initial_start():
    log: list[str] = []
    with pytest.raises(StartFailed):
        Supervisor.start(name="row02", children=[ChildSpec("first", Logged, args=("first", log)),
                                                 ChildSpec("bad", ExitInInit, args=({"fail_inits": 1},))])
    assert log == ["first"]
    assert not pykka.ActorRegistry.get_by_class(Logged), (
        "the sibling started before the failed one was stopped: a failed start leaves no child behind")


def test_row02_base_exception_in_child_init_is_counted_and_retried(start_sup):
    plan = {"fail_inits": 0}
    sup = start_sup(name="row02-restart", intensity=5, children=[ChildSpec("x", ExitInInit, args=(plan,))])
    first = child(sup, "x")
    plan["fail_inits"] = 1
    first["ref"].tell("crash")
    now = eventually(lambda: (c := child(sup, "x"))["state"] == "running" and c["generation"] != first["generation"]
                     and c, timeout=10, what="restarted after one SystemExit from __init__")
    assert sup.actor_ref.is_alive(), "a BaseException while starting a child is a start failure, not the supervisor's"
    assert now["restarts"] == 2, "the crash plus the failed attempt"


# --- row 3 -------------------------------------------------------------------------


def test_row03_failed_restart_attempts_go_through_the_mailbox(start_sup):
    plan = {"fail_starts": 0}
    sup = start_sup(name="row03", intensity=100_000, children=[ChildSpec("f", FlakyStart, args=(plan,))])
    ref = sup.actor_ref
    plan["fail_starts"] = 10**9
    child(sup, "f")["ref"].tell("crash")
    eventually(lambda: plan.get("attempts", 0) > 700 or dead(ref), timeout=60, what="many failed attempts")
    assert ref.is_alive(), "700 zero-backoff retries must not recurse (RecursionError) and kill the supervisor"
    assert sup.count_children().get(timeout=10)["specs"] == 1, "calls get in between the retries"
    assert ref.stop(timeout=10), "a stop gets in between the retries too"


# --- row 4 -------------------------------------------------------------------------


def test_row04_fenced_incarnation_mailbox_is_closed(start_sup):
    release = threading.Event()
    sup = start_sup(name="row04", children=[ChildSpec("h", Worker, kwargs={"release": release}, hang_timeout=0.3)])
    try:
        old = child(sup, "h")
        in_flight = old["ref"].ask("hang", block=False)
        queued = old["ref"].ask("ping", block=False)
        eventually(lambda: (c := child(sup, "h"))["state"] == "running" and c["generation"] != old["generation"],
                   timeout=10, what="hung child fenced and replaced")
        assert pykka.ActorRegistry.get_by_urn(old["ref"].actor_urn) is None, "a fenced incarnation is unregistered"
        with pytest.raises(pykka.ActorDeadError):
            old["ref"].tell("ping")
        with pytest.raises(pykka.ActorDeadError):
            queued.get(timeout=5)
        with pytest.raises(pykka.ActorDeadError):
            old["ref"].ask("ping", timeout=5)
        with pytest.raises(pykka.ActorDeadError):
            in_flight.get(timeout=5)
    finally:
        release.set()
    eventually(lambda: dead(old["ref"]), what="the hung handler returned")
    with pytest.raises(pykka.ActorDeadError):
        in_flight.get(timeout=1)  # its late reply was dropped


class CleansUp(Worker):
    stops: list[tuple[int, bool]] = []

    def on_stop(self) -> None:
        CleansUp.stops.append((self.generation, self.fenced))


def test_row04_fenced_incarnation_releases_its_resources_once_its_handler_returns(start_sup):
    CleansUp.stops.clear()
    release = threading.Event()
    sup = start_sup(name="row04-cleanup", children=[ChildSpec("h", CleansUp, kwargs={"release": release},
                                                              hang_timeout=0.3)])
    old = child(sup, "h")
    old["ref"].tell("hang")
    eventually(lambda: child(sup, "h")["generation"] != old["generation"], timeout=10, what="replaced")
    assert CleansUp.stops == [], "on_stop waits for the hung handler (threads cannot be interrupted)"
    release.set()
    eventually(lambda: CleansUp.stops, what="on_stop ran once the handler returned")
    assert CleansUp.stops == [(old["generation"], True)], "exactly once, seeing itself fenced"


# --- row 5 -------------------------------------------------------------------------


def test_row05_supervisor_children_default_to_unbounded_shutdown(start_sup):
    assert ChildSpec("sub", Supervisor, kind="supervisor").shutdown is None
    assert ChildSpec("w", Worker).shutdown == 5.0
    assert ChildSpec("sub", Supervisor, kind="supervisor", shutdown=2.0).shutdown == 2.0
    release = threading.Event()
    leaf = ChildSpec("slow-leaf", Worker, kwargs={"release": release, "stop_delay": 5.5}, shutdown=30.0)
    top = start_sup(name="row05", children=[ChildSpec("sub", Supervisor, kind="supervisor",
                                                      kwargs={"children": [leaf]})])
    leaf_ref = child(child(top, "sub")["ref"].proxy(), "slow-leaf")["ref"]
    top.terminate_child("sub").get(timeout=30)
    assert dead(leaf_ref), "terminating a sub-supervisor waits until its children have stopped"
    assert child(top, "sub")["state"] == "stopped", "not 'killed' at a worker's 5 s"


# --- row 6 -------------------------------------------------------------------------


def test_row06_rest_for_one_restarts_pending_siblings_in_order(start_sup):
    log: list[str] = []
    fails = {"b": 0}
    knob = {"rand": 0.0}
    sup = start_sup(name="row06", strategy="rest_for_one", intensity=1000, min_backoff=0.01, max_backoff=60.0,
                    jitter=1000.0, rand=lambda: knob["rand"],
                    children=[ChildSpec("a", Logged, args=("a", log, fails)),
                              ChildSpec("b", Logged, args=("b", log, fails))])
    fails["b"] = 10**6
    child(sup, "b")["ref"].tell("crash")
    eventually(lambda: log.count("b") >= 5, timeout=10, what="b failing its restarts with short backoffs")
    knob["rand"] = 0.2  # the next delay computed (a's) is about 2 s; b's pending one is far shorter
    fails["b"] = 0
    mark = len(log)
    child(sup, "a")["ref"].tell("crash")
    eventually(lambda: child(sup, "a")["state"] == "running" and child(sup, "b")["state"] == "running",
               timeout=20, what="a and b restarted")
    after = [name for name in log[mark:]]
    assert after == ["a", "b"], f"the pending sibling restarts after the failed one, in start order: {after}"


# --- row 7 -------------------------------------------------------------------------


def test_row07_failed_supervisor_start_leaks_no_thread():
    for _ in range(3):
        with pytest.raises(StartFailed):
            Supervisor.start(name="row07", children=[ChildSpec("w", Worker, hang_timeout=5.0),
                                                     ChildSpec("bad", FlakyStart, args=({"fail_starts": 1},))])
    eventually(lambda: not watchdog_threads("row07"), timeout=10,
               what="a supervisor whose start failed leaves no watchdog thread behind")


# --- row 8 -------------------------------------------------------------------------


class SlowDetails(Worker):
    gate = threading.Event()

    def status_details(self) -> dict[str, Any]:
        SlowDetails.gate.wait(10.0)
        return {"slow": True}


def test_row08_status_details_runs_outside_the_lock(start_sup):
    SlowDetails.gate.clear()
    sup = start_sup(name="row08", children=[ChildSpec("slow", SlowDetails), ChildSpec("w", Worker)])
    actor = actor_of(sup.actor_ref)
    reader = threading.Thread(target=actor.status_node, daemon=True)
    reader.start()
    try:
        old = child(sup, "w")
        old["ref"].tell("crash")
        eventually(lambda: (c := child(sup, "w"))["state"] == "running" and c["generation"] != old["generation"],
                   timeout=5, what="a sibling restarts while status_details (user code) is still running")
        assert reader.is_alive(), "status_details was still blocked: the restart did not wait for it"
    finally:
        SlowDetails.gate.set()
        reader.join(10)


class BrokenDetails(Worker):
    def status_details(self) -> dict[str, Any]:
        raise SystemExit("bug in status_details")


def test_row08_status_details_exception_is_logged_not_fatal(start_sup):
    sup = start_sup(name="row08-broken", children=[ChildSpec("broken", BrokenDetails), ChildSpec("w", Worker)])
    node = actor_of(sup.actor_ref).status_node()
    assert node["children"][0]["details"] == {"error": "SystemExit: bug in status_details"}
    assert sup.actor_ref.is_alive() and child(sup, "broken")["ref"].ask("ping", timeout=5) == "pong"


# --- row 9 -------------------------------------------------------------------------


def test_row09_one_for_all_restarts_whole_group_after_sibling_start_failure(start_sup):
    log: list[str] = []
    fails: dict[str, int] = {}
    sup = start_sup(name="row09", strategy="one_for_all", intensity=10,
                    children=[ChildSpec(i, Logged, args=(i, log, fails)) for i in ("a", "b", "c")])
    fails["b"] = 1
    mark = len(log)
    child(sup, "a")["ref"].tell("crash")
    eventually(lambda: all(c["state"] == "running" for c in children(sup)) and len(log) >= mark + 5,
               timeout=10, what="group restarted")
    assert log[mark:] == ["a", "b", "a", "b", "c"], "a failed sibling start restarts the whole group again"


# --- row 10 ------------------------------------------------------------------------


def test_row10_escalated_child_is_not_left_running():
    ref = Supervisor.start(name="row10", intensity=0, children=[ChildSpec("a", Worker), ChildSpec("b", Worker)])
    actor = actor_of(ref)
    child(ref.proxy(), "a")["ref"].tell("crash")
    eventually(lambda: dead(ref), what="escalated")
    node = actor.status_node()
    states = {n["id"]: n["state"] for n in node["children"]}
    assert node["state"] == "escalated"
    assert states == {"a": "failed", "b": "stopped"}, "the child that tripped is not left 'running'"


# --- row 11 ------------------------------------------------------------------------


def test_row11_top_level_on_escalate_raising_still_stops_cleanly():
    def broken(reason: str) -> None:
        raise RuntimeError("bug in on_escalate")

    ref = Supervisor.start(name="row11", intensity=0, on_escalate=broken,
                           children=[ChildSpec("a", Worker, hang_timeout=5.0), ChildSpec("b", Worker)])
    kids = [c["ref"] for c in children(ref.proxy())]
    assert watchdog_threads("row11")
    kids[0].tell("crash")
    eventually(lambda: dead(ref), what="escalated")
    eventually(lambda: all(dead(k) for k in kids), what="children stopped")
    eventually(lambda: not watchdog_threads("row11"), what="the watchdog stops with its supervisor")


# --- row 12 ------------------------------------------------------------------------


def test_row12_watchdog_keeps_one_deadline_per_child():
    clock = FakeClock()
    slow, fast = Incarnation("slow", 1, clock=clock), Incarnation("fast", 2, clock=clock)
    reported: list[str] = []
    watchdog = HangWatchdog(watched=lambda: [(slow, 60.0), (fast, 0.1)], report=lambda i: reported.append(i.child_id),
                            clock=clock, name="row12")
    assert watchdog.next_wait() <= 0.1, "an idle 0.1 s child is looked at within its own timeout"
    fast.busy_since = clock()
    clock.advance(0.06)
    assert watchdog.next_wait() == pytest.approx(0.04), "the next look is at the fast child's own deadline"
    clock.advance(0.05)
    watchdog.check_once()
    assert reported == ["fast"]


# --- row 13 ------------------------------------------------------------------------


class ExitInOnStart(SupervisedActor):
    gate = threading.Event()

    def on_start(self) -> None:
        ExitInOnStart.gate.wait(10.0)
        raise SystemExit("BaseException in on_start")


def test_row13_base_exception_in_on_start_fails_queued_asks():
    ExitInOnStart.gate.clear()
    ref = ExitInOnStart.start()
    queued = ref.ask("ping", block=False)
    ExitInOnStart.gate.set()
    with pytest.raises(pykka.ActorDeadError):
        queued.get(timeout=5)


# --- row 14 ------------------------------------------------------------------------


class SteadyWorker(SupervisedActor):
    def on_receive(self, message: Any) -> Any:
        pause = threading.Event()
        for _ in range(12):
            pause.wait(0.1)
            self.progress()
        return "done"


def test_row14_progress_inside_a_long_handler_is_not_a_hang(start_sup):
    sup = start_sup(name="row14", children=[ChildSpec("s", SteadyWorker, hang_timeout=0.4)])
    before = child(sup, "s")
    assert before["ref"].ask("work", timeout=10) == "done"
    after = child(sup, "s")
    assert after["generation"] == before["generation"] and after["restarts"] == 0, "steady progress is not a hang"
