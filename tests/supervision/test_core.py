"""The pure core, case by case (the state machine in test_core_machine.py explores the rest)."""

from __future__ import annotations

from supervision import core
from supervision.core import ChildState, SupervisorState
from supervision.policy import ExitKind, ExitReason, RestartStrategy
from supervision.spec import ChildSpec
from tests.supervision.workers import Worker

CRASH = ExitReason(ExitKind.ERROR, "RuntimeError", "boom")


class World:
    """Runs the core like the shell does: every start succeeds unless told otherwise."""

    def __init__(self, strategy: str = "one_for_one", ids: tuple[str, ...] = ("a", "b", "c"), *,
                 intensity: int = 10, per_child: bool = False, min_backoff: float = 0.0,
                 specs: tuple[ChildSpec, ...] = ()) -> None:
        options = core.Options(RestartStrategy(strategy), intensity, 100.0, per_child, min_backoff, 60.0, 0.0, 30.0)
        self.state = core.new_state(options, rand=lambda: 0.0)
        self.clock = 0.0
        self.generation = 0
        self.fail: set[str] = set()
        self.log: list[str] = []  # "start:a", "stop:b", "fail:a", "schedule:1.0", "escalate", "disabled:a"
        self.mailbox: list[core.RetryDue] = []
        self.feed(core.Init(specs or tuple(ChildSpec(i, Worker) for i in ids)))

    def feed(self, event: core.Event) -> None:
        events = [event]
        while events:
            _, commands = core.step(self.state, events.pop(0), core.Now(self.clock, self.clock))
            for command in commands:
                if isinstance(command, core.Start):
                    self.generation += 1
                    if command.child_id in self.fail:
                        self.fail.discard(command.child_id)
                        self.log.append(f"fail:{command.child_id}")
                        events.append(core.StartFailedEvent(command.child_id, self.generation, CRASH))
                    else:
                        self.log.append(f"start:{command.child_id}")
                        events.append(core.Started(command.child_id, self.generation))
                elif isinstance(command, core.Terminate):
                    self.log.extend(f"stop:{cid}" for cid in command.child_ids)
                    events.append(core.Terminated(()))
                elif isinstance(command, core.Schedule):
                    self.log.append(f"schedule:{command.delay:g}")
                    self.mailbox.append(core.RetryDue(command.retry_id))
                elif isinstance(command, core.Escalate):
                    self.log.append("escalate")
                elif isinstance(command, core.NotifyDisabled):
                    self.log.append(f"disabled:{command.child_id}")

    def crash(self, cid: str) -> list[str]:
        mark = len(self.log)
        self.feed(core.Exited(cid, self.state.children[cid].generation, CRASH))
        return self.log[mark:]

    def deliver(self) -> list[str]:
        mark = len(self.log)
        self.feed(self.mailbox.pop(0))
        return self.log[mark:]

    def states(self) -> dict[str, str]:
        return {cid: c.state.value for cid, c in self.state.children.items()}


def test_backoff_doubles_then_resets_after_a_stable_run():
    world = World(ids=("x",), min_backoff=1.0)
    assert world.crash("x") == ["schedule:1"]
    assert world.deliver() == ["start:x"]
    assert world.crash("x") == ["schedule:2"], "a quick second crash doubles the backoff"
    world.deliver()
    world.clock += 30.0  # ran for the stable period
    assert world.crash("x") == ["schedule:1"], "a stable run resets the backoff"


def test_row03_core_failed_attempt_is_retried_through_the_mailbox():
    world = World(ids=("x",))
    world.fail.add("x")
    assert world.crash("x") == ["fail:x", "schedule:0"], "the retry is a message, not a recursive start"
    assert world.states() == {"x": "restarting"}
    assert world.deliver() == ["start:x"]
    assert world.state.children["x"].restarts == 2


def test_row06_core_rest_for_one_replans_a_pending_sibling_behind_the_failed_one():
    world = World("rest_for_one", min_backoff=1.0)
    world.crash("c")
    assert world.states()["c"] == "restarting" and len(world.mailbox) == 1
    assert world.crash("a") == ["stop:b", "schedule:1"]
    assert world.deliver() == [], "c's own retry was superseded"
    assert world.deliver() == ["start:a", "start:b", "start:c"]


def test_row09_core_one_for_all_retries_the_whole_group():
    world = World("one_for_all")
    world.fail.add("b")
    assert world.crash("a") == ["stop:c", "stop:b", "start:a", "fail:b", "stop:a", "schedule:0"]
    assert world.deliver() == ["start:a", "start:b", "start:c"]


def test_row10_core_escalation_leaves_the_tripped_child_failed():
    world = World(intensity=0)
    assert world.crash("b") == ["stop:c", "stop:a", "escalate"]
    assert world.state.status is SupervisorState.ESCALATED
    assert world.states() == {"a": "stopped", "b": "failed", "c": "stopped"}


def test_per_child_intensity_disables_instead_of_escalating():
    world = World("dynamic", intensity=0, per_child=True)
    assert world.crash("b") == ["disabled:b"]
    assert world.state.status is SupervisorState.RUNNING
    assert world.states() == {"a": "running", "b": "disabled", "c": "running"}


def test_temporary_sibling_is_forgotten_when_its_group_restarts():
    world = World("one_for_all", specs=(ChildSpec("a", Worker), ChildSpec("t", Worker, restart="temporary")))
    assert world.crash("a") == ["stop:t", "start:a"]
    assert world.states() == {"a": "running"}


def test_stop_cancels_pending_restarts_and_stops_in_reverse_order():
    world = World(min_backoff=1.0)
    world.crash("b")
    mark = len(world.log)
    world.feed(core.Stop())
    assert world.log[mark:] == ["stop:c", "stop:a"]
    assert world.states() == {"a": "stopped", "b": "stopped", "c": "stopped"}
    assert world.deliver() == [], "a retry arriving after the stop starts nothing"
    assert all(c.state is not ChildState.RUNNING for c in world.state.children.values())


def test_startup_mass_stop_that_overruns_logs_one_line_naming_every_killed_child():
    ids = tuple(f"s{i}" for i in range(1000))
    world = World(strategy="dynamic", ids=ids)
    world.feed(core.Stop())
    overran = tuple((cid, world.state.children[cid].generation) for cid in ids[::2])
    _, commands = core.step(world.state, core.Terminated(overran, stopped=len(ids)), core.Now(1.0, 1.0))
    logs = [c for c in commands if isinstance(c, core.Log)]
    assert len(logs) == 1, f"500 children killed at a mass stop: one summary line, not {len(logs)}"
    assert logs[0].event == "children_killed" and logs[0].level == "ERROR"
    assert logs[0].details["stopped"] == 1000 and logs[0].details["killed"] == 500
    assert logs[0].details["children"] == [f"{cid}@{gen}" for cid, gen in overran], "no killed child goes unnamed"
    assert [(c.child_id, c.generation) for c in commands if isinstance(c, core.Fence)] == list(overran)
    assert {world.state.children[cid].state for cid, _ in overran} == {ChildState.KILLED}

    _, single = core.step(world.state, core.Terminated((overran[0],), stopped=1), core.Now(2.0, 2.0))
    assert [(c.event, c.details["child"]) for c in single if isinstance(c, core.Log)] == [("child_killed", "s0")]
