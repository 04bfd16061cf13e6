"""The supervisor's pure core: `step(state, event, now) -> (state, commands)`.

Every decision lives here: which children a failure takes down and restarts (in start
order, including siblings waiting for their own restart), whole-group retry for
one_for_all, temporary-child removal, disable versus escalate, backoff and its reset
after a stable run, and each child's state. No threads, no clocks, no actors: the
caller passes `now` and executes the returned commands (start, terminate, fence,
schedule, report), feeding each command's outcome back as an event. `step` updates
`state` in place and returns it (1,000 children are not copied on every crash); it
raises the admin errors (`NotFound`, `Running`, ...) before changing anything.

Starts are one at a time: a batch of commands holds at most one `Start`, always last,
and the next member of a group is started only once the previous one's outcome is in.
A failed restart attempt is retried through `Schedule` (the supervisor's mailbox, OTP's
`try_again_restart`), never by recursion.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Union

from supervision.errors import AlreadyPresent, AlreadyStarted, NotFound, Restarting, Running, StartFailed
from supervision.policy import (
    ExitKind,
    ExitReason,
    RestartStrategy,
    RestartType,
    RestartWindow,
    backoff_delay,
    plan_restart,
    should_restart,
)
from supervision.spec import ChildSpec


class ChildState(str, Enum):
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"  # waiting for its (re)start: backoff, or later in its group
    DISABLED = "disabled"  # per-child intensity tripped; only an operator restarts it
    STOPPED = "stopped"
    KILLED = "killed"  # overran its shutdown timeout: fenced
    FAILED = "failed"


class SupervisorState(str, Enum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"  # its initial children could not be started
    ESCALATED = "escalated"


LIVE = frozenset({ChildState.STARTING, ChildState.RUNNING})


@dataclass(frozen=True)
class Now:
    mono: float  # for windows, backoff and stable periods
    wall: float  # for what operators read (last_exit_at, started_at)


@dataclass(frozen=True)
class Options:
    strategy: RestartStrategy
    intensity: int
    period: float
    per_child: bool  # intensity_scope "child": a tripped child is disabled, not escalated
    min_backoff: float
    max_backoff: float
    jitter: float
    stable_period: float


@dataclass
class Child:
    spec: ChildSpec
    window: RestartWindow | None
    state: ChildState = ChildState.STOPPED
    generation: int = 0
    restarts: int = 0
    consecutive: int = 0  # restarts since the last stable run: the backoff exponent
    token: int = 0  # bumped whenever a planned restart is superseded or cancelled
    running_since: float | None = None
    started_at: float | None = None
    last_exit_at: float | None = None
    last_error: dict[str, object] | None = None


class Purpose(str, Enum):
    INIT = "init"  # the supervisor's initial children: any failure fails the supervisor
    ADD = "add"  # start_child: a child that cannot start is not kept
    ADMIN = "admin"  # restart_child
    RESTART = "restart"  # after a failure: failures count and are retried


@dataclass
class Attempt:
    """One pass over a group, starting its members one at a time in start order."""

    purpose: Purpose
    members: tuple[str, ...]
    remaining: deque[str]
    started: list[str] = field(default_factory=list)


@dataclass
class CoreState:
    options: Options
    rand: Callable[[], float]
    window: RestartWindow
    children: dict[str, Child] = field(default_factory=dict)  # in start order
    status: SupervisorState = SupervisorState.STARTING
    attempt: Attempt | None = None
    retries: dict[int, tuple[tuple[str, int], ...]] = field(default_factory=dict)  # id -> (child, token)
    next_retry: int = 0


def new_state(options: Options, rand: Callable[[], float]) -> CoreState:
    return CoreState(options=options, rand=rand, window=RestartWindow(options.intensity, options.period))


# --- events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Init:
    specs: tuple[ChildSpec, ...]


@dataclass(frozen=True)
class AddChild:
    spec: ChildSpec


@dataclass(frozen=True)
class RestartChild:
    child_id: str


@dataclass(frozen=True)
class TerminateChild:
    child_id: str


@dataclass(frozen=True)
class DeleteChild:
    child_id: str


@dataclass(frozen=True)
class Started:
    child_id: str
    generation: int


@dataclass(frozen=True)
class StartFailedEvent:
    child_id: str
    generation: int
    reason: ExitReason


@dataclass(frozen=True)
class Exited:
    child_id: str
    generation: int
    reason: ExitReason


@dataclass(frozen=True)
class Hung:
    child_id: str
    generation: int


@dataclass(frozen=True)
class Terminated:
    overran: tuple[tuple[str, int], ...]  # (child, generation) that did not stop in time
    stopped: int = 0  # how many were asked to stop, overran included


@dataclass(frozen=True)
class RetryDue:
    retry_id: int


@dataclass(frozen=True)
class Stop:
    """The supervisor is ending, whatever the reason: every child goes with it."""


Event = Union[
    Init, AddChild, RestartChild, TerminateChild, DeleteChild, Started, StartFailedEvent, Exited, Hung,
    Terminated, RetryDue, Stop,
]


# --- commands -------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Start one incarnation and wait for its on_start; answer Started or StartFailedEvent."""

    child_id: str


@dataclass(frozen=True)
class Terminate:
    """Stop these children (already in stop order) and wait; answer Terminated."""

    child_ids: tuple[str, ...]
    parallel: bool


@dataclass(frozen=True)
class Fence:
    child_id: str
    generation: int


@dataclass(frozen=True)
class Schedule:
    """Deliver RetryDue(retry_id) through the mailbox after `delay` seconds (0: at once)."""

    delay: float
    retry_id: int


@dataclass(frozen=True)
class Log:
    event: str
    level: str
    details: dict[str, object]
    action: str = ""


@dataclass(frozen=True)
class NotifyDisabled:
    child_id: str
    reason: str


@dataclass(frozen=True)
class Escalate:
    reason: str


@dataclass(frozen=True)
class Reply:
    """The outcome of Init or an admin start: None, or the error to raise to the caller."""

    error: StartFailed | None = None


Command = Union[Start, Terminate, Fence, Schedule, Log, NotifyDisabled, Escalate, Reply]


# --- step -----------------------------------------------------------------------------


def step(state: CoreState, event: Event, now: Now) -> tuple[CoreState, list[Command]]:
    out: list[Command] = []
    _HANDLERS[type(event)](state, event, now, out)
    return state, out


def _init(state: CoreState, event: Init, now: Now, out: list[Command]) -> None:
    for spec in event.specs:
        _add(state, spec)
    _begin(state, Purpose.INIT, [spec.id for spec in event.specs], out)


def _add_child(state: CoreState, event: AddChild, now: Now, out: list[Command]) -> None:
    existing = state.children.get(event.spec.id)
    if existing is not None:
        if existing.state in LIVE:
            raise AlreadyStarted(f"child {event.spec.id} is already started")
        raise AlreadyPresent(f"child {event.spec.id} is already present (state {existing.state.value})")
    _add(state, event.spec)
    _begin(state, Purpose.ADD, [event.spec.id], out)


def _restart_child(state: CoreState, event: RestartChild, now: Now, out: list[Command]) -> None:
    child = _idle(state, event.child_id)
    if child.window is not None:
        child.window.reset()  # an operator re-enabling a disabled child starts a fresh window
    child.consecutive = 0
    _begin(state, Purpose.ADMIN, [event.child_id], out)


def _terminate_child(state: CoreState, event: TerminateChild, now: Now, out: list[Command]) -> None:
    child = _get(state, event.child_id)
    if child.state in LIVE:
        out.append(Terminate((child.spec.id,), parallel=False))
    child.token += 1  # cancels a pending restart
    child.state = ChildState.STOPPED
    # Unlike OTP's simple_one_for_one, a dynamic child's spec is kept: an operator who stops
    # a strategy must still see it, as `stopped`, and can restart it (delete_child forgets it).
    if child.spec.restart is RestartType.TEMPORARY:
        del state.children[child.spec.id]


def _delete_child(state: CoreState, event: DeleteChild, now: Now, out: list[Command]) -> None:
    _idle(state, event.child_id)
    del state.children[event.child_id]


def _started(state: CoreState, event: Started, now: Now, out: list[Command]) -> None:
    child = state.children[event.child_id]
    child.generation = event.generation
    child.state = ChildState.RUNNING
    child.running_since = now.mono
    child.started_at = now.wall
    out.append(Log("child_started", "DEBUG", {"child": event.child_id, "generation": event.generation}))
    assert state.attempt is not None
    state.attempt.started.append(event.child_id)
    _next_start(state, out)


def _start_failed(state: CoreState, event: StartFailedEvent, now: Now, out: list[Command]) -> None:
    child = state.children[event.child_id]
    child.generation = event.generation
    _note_exit(child, event.reason, now)
    out.append(Log("child_start_failed", "ERROR", {"child": event.child_id, "reason": event.reason.describe()}))
    attempt = state.attempt
    assert attempt is not None
    state.attempt = None
    if attempt.purpose is Purpose.INIT:
        child.state = ChildState.FAILED
        _stop_children(state, out)
        state.status = SupervisorState.FAILED
        out.append(Reply(StartFailed(f"child {event.child_id} failed to start: {event.reason.describe()}")))
        return
    if attempt.purpose is not Purpose.RESTART:
        child.state = ChildState.FAILED
        if attempt.purpose is Purpose.ADD:
            del state.children[event.child_id]  # a child that fails to start is not kept
        out.append(Reply(StartFailed(f"{event.child_id}: {event.reason.describe()}")))
        return
    # A restart attempt that itself fails counts as a restart (OTP try_again_restart).
    child.state = ChildState.RESTARTING
    if _count_restart(state, child, event.reason, now, out):
        if state.status is SupervisorState.RUNNING and attempt.remaining:
            state.attempt = attempt  # a disabled child does not hold back the rest of its group
            _next_start(state, out)
        return
    if state.options.strategy is RestartStrategy.ONE_FOR_ALL:
        _take_down(state, [cid for cid in attempt.started if cid in state.children], out)
        group = [cid for cid in attempt.members if cid in state.children]
    else:
        group = [event.child_id, *attempt.remaining]
    _plan(state, child, group, now, out, through_mailbox=True)


def _exited(state: CoreState, event: Exited, now: Now, out: list[Command]) -> None:
    child = _current(state, event.child_id, event.generation)
    if child is not None:
        _failed(state, child, event.reason, now, out)


def _hung(state: CoreState, event: Hung, now: Now, out: list[Command]) -> None:
    child = _current(state, event.child_id, event.generation)
    if child is None:
        return
    timeout = child.spec.hang_timeout
    out.append(Fence(event.child_id, event.generation))
    out.append(Log("child_hung", "ERROR", {"child": event.child_id, "generation": event.generation},
                   "fenced, abandoned, replacement started"))
    reason = ExitReason(ExitKind.HUNG, message=f"no progress for more than {timeout}s; fenced and abandoned")
    _failed(state, child, reason, now, out)


def _terminated(state: CoreState, event: Terminated, now: Now, out: list[Command]) -> None:
    if len(event.overran) == 1:
        child_id, generation = event.overran[0]
        out.append(Log("child_killed", "ERROR", {"child": child_id, "generation": generation}, "abandoned and fenced"))
    elif event.overran:
        # A mass stop (10,000 strategies) that overruns: one line naming every killed child, not one each.
        killed = [f"{child_id}@{generation}" for child_id, generation in event.overran]
        out.append(Log("children_killed", "ERROR", {"stopped": max(event.stopped, len(killed)), "killed": len(killed),
                                                    "children": killed}, "abandoned and fenced"))
    for child_id, generation in event.overran:
        out.append(Fence(child_id, generation))
        child = state.children.get(child_id)
        if child is None:
            continue
        timeout = child.spec.shutdown
        _note_exit(child, ExitReason(ExitKind.KILLED, message=f"did not stop within {timeout}s"), now)
        if child.state is ChildState.STOPPED:
            child.state = ChildState.KILLED


def _retry_due(state: CoreState, event: RetryDue, now: Now, out: list[Command]) -> None:
    planned = state.retries.pop(event.retry_id, ())
    if state.status is not SupervisorState.RUNNING:
        return
    members = [cid for cid, token in planned
               if (c := state.children.get(cid)) is not None and c.token == token and c.state is ChildState.RESTARTING]
    if members:
        _begin(state, Purpose.RESTART, members, out)


def _stop(state: CoreState, event: Stop, now: Now, out: list[Command]) -> None:
    if state.status in (SupervisorState.STARTING, SupervisorState.RUNNING):
        state.status = SupervisorState.STOPPED
    state.attempt = None
    _stop_children(state, out)


_HANDLERS: dict[type, Callable[[CoreState, object, Now, list[Command]], None]] = {
    Init: _init, AddChild: _add_child, RestartChild: _restart_child, TerminateChild: _terminate_child,
    DeleteChild: _delete_child, Started: _started, StartFailedEvent: _start_failed, Exited: _exited, Hung: _hung,
    Terminated: _terminated, RetryDue: _retry_due, Stop: _stop,
}  # type: ignore[dict-item]


# --- decisions ------------------------------------------------------------------------


def _failed(state: CoreState, child: Child, reason: ExitReason, now: Now, out: list[Command]) -> None:
    """A running child ended by itself (or hung): restart it and its group, or not."""
    if child.running_since is not None and now.mono - child.running_since >= state.options.stable_period:
        child.consecutive = 0  # a stable run resets the backoff
    _note_exit(child, reason, now)
    child_id = child.spec.id
    out.append(Log("child_exited", "WARNING" if reason.abnormal else "INFO",
                   {"child": child_id, "reason": reason.describe()}))
    if not should_restart(child.spec.restart, reason):
        if child.spec.restart is RestartType.TEMPORARY:
            del state.children[child_id]
        else:
            child.state = ChildState.FAILED if reason.abnormal else ChildState.STOPPED
        return
    child.state = ChildState.RESTARTING
    if _count_restart(state, child, reason, now, out):
        return
    group = [child_id]
    if state.options.strategy in (RestartStrategy.ONE_FOR_ALL, RestartStrategy.REST_FOR_ONE):
        pending = [cid for cid, c in state.children.items() if c.state in LIVE or c.state is ChildState.RESTARTING]
        group = plan_restart(state.options.strategy, pending, child_id)
        _take_down(state, [cid for cid in group if cid != child_id], out)
        group = [cid for cid in group if cid in state.children]  # temporary siblings are gone
    _plan(state, child, group, now, out, through_mailbox=False)


def _count_restart(state: CoreState, child: Child, reason: ExitReason, now: Now, out: list[Command]) -> bool:
    """Add one restart to the window; on trip, disable or escalate. True when tripped."""
    window = child.window if child.window is not None else state.window
    child.restarts += 1
    if not window.add(now.mono):
        return False
    options = state.options
    what = f"{child.spec.id}: restart intensity {options.intensity} in {options.period:g}s exceeded ({reason.describe()})"
    if child.window is not None:
        child.state = ChildState.DISABLED
        child.token += 1
        out.append(Log("child_disabled", "ERROR", {"child": child.spec.id, "reason": what}, "disabled"))
        out.append(NotifyDisabled(child.spec.id, what))
        return True
    child.state = ChildState.FAILED
    child.token += 1
    state.attempt = None
    state.status = SupervisorState.ESCALATED
    out.append(Log("escalated", "ERROR", {"reason": what}, "stop children, escalate"))
    _stop_children(state, out)
    out.append(Escalate(what))
    return True


def _take_down(state: CoreState, members: list[str], out: list[Command]) -> None:
    """Terminate the live `members` (given in start order) so they restart with their group;
    temporary ones are forgotten instead (OTP: never restarted, also when a sibling ends them)."""
    live = [cid for cid in members if state.children[cid].state in LIVE]
    for cid in members:
        child = state.children[cid]
        child.state = ChildState.RESTARTING
        if child.spec.restart is RestartType.TEMPORARY:
            del state.children[cid]
    if live:
        out.append(Terminate(tuple(reversed(live)), parallel=state.options.strategy is RestartStrategy.DYNAMIC))


def _plan(state: CoreState, failed: Child, group: list[str], now: Now, out: list[Command], through_mailbox: bool) -> None:
    """Restart `group` (start order) after `failed`'s backoff; supersedes their other plans."""
    options = state.options
    delay = backoff_delay(failed.consecutive, options.min_backoff, options.max_backoff, options.jitter, state.rand())
    failed.consecutive += 1
    planned = []
    for cid in group:
        member = state.children[cid]
        member.state = ChildState.RESTARTING
        member.token += 1
        planned.append((cid, member.token))
    if delay <= 0.0 and not through_mailbox:
        _begin(state, Purpose.RESTART, group, out)
        return
    retry_id = state.next_retry
    state.next_retry += 1
    state.retries[retry_id] = tuple(planned)
    if delay > 0.0:
        out.append(Log("restart_scheduled", "INFO", {"children": group, "delay_s": round(delay, 3)}))
    out.append(Schedule(delay, retry_id))


def _begin(state: CoreState, purpose: Purpose, members: list[str], out: list[Command]) -> None:
    state.attempt = Attempt(purpose, tuple(members), deque(members))
    _next_start(state, out)


def _next_start(state: CoreState, out: list[Command]) -> None:
    attempt = state.attempt
    assert attempt is not None
    while attempt.remaining:
        child = state.children.get(attempt.remaining.popleft())
        if child is None:
            continue
        if attempt.purpose is Purpose.RESTART and child.state is not ChildState.RESTARTING:
            continue
        child.state = ChildState.STARTING
        out.append(Start(child.spec.id))
        return
    state.attempt = None
    if attempt.purpose is Purpose.INIT:
        state.status = SupervisorState.RUNNING
    if attempt.purpose is not Purpose.RESTART:
        out.append(Reply())


def _stop_children(state: CoreState, out: list[Command]) -> None:
    """Cancel every pending restart and stop every live child, in reverse start order."""
    live = []
    for cid, child in list(state.children.items()):
        if child.state in LIVE:
            live.append(cid)
        if child.state in LIVE or child.state is ChildState.RESTARTING:
            child.state = ChildState.STOPPED
        child.token += 1
        if child.spec.restart is RestartType.TEMPORARY:
            del state.children[cid]
    state.retries.clear()
    if live:
        out.append(Terminate(tuple(reversed(live)), parallel=state.options.strategy is RestartStrategy.DYNAMIC))


# --- bookkeeping ----------------------------------------------------------------------


def _add(state: CoreState, spec: ChildSpec) -> Child:
    options = state.options
    child = Child(spec=spec, window=RestartWindow(options.intensity, options.period) if options.per_child else None)
    state.children[spec.id] = child
    return child


def _get(state: CoreState, child_id: str) -> Child:
    child = state.children.get(child_id)
    if child is None:
        raise NotFound(f"no child {child_id!r}")
    return child


def _idle(state: CoreState, child_id: str) -> Child:
    """The child, if an admin call may restart or delete it (OTP's running / restarting errors)."""
    child = _get(state, child_id)
    if child.state in LIVE:
        raise Running(f"child {child_id} is running")
    if child.state is ChildState.RESTARTING:
        raise Restarting(f"child {child_id} is restarting")
    return child


def _current(state: CoreState, child_id: str, generation: int) -> Child | None:
    """The child if `generation` is its running incarnation; None for a stale report."""
    child = state.children.get(child_id)
    if child is None or child.generation != generation or child.state is not ChildState.RUNNING:
        return None
    return child


def _note_exit(child: Child, reason: ExitReason, now: Now) -> None:
    child.running_since = None
    child.last_exit_at = now.wall
    if reason.abnormal:
        child.last_error = {
            "type": reason.error_type or reason.kind.value,
            "message": reason.message or reason.kind.value,
            "at": now.wall,
        }
