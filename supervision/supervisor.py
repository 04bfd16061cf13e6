"""Supervisor: OTP supervisor semantics on a pykka ThreadingActor.

The decisions (what to restart, whether the window tripped, how long to back off) are
the pure functions of `policy.py`; this module is the shell that applies them. All
mutation of the child table happens on the supervisor's own thread, under `_lock` so that
`snapshot()` readers on other threads (status server, a parent supervisor) never wait
on the actor's inbox. The lock is never held while waiting for a child to start or stop.

Never does: block on a child without a timeout; restart a child from another thread;
call user callbacks while holding the lock.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import pykka
from loguru import logger

from supervision.actor import SupervisedActor, actor_of
from supervision.errors import AlreadyPresent, AlreadyStarted, NotFound, Restarting, Running, StartFailed
from supervision.fence import Fence, GenerationSource, next_process_generation
from supervision.incarnation import Incarnation, monotonic, push_spawning, take_spawning, _spawning
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
from supervision.watchdog import HangWatchdog

IntensityScope = str  # "supervisor" | "child"
_LIVE = ("starting", "running")


@dataclass
class _Child:
    spec: ChildSpec
    state: str = "stopped"
    incarnation: Incarnation | None = None
    ref: pykka.ActorRef[Any] | None = None
    generation: int = 0
    restarts: int = 0
    consecutive_restarts: int = 0
    restart_token: int = 0
    last_error: dict[str, Any] | None = None
    last_exit_at: float | None = None
    started_at: float | None = None  # wall clock, for uptime in the status tree
    window: RestartWindow | None = None


@dataclass(frozen=True)
class _ChildExited:
    incarnation: Incarnation


@dataclass(frozen=True)
class _ChildHung:
    incarnation: Incarnation


@dataclass(frozen=True)
class _RestartDue:
    tokens: tuple[tuple[str, int], ...]  # (child id, restart token) in start order


@dataclass
class _Options:
    strategy: RestartStrategy
    intensity: int
    period: float
    scope: IntensityScope
    min_backoff: float
    max_backoff: float
    jitter: float
    stable_period: float
    on_escalate: Callable[[str], None] | None
    on_child_disabled: Callable[[str, str], None] | None
    clock: Callable[[], float]
    wall_clock: Callable[[], float]
    rand: Callable[[], float]
    generations: GenerationSource
    fence: Fence | None
    initial: Sequence[ChildSpec] = field(default_factory=tuple)


class Supervisor(SupervisedActor):
    """A supervisor actor. Start with `Supervisor.start(...)`; see DESIGN §7 for the API."""

    def __init__(
        self,
        strategy: str = "one_for_one",
        intensity: int = 3,
        period: float = 600.0,
        intensity_scope: IntensityScope = "supervisor",
        min_backoff: float = 0.0,
        max_backoff: float = 30.0,
        jitter: float = 0.2,
        children: Iterable[ChildSpec] = (),
        on_escalate: Callable[[str], None] | None = None,
        on_child_disabled: Callable[[str, str], None] | None = None,
        name: str = "root",
        clock: Callable[[], float] = monotonic,
        wall_clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        stable_period: float = 60.0,
        generations: GenerationSource = next_process_generation,
        fence: Fence | None = None,
    ) -> None:
        super().__init__()
        if intensity < 0 or period <= 0:
            raise ValueError(f"intensity must be >= 0 and period > 0, got {intensity}/{period}")
        if intensity_scope not in ("supervisor", "child"):
            raise ValueError(f"intensity_scope must be 'supervisor' or 'child', got {intensity_scope!r}")
        specs = list(children)
        ids = [spec.id for spec in specs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate child ids in {ids}")
        self._opts = _Options(
            strategy=RestartStrategy(strategy),
            intensity=intensity,
            period=period,
            scope=intensity_scope,
            min_backoff=min_backoff,
            max_backoff=max_backoff,
            jitter=jitter,
            stable_period=stable_period,
            on_escalate=on_escalate,
            on_child_disabled=on_child_disabled,
            clock=clock,
            wall_clock=wall_clock,
            rand=rand,
            generations=generations,
            fence=fence,
            initial=tuple(specs),
        )
        self._name = self._incarnation.child_id if self._incarnation.generation else name
        self._children: dict[str, _Child] = {}
        self._window = RestartWindow(intensity, period)
        self._lock = threading.RLock()
        self._state = "starting"
        self._watchdog: HangWatchdog | None = None
        self._log = logger.bind(component=f"supervisor:{self._name}")

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> pykka.ActorRef[Any]:
        """Start and, at top level, wait until every initial child is running.

        Raises StartFailed when a child fails to start (OTP: the supervisor's init fails).
        Nested under another supervisor it returns at once: the parent does the waiting,
        bounded by the child spec's start_timeout.
        """
        if _spawning.incarnation is not None:
            return super().start(*args, **kwargs)
        incarnation = Incarnation(child_id=kwargs.get("name", "root"), generation=0)
        push_spawning(incarnation)
        try:
            ref = super().start(*args, **kwargs)
        finally:
            take_spawning()
        incarnation.started.wait()
        if incarnation.start_error is not None:
            raise StartFailed(incarnation.start_error.describe())
        return ref

    # --- lifecycle ------------------------------------------------------------------

    def on_start(self) -> None:
        for spec in self._opts.initial:
            child = self._add(spec)
            try:
                self._start(child)
            except StartFailed as exc:
                self._terminate_all()
                self._state = "failed"
                raise StartFailed(f"{self._name}: child {spec.id} failed to start: {exc}") from exc
        self._state = "running"

    def on_stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()
        self._terminate_all()
        if self._state != "escalated":
            self._state = "stopped"

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _ChildExited):
            self._on_child_exited(message.incarnation)
        elif isinstance(message, _ChildHung):
            self._on_child_hung(message.incarnation)
        elif isinstance(message, _RestartDue):
            self._run_restart(message.tokens)
        return None

    # --- public API (call through the proxy) ------------------------------------------

    def start_child(self, spec: ChildSpec) -> pykka.ActorRef[Any]:
        existing = self._children.get(spec.id)
        if existing is not None:
            if existing.state in _LIVE:
                raise AlreadyStarted(f"child {spec.id} is already started")
            raise AlreadyPresent(f"child {spec.id} is already present (state {existing.state})")
        child = self._add(spec)
        try:
            self._start(child)
        except StartFailed:
            self._remove(spec.id)
            raise
        assert child.ref is not None
        return child.ref

    def terminate_child(self, child_id: str) -> None:
        child = self._get(child_id)
        if child.state in _LIVE:
            self._terminate([child])
        elif child.state == "restarting":
            child.restart_token += 1  # cancels the pending restart
            self._set_state(child, "stopped")
        # Unlike OTP's simple_one_for_one, a dynamic child's spec is kept: an operator who stops
        # a strategy must still see it, as `stopped`, and can restart it (delete_child forgets it).
        if child.spec.restart is RestartType.TEMPORARY:
            self._remove(child_id)

    def restart_child(self, child_id: str) -> pykka.ActorRef[Any]:
        child = self._get(child_id)
        if child.state in _LIVE:
            raise Running(f"child {child_id} is running")
        if child.state == "restarting":
            raise Restarting(f"child {child_id} is restarting")
        if child.window is not None:
            child.window.reset()  # an operator re-enabling a disabled child starts a fresh window
        child.consecutive_restarts = 0
        self._start(child)
        assert child.ref is not None
        return child.ref

    def delete_child(self, child_id: str) -> None:
        child = self._get(child_id)
        if child.state in _LIVE:
            raise Running(f"child {child_id} is running")
        if child.state == "restarting":
            raise Restarting(f"child {child_id} is restarting")
        self._remove(child_id)

    def which_children(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "id": child.spec.id,
                    "ref": child.ref if child.state in _LIVE else None,
                    "kind": child.spec.kind,
                    "state": child.state,
                    "restarts": child.restarts,
                    "generation": child.generation,
                }
                for child in self._children.values()
            ]

    def count_children(self) -> dict[str, int]:
        with self._lock:
            children = list(self._children.values())
        return {
            "specs": len(children),
            "active": sum(1 for child in children if child.state == "running"),
            "supervisors": sum(1 for child in children if child.spec.kind == "supervisor"),
            "workers": sum(1 for child in children if child.spec.kind == "worker"),
        }

    def snapshot(self) -> dict[str, Any]:
        return self.status_node()

    def status_node(self) -> dict[str, Any]:
        """The status-tree node of DESIGN §7, recursively. Safe from any thread."""
        with self._lock:
            children = [(child, child.incarnation) for child in self._children.values()]
            node = {
                "id": self._name,
                "kind": "supervisor",
                "strategy": self._opts.strategy.value,
                "state": self._state,
                "restarts": 0,
                "last_error": None,
                "last_exit_at": None,
                "generation": self.generation,
                "children": [self._child_node(child, incarnation) for child, incarnation in children],
            }
        return node

    def current_generation(self, child_id: str) -> int | None:
        with self._lock:
            child = self._children.get(child_id)
            return child.generation if child is not None and child.state in _LIVE else None

    # --- starting ---------------------------------------------------------------------

    def _add(self, spec: ChildSpec) -> _Child:
        child = _Child(spec=spec)
        if self._opts.scope == "child":
            child.window = RestartWindow(self._opts.intensity, self._opts.period)
        with self._lock:
            self._children[spec.id] = child
        return child

    def _start(self, child: _Child) -> None:
        """Start one incarnation and wait for its on_start. Raises StartFailed."""
        spec = child.spec
        incarnation = Incarnation(
            spec.id, self._opts.generations(), on_exit=self._report_exit, clock=self._opts.clock
        )
        with self._lock:
            child.incarnation = incarnation
            child.generation = incarnation.generation
            child.state = "starting"
        push_spawning(incarnation)
        try:
            ref = spec.factory.start(*spec.args, **dict(spec.kwargs))
        except Exception as exc:  # noqa: BLE001 - constructor or nested start failure
            reason = incarnation.start_error or ExitReason.from_exception(exc)
            self._start_failed(child, incarnation, reason)
        finally:
            take_spawning()
        if incarnation.actor is None:
            ref.stop(block=False)
            self._start_failed(
                child, incarnation, ExitReason(ExitKind.ERROR, "TypeError", f"{spec.factory!r} is not a SupervisedActor")
            )
        if not incarnation.started.wait(spec.start_timeout):
            self._abandon(incarnation)
            self._start_failed(
                child, incarnation, ExitReason(ExitKind.KILLED, message=f"on_start exceeded {spec.start_timeout}s")
            )
        if incarnation.start_error is not None:
            self._start_failed(child, incarnation, incarnation.start_error)
        with self._lock:
            child.ref = ref
            child.state = "running"
            child.started_at = self._opts.wall_clock()
        if self._opts.fence is not None:
            self._opts.fence.admit(spec.id, incarnation.generation)
        if spec.hang_timeout is not None:
            self._ensure_watchdog(spec.hang_timeout)
        self._log.bind(event="child_started", details={"child": spec.id, "generation": incarnation.generation}).debug(
            "child_started"
        )

    def _start_failed(self, child: _Child, incarnation: Incarnation, reason: ExitReason) -> None:
        with self._lock:
            child.incarnation = None
            child.ref = None
            child.state = "failed"
            self._note_exit(child, reason)
        raise StartFailed(f"{child.spec.id}: {reason.describe()}")

    # --- exits, hangs, restarts -----------------------------------------------------

    def _report_exit(self, incarnation: Incarnation) -> None:
        """Runs on the dying child's thread: hand the exit to the supervisor's thread."""
        try:
            self.actor_ref.tell(_ChildExited(incarnation))
        except pykka.ActorDeadError:
            pass  # the supervisor itself is gone; nobody is left to restart anything

    def _report_hang(self, incarnation: Incarnation) -> None:
        try:
            self.actor_ref.tell(_ChildHung(incarnation))
        except pykka.ActorDeadError:
            pass

    def _on_child_exited(self, incarnation: Incarnation) -> None:
        child = self._children.get(incarnation.child_id)
        if child is None or child.incarnation is not incarnation or child.state != "running":
            return  # an exit we initiated, or of an incarnation already replaced
        reason = incarnation.exit_reason or ExitReason(ExitKind.NORMAL)
        self._exited(child, incarnation, reason)

    def _on_child_hung(self, incarnation: Incarnation) -> None:
        child = self._children.get(incarnation.child_id)
        if child is None or child.incarnation is not incarnation or child.state != "running":
            return
        timeout = child.spec.hang_timeout
        reason = ExitReason(ExitKind.HUNG, message=f"no progress for more than {timeout}s; fenced and abandoned")
        incarnation.record_exit(reason)
        self._abandon(incarnation)
        self._log.bind(
            event="child_hung",
            details={"child": child.spec.id, "generation": incarnation.generation},
            action_taken="fenced, abandoned, replacement started",
        ).error("child_hung")
        self._exited(child, incarnation, reason)

    def _exited(self, child: _Child, incarnation: Incarnation, reason: ExitReason) -> None:
        self._revoke(incarnation)
        with self._lock:
            child.incarnation = None
            child.ref = None
            self._note_exit(child, reason)
        level = "WARNING" if reason.abnormal else "INFO"
        self._log.bind(event="child_exited", details={"child": child.spec.id, "reason": reason.describe()}).log(
            level, "child_exited"
        )
        if not should_restart(child.spec.restart, reason):
            if child.spec.restart is RestartType.TEMPORARY:
                self._remove(child.spec.id)
            else:
                self._set_state(child, "failed" if reason.abnormal else "stopped")
            return
        if self._count_restart(child, reason, incarnation.started_at):
            return
        order = [cid for cid, other in self._children.items() if cid == child.spec.id or other.state in _LIVE]
        group = plan_restart(self._opts.strategy, order, child.spec.id)
        siblings = [self._children[cid] for cid in group if cid != child.spec.id]
        self._terminate(siblings)
        group = [cid for cid in group if cid in self._children]  # temporary siblings are gone
        self._schedule_restart(child, group)

    def _count_restart(self, child: _Child, reason: ExitReason, started_at: float | None) -> bool:
        """Add one restart to the window; on trip, disable or escalate. True when tripped."""
        now = self._opts.clock()
        if started_at is not None and now - started_at >= self._opts.stable_period:
            child.consecutive_restarts = 0
        window = child.window if child.window is not None else self._window
        tripped = window.add(now)
        with self._lock:
            child.restarts += 1
        if not tripped:
            return False
        what = f"{child.spec.id}: restart intensity {self._opts.intensity} in {self._opts.period:g}s exceeded ({reason.describe()})"
        if child.window is not None:
            self._disable(child, what)
        else:
            self._escalate(what)
        return True

    def _schedule_restart(self, failed: _Child, group: list[str]) -> None:
        delay = backoff_delay(
            failed.consecutive_restarts,
            self._opts.min_backoff,
            self._opts.max_backoff,
            self._opts.jitter,
            self._opts.rand(),
        )
        failed.consecutive_restarts += 1
        tokens = []
        with self._lock:
            for cid in group:
                member = self._children[cid]
                member.state = "restarting"
                member.restart_token += 1
                tokens.append((cid, member.restart_token))
        due = _RestartDue(tuple(tokens))
        if delay <= 0.0:
            self._run_restart(due.tokens)
            return
        self._log.bind(event="restart_scheduled", details={"children": group, "delay_s": round(delay, 3)}).info(
            "restart_scheduled"
        )
        timer = threading.Timer(delay, self._tell_quietly, args=(due,))
        timer.daemon = True
        timer.start()

    def _tell_quietly(self, message: Any) -> None:
        try:
            self.actor_ref.tell(message)
        except pykka.ActorDeadError:
            pass

    def _run_restart(self, tokens: tuple[tuple[str, int], ...]) -> None:
        if self._state != "running" and self._state != "starting":
            return
        for index, (cid, token) in enumerate(tokens):
            child = self._children.get(cid)
            if child is None or child.state != "restarting" or child.restart_token != token:
                continue  # removed, terminated or rescheduled by an admin call meanwhile
            try:
                self._start(child)
            except StartFailed as exc:
                # A restart attempt that itself fails counts as a restart (OTP try_again_restart).
                reason = ExitReason(ExitKind.ERROR, "StartFailed", str(exc))
                if self._count_restart(child, reason, None):
                    return
                remaining = [c for c, _ in tokens[index:] if c in self._children]
                self._schedule_restart(child, remaining)
                return

    def _disable(self, child: _Child, what: str) -> None:
        self._set_state(child, "disabled")
        self._log.bind(event="child_disabled", details={"child": child.spec.id, "reason": what}, action_taken="disabled").error(
            "child_disabled"
        )
        if self._opts.on_child_disabled is not None:
            self._opts.on_child_disabled(child.spec.id, what)

    def _escalate(self, what: str) -> None:
        self._log.bind(event="escalated", details={"reason": what}, action_taken="stop children, escalate").error(
            "escalated"
        )
        self._terminate_all()
        with self._lock:
            self._state = "escalated"
        self._incarnation.record_exit(ExitReason(ExitKind.ESCALATED, message=what))
        supervised_by_parent = self._incarnation.generation != 0
        if not supervised_by_parent and self._opts.on_escalate is not None:
            self._opts.on_escalate(what)
        self._stop()

    # --- stopping -------------------------------------------------------------------

    def _terminate_all(self) -> None:
        live = [child for child in self._children.values() if child.state in _LIVE]
        pending = [child for child in self._children.values() if child.state == "restarting"]
        for child in pending:
            child.restart_token += 1
            self._set_state(child, "stopped")
        self._terminate(live)
        for child in list(self._children.values()):
            if child.spec.restart is RestartType.TEMPORARY:
                self._remove(child.spec.id)

    def _terminate(self, children: list[_Child]) -> None:
        """Stop `children` (start order given) in reverse order; abandon any that overrun.

        Dynamic supervisors stop all children at once (OTP does not order them either), so
        1,000 strategies stop in one shutdown timeout, not a thousand.
        """
        stopping: list[tuple[_Child, Incarnation, float]] = []
        parallel = self._opts.strategy is RestartStrategy.DYNAMIC
        for child in reversed(children):
            incarnation = child.incarnation
            if incarnation is None:
                continue
            with self._lock:
                child.incarnation = None  # its exit report is now ours, not a failure
            self._request_stop(incarnation)
            deadline = time.monotonic() + child.spec.shutdown
            if parallel:
                stopping.append((child, incarnation, deadline))
            else:
                self._await_stop(child, incarnation, deadline)
        for child, incarnation, deadline in stopping:
            self._await_stop(child, incarnation, deadline)

    def _request_stop(self, incarnation: Incarnation) -> None:
        actor = incarnation.actor
        if isinstance(actor, pykka.Actor):
            try:
                actor.actor_ref.stop(block=False)
            except pykka.ActorDeadError:
                pass

    def _await_stop(self, child: _Child, incarnation: Incarnation, deadline: float) -> None:
        stopped = incarnation.exited.wait(max(0.0, deadline - time.monotonic()))
        self._revoke(incarnation)
        with self._lock:
            child.ref = None
            child.last_exit_at = self._opts.wall_clock()
            child.state = "stopped" if stopped else "killed"
        if not stopped:
            incarnation.record_exit(ExitReason(ExitKind.KILLED, message=f"did not stop within {child.spec.shutdown}s"))
            self._abandon(incarnation)
            with self._lock:
                self._note_exit(child, incarnation.exit_reason or ExitReason(ExitKind.KILLED))
            self._log.bind(
                event="child_killed",
                details={"child": child.spec.id, "generation": incarnation.generation},
                action_taken="abandoned and fenced",
            ).error("child_killed")
        if child.spec.restart is RestartType.TEMPORARY:
            self._remove(child.spec.id)

    def _abandon(self, incarnation: Incarnation) -> None:
        incarnation.abandoned = True
        self._revoke(incarnation)
        self._request_stop(incarnation)

    def _revoke(self, incarnation: Incarnation) -> None:
        if self._opts.fence is not None:
            self._opts.fence.revoke(incarnation.child_id, incarnation.generation)

    # --- bookkeeping ----------------------------------------------------------------

    def _get(self, child_id: str) -> _Child:
        child = self._children.get(child_id)
        if child is None:
            raise NotFound(f"no child {child_id!r} under {self._name}")
        return child

    def _remove(self, child_id: str) -> None:
        with self._lock:
            self._children.pop(child_id, None)

    def _set_state(self, child: _Child, state: str) -> None:
        with self._lock:
            child.state = state

    def _note_exit(self, child: _Child, reason: ExitReason) -> None:
        """Caller holds the lock."""
        child.last_exit_at = self._opts.wall_clock()
        if reason.abnormal or reason.kind is ExitKind.KILLED:
            child.last_error = {
                "type": reason.error_type or reason.kind.value,
                "message": reason.message or reason.kind.value,
                "at": child.last_exit_at,
            }

    def _ensure_watchdog(self, hang_timeout: float) -> None:
        if self._watchdog is not None:
            return
        interval = min(1.0, max(0.01, hang_timeout / 5.0))
        self._watchdog = HangWatchdog(
            watched=self._watched,
            report=self._report_hang,
            clock=self._opts.clock,
            interval=interval,
            name=self._name,
        )
        self._watchdog.start()

    def _watched(self) -> list[tuple[Incarnation, float]]:
        with self._lock:
            return [
                (child.incarnation, child.spec.hang_timeout)
                for child in self._children.values()
                if child.state == "running" and child.incarnation is not None and child.spec.hang_timeout is not None
            ]

    def _child_node(self, child: _Child, incarnation: Incarnation | None) -> dict[str, Any]:
        node: dict[str, Any] = {
            "id": child.spec.id,
            "kind": child.spec.kind,
            "state": child.state,
            "restarts": child.restarts,
            "last_error": child.last_error,
            "last_exit_at": child.last_exit_at,
            "started_at": child.started_at if child.state in _LIVE else None,
            "generation": child.generation,
            "children": [],
        }
        actor = incarnation.actor if incarnation is not None else None
        if isinstance(actor, Supervisor):
            sub = actor.status_node()
            node["strategy"] = sub["strategy"]
            node["children"] = sub["children"]
        elif actor is not None and hasattr(actor, "status_details"):
            node["details"] = actor.status_details()
        return node


def tree_status(ref: pykka.ActorRef[Any]) -> dict[str, Any]:
    """The status tree under a supervisor, read without going through its inbox.

    A supervisor busy waiting out a child's shutdown timeout still answers this at once,
    which is what an operator looking at a troubled node needs.
    """
    actor = actor_of(ref)
    if not isinstance(actor, Supervisor):
        raise TypeError(f"{ref!r} is not a Supervisor")
    return actor.status_node()
