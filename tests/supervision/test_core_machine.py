"""Hypothesis state machine over the pure core, no threads: all four strategies.

A fake world executes the core's commands (starts that succeed or fail on demand,
terminations that may overrun, a mailbox of retries delivered when the machine says) and
checks, after every step, what must always hold: a child never runs twice; what the core
calls running is exactly what runs; nothing runs after a stop or an escalation; every
child waiting for its restart has a retry on the way; starts go in start order; and the
intensity trips (escalate, or disable per child) exactly when a model window says so.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from supervision import core
from supervision.core import ChildState, SupervisorState
from supervision.errors import SupervisionError
from supervision.policy import ExitKind, ExitReason, RestartStrategy, RestartType, RestartWindow, should_restart
from supervision.spec import ChildSpec
from tests.supervision.workers import Worker

SPECS = {
    "a": ChildSpec("a", Worker),
    "b": ChildSpec("b", Worker, restart="transient"),
    "c": ChildSpec("c", Worker, restart="temporary"),
    "d": ChildSpec("d", Worker),
}
ORDER = list(SPECS)
IDS = st.sampled_from(ORDER)
INTENSITY, PERIOD = 5, 50.0
STOP_AFTER = 45  # steps before a stop may end a run (a stopped core has little left to explore)
REASONS = {
    "error": ExitReason(ExitKind.ERROR, "RuntimeError", "boom"),
    "normal": ExitReason(ExitKind.NORMAL),
    "shutdown": ExitReason(ExitKind.SHUTDOWN),
}


class CoreMachine(RuleBasedStateMachine):
    strategy = RestartStrategy.ONE_FOR_ONE
    min_backoff = 0.0  # 0: a first restart starts at once; > 0: every restart waits in the mailbox

    def __init__(self) -> None:
        super().__init__()
        per_child = self.strategy is RestartStrategy.DYNAMIC
        options = core.Options(strategy=self.strategy, intensity=INTENSITY, period=PERIOD, per_child=per_child,
                               min_backoff=self.min_backoff, max_backoff=10.0, jitter=0.0, stable_period=30.0)
        self.state = core.new_state(options, rand=lambda: 0.0)
        self.clock = 0.0
        self.live: dict[str, int] = {}  # what runs in the world: child id -> generation
        self.fail_next: set[str] = set()
        self.overrun_next: set[str] = set()
        self.mailbox: list[core.RetryDue] = []
        self.generation = 0
        self.escalations: list[str] = []
        self.reply: core.Reply | None = None
        self.order = list(ORDER)
        self.steps = 0  # start order: initial children, then each added one at the end
        self.model_global = RestartWindow(INTENSITY, PERIOD)
        self.model_child = {cid: RestartWindow(INTENSITY, PERIOD) for cid in ORDER}
        reply = self.process(core.Init(tuple(SPECS.values())))
        assert reply is not None and reply.error is None

    # --- the world ------------------------------------------------------------------

    def now(self) -> core.Now:
        return core.Now(self.clock, self.clock)

    def process(self, event: core.Event, counted: bool = False) -> core.Reply | None:
        """Feed `event`, execute the commands like the shell would, feed outcomes back.

        `counted`: the event is one restart for the intensity window (checked against the model).
        Returns the last Reply the core gave (Init and admin starts)."""
        self.reply = None
        events: list[tuple[core.Event, bool]] = [(event, counted)]
        starts: list[str] = []
        while events:
            current, counts = events.pop(0)
            before = self._trip_snapshot()
            _, commands = core.step(self.state, current, self.now())
            if counts:
                self._check_intensity(current, before)
            start_positions = [i for i, c in enumerate(commands) if isinstance(c, core.Start)]
            assert len(start_positions) <= 1 and (not start_positions or start_positions[0] == len(commands) - 1), (
                f"at most one Start per batch, last: {commands}")
            for command in commands:
                outcome = self.execute(command, starts)
                if outcome is not None:
                    events.append(outcome)
        positions = [self.order.index(cid) for cid in starts]
        assert positions == sorted(positions) and len(set(positions)) == len(positions), (
            f"starts in one pass go in start order: {starts}")
        return self.reply

    def execute(self, command: core.Command, starts: list[str]) -> tuple[core.Event, bool] | None:
        if isinstance(command, core.Start):
            cid = command.child_id
            assert cid not in self.live, f"{cid} started while an incarnation of it still runs: two copies"
            starts.append(cid)
            self.generation += 1
            counts = self.state.attempt is not None and self.state.attempt.purpose is core.Purpose.RESTART
            if cid in self.fail_next:
                self.fail_next.discard(cid)
                return core.StartFailedEvent(cid, self.generation, REASONS["error"]), counts
            self.live[cid] = self.generation
            return core.Started(cid, self.generation), False
        if isinstance(command, core.Terminate):
            overran = []
            for cid in command.child_ids:
                generation = self.live.pop(cid, None)
                if generation is not None and cid in self.overrun_next:
                    self.overrun_next.discard(cid)
                    overran.append((cid, generation))
            return core.Terminated(tuple(overran)), False
        if isinstance(command, core.Fence):
            if self.live.get(command.child_id) == command.generation:
                del self.live[command.child_id]
        elif isinstance(command, core.Schedule):
            self.mailbox.append(core.RetryDue(command.retry_id))
        elif isinstance(command, core.Escalate):
            self.escalations.append(command.reason)
        elif isinstance(command, core.Reply):
            self.reply = command
        return None

    def _trip_snapshot(self) -> tuple[SupervisorState, dict[str, ChildState]]:
        return self.state.status, {cid: c.state for cid, c in self.state.children.items()}

    def _check_intensity(self, event: core.Event, before: tuple[SupervisorState, dict[str, ChildState]]) -> None:
        """`event` counts as one restart: the core trips exactly when the model window does."""
        cid = event.child_id  # type: ignore[union-attr]
        if self.strategy is RestartStrategy.DYNAMIC:
            tripped = self.model_child[cid].add(self.clock)
            child = self.state.children.get(cid)
            assert (child is not None and child.state is ChildState.DISABLED) == tripped, (
                f"{cid} disabled exactly when its own window trips")
        else:
            tripped = self.model_global.add(self.clock)
            assert (self.state.status is SupervisorState.ESCALATED) == tripped, "escalates exactly when the window trips"

    def _lives(self) -> dict[str, tuple[ChildState, int, int]]:
        return {cid: (c.state, c.generation, c.token) for cid, c in self.state.children.items()}

    def _check_group(self, failed: str, before: dict[str, tuple[ChildState, int, int]]) -> None:
        """After `failed` died and is to be restarted: its group (every sibling after it for
        rest_for_one, all for one_for_all, including siblings waiting for their own
        restart) was taken down and replanned behind it; other siblings are untouched."""
        if not self.running() or self.state.children[failed].state is ChildState.DISABLED:
            return
        ids = list(before)
        if self.strategy is RestartStrategy.ONE_FOR_ALL:
            group = set(ids)
        elif self.strategy is RestartStrategy.REST_FOR_ONE:
            group = set(ids[ids.index(failed):])
        else:
            group = {failed}
        for cid, (state, generation, token) in before.items():
            if cid == failed or state not in (ChildState.RUNNING, ChildState.RESTARTING):
                continue
            after = self.state.children.get(cid)
            if cid not in group:
                assert after is not None and (after.state, after.generation) == (state, generation), (
                    f"{cid} is outside {failed}'s group and must be untouched")
            elif after is not None:
                assert after.generation != generation or after.token != token, (
                    f"{cid} is in {failed}'s group: taken down and restarted behind it")

    # --- rules ----------------------------------------------------------------------

    def running(self) -> bool:
        return self.state.status is SupervisorState.RUNNING

    @precondition(running)
    @rule(cid=IDS, how=st.sampled_from(sorted(REASONS)))
    def crash(self, cid: str, how: str) -> None:
        generation = self.live.pop(cid, None)
        if generation is None:
            return
        child = self.state.children[cid]
        counts = should_restart(child.spec.restart, REASONS[how])
        before = self._lives()
        self.process(core.Exited(cid, generation, REASONS[how]), counted=counts)
        if counts:
            self._check_group(cid, before)

    @precondition(running)
    @rule(cid=IDS)
    def hang(self, cid: str) -> None:
        generation = self.live.get(cid)
        if generation is not None:
            temporary = self.state.children[cid].spec.restart is RestartType.TEMPORARY
            before = self._lives()
            self.process(core.Hung(cid, generation), counted=not temporary)
            if not temporary:
                self._check_group(cid, before)
            assert self.live.get(cid) != generation, "a hung incarnation is fenced"

    @precondition(running)
    @rule(cid=IDS)
    def stale_report(self, cid: str) -> None:
        _, commands = core.step(self.state, core.Exited(cid, -1, REASONS["error"]), self.now())
        assert commands == [], "an exit of an incarnation already replaced changes nothing"

    @precondition(lambda self: self.running() and self.mailbox)
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        message = self.mailbox.pop(data.draw(st.integers(0, len(self.mailbox) - 1)))
        self.process(message, counted=False)

    @rule(seconds=st.floats(min_value=0.0, max_value=40.0))
    def advance(self, seconds: float) -> None:
        self.clock += seconds

    @rule(cid=IDS)
    def fail_next_start(self, cid: str) -> None:
        self.fail_next.add(cid)

    @rule(cid=IDS)
    def overrun_next_stop(self, cid: str) -> None:
        self.overrun_next.add(cid)

    @precondition(running)
    @rule(cid=IDS, action=st.sampled_from(["terminate", "restart", "delete", "start"]))
    def admin(self, cid: str, action: str) -> None:
        event: core.Event = {
            "terminate": core.TerminateChild(cid), "restart": core.RestartChild(cid),
            "delete": core.DeleteChild(cid), "start": core.AddChild(SPECS[cid]),
        }[action]
        try:
            reply = self.process(event)
        except SupervisionError:
            return
        if action == "restart" and reply is not None and reply.error is None:
            self.model_child[cid] = RestartWindow(INTENSITY, PERIOD)
        if action == "start" and reply is not None:
            self.order.remove(cid)
            self.order.append(cid)
            self.model_child[cid] = RestartWindow(INTENSITY, PERIOD)

    @precondition(lambda self: self.running() and self.steps > STOP_AFTER)
    @rule()
    def stop(self) -> None:
        self.process(core.Stop())
        assert self.live == {}, "children die with their supervisor"

    # --- invariants -----------------------------------------------------------------

    @invariant()
    def what_runs_is_what_the_core_says(self) -> None:
        self.steps += 1
        running = {cid: c.generation for cid, c in self.state.children.items() if c.state is ChildState.RUNNING}
        assert running == self.live
        assert not any(c.state is ChildState.STARTING for c in self.state.children.values())
        assert self.state.attempt is None

    @invariant()
    def nothing_runs_after_the_end(self) -> None:
        if self.state.status in (SupervisorState.ESCALATED, SupervisorState.STOPPED):
            assert self.live == {}
            assert not any(c.state is ChildState.RESTARTING for c in self.state.children.values())
        assert (self.state.status is SupervisorState.ESCALATED) == bool(self.escalations)

    @invariant()
    def every_restarting_child_has_a_retry_on_the_way(self) -> None:
        if not self.running():
            return
        planned = {(cid, token) for entry in self.state.retries.values() for cid, token in entry}
        for cid, child in self.state.children.items():
            if child.state is ChildState.RESTARTING:
                assert (cid, child.token) in planned, f"{cid} is restarting with no retry planned"
        delivered = {message.retry_id for message in self.mailbox}
        assert set(self.state.retries) <= delivered, "every planned retry is in the mailbox"

    @invariant()
    def children_keep_start_order_and_temporaries_never_wait(self) -> None:
        ids = list(self.state.children)
        assert ids == [cid for cid in self.order if cid in ids]
        temporary = self.state.children.get("c")
        assert temporary is None or temporary.state is not ChildState.RESTARTING


def _machine(strategy: RestartStrategy, min_backoff: float) -> Any:
    name = f"CoreMachine_{strategy.value}_{'backoff' if min_backoff else 'at_once'}"
    machine = type(name, (CoreMachine,), {"strategy": strategy, "min_backoff": min_backoff})
    case = machine.TestCase
    case.settings = settings(max_examples=40, stateful_step_count=60, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])
    return case


TestOneForOne = _machine(RestartStrategy.ONE_FOR_ONE, 0.0)
TestOneForAll = _machine(RestartStrategy.ONE_FOR_ALL, 0.0)
TestRestForOne = _machine(RestartStrategy.REST_FOR_ONE, 0.0)
TestDynamic = _machine(RestartStrategy.DYNAMIC, 0.0)
TestOneForOneWithBackoff = _machine(RestartStrategy.ONE_FOR_ONE, 1.0)
TestOneForAllWithBackoff = _machine(RestartStrategy.ONE_FOR_ALL, 1.0)
TestRestForOneWithBackoff = _machine(RestartStrategy.REST_FOR_ONE, 1.0)
TestDynamicWithBackoff = _machine(RestartStrategy.DYNAMIC, 1.0)
