"""Hypothesis state machine, end to end with real threads: crashes, admin calls and time
steps interleaved on a one_for_one supervisor. (The pure core is explored for all four
strategies, without threads, in test_core_machine.py.)

Invariants: children stay in spec order; restart counts match the model; the supervisor
escalates exactly when the model's window is exceeded, never otherwise.
"""

from __future__ import annotations

from typing import Any

from hypothesis import settings, strategies as st, HealthCheck
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from supervision import ChildSpec, Supervisor
from supervision.policy import RestartWindow
from tests.fakes import FakeClock
from tests.supervision.workers import Worker
from tests.waiting import eventually

IDS = ["a", "b", "c"]
INTENSITY, PERIOD = 3, 100.0


class SupervisorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.ref = Supervisor.start(strategy="one_for_one", intensity=INTENSITY, period=PERIOD, clock=self.clock,
                                    children=[ChildSpec(i, Worker) for i in IDS])
        self.sup = self.ref.proxy()
        self.window = RestartWindow(INTENSITY, PERIOD)
        self.restarts = {i: 0 for i in IDS}
        self.running = {i: True for i in IDS}
        self.escalated = False

    def children(self) -> dict[str, dict[str, Any]]:
        return {c["id"]: c for c in self.sup.which_children().get(timeout=5)}

    @precondition(lambda self: not self.escalated)
    @rule(cid=st.sampled_from(IDS))
    def crash(self, cid: str) -> None:
        if not self.running[cid]:
            return
        before = self.children()[cid]
        before["ref"].tell("crash")
        if self.window.add(self.clock()):
            self.escalated = True
            eventually(lambda: not self.ref.is_alive(), what="escalation")
            return
        self.restarts[cid] += 1
        eventually(lambda: (c := self.children()[cid])["generation"] != before["generation"] and c["state"] == "running")

    @rule(seconds=st.floats(min_value=0, max_value=60))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: not self.escalated)
    @rule(cid=st.sampled_from(IDS))
    def terminate(self, cid: str) -> None:
        self.sup.terminate_child(cid).get(timeout=5)
        self.running[cid] = False

    @precondition(lambda self: not self.escalated)
    @rule(cid=st.sampled_from(IDS))
    def restart(self, cid: str) -> None:
        if self.running[cid]:
            return
        self.sup.restart_child(cid).get(timeout=5)
        self.running[cid] = True

    @invariant()
    def tree_matches_model(self) -> None:
        if self.escalated:
            assert not self.ref.is_alive()
            return
        kids = self.sup.which_children().get(timeout=5)
        assert [c["id"] for c in kids] == IDS
        for c in kids:
            assert c["state"] == ("running" if self.running[c["id"]] else "stopped")
            assert c["restarts"] == self.restarts[c["id"]]

    def teardown(self) -> None:
        if self.ref.is_alive():
            self.ref.stop(timeout=5)


TestSupervisorStateMachine = SupervisorMachine.TestCase
TestSupervisorStateMachine.settings = settings(max_examples=25, stateful_step_count=15, deadline=None,
                                               suppress_health_check=[HealthCheck.too_slow])
