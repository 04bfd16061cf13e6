"""Supervisor: OTP supervisor semantics on a pykka ThreadingActor.

Every decision is made by the pure core (`core.step`); this module is the shell that
executes its commands: start an incarnation, terminate, fence, schedule a retry through
the mailbox, log, call the user's callbacks. The core's state changes only on the
supervisor's own thread, under `_lock`, so that `status_node()` readers on other
threads (status server, a parent supervisor) never wait on the actor's inbox. The lock
is never held while waiting for a child, nor while user code runs (`status_details`,
`on_escalate`, `on_child_disabled`).

Children never outlive their supervisor: whatever ends it (a stop, an exception or
BaseException in its own code, a failed start, escalation), it stops its children
before its parent hears of its exit.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import pykka

from runtime.logging import log_event
from supervision import core
from supervision.actor import SupervisedActor, actor_of
from supervision.core import ChildState, Now, RetryDue
from supervision.errors import StartFailed
from supervision.fence import Fence, GenerationSource, next_process_generation
from supervision.incarnation import Incarnation, monotonic, push_spawning, spawning, take_spawning
from supervision.policy import NORMAL_EXIT, ExitKind, ExitReason, RestartStrategy
from supervision.spec import ChildSpec
from supervision.watchdog import HangWatchdog

IntensityScope = str  # "supervisor" | "child"


@dataclass(frozen=True)
class _ChildExited:
    incarnation: Incarnation


@dataclass(frozen=True)
class _ChildHung:
    incarnation: Incarnation


@dataclass(frozen=True)
class _Life:
    """The shell's handle on a child's latest incarnation."""

    incarnation: Incarnation
    spec: ChildSpec


class Supervisor(SupervisedActor):
    """A supervisor actor (DESIGN §7): starts its children in order, restarts them by its
    strategy, and stops them in reverse order when it ends, however it ends.

    Start with `Supervisor.start(...)`; nest with `ChildSpec(id, Supervisor,
    kind="supervisor", kwargs={...options...})`. Call the admin methods through the
    proxy (`ref.proxy().which_children().get()`): they run on the supervisor's thread.
    `status_node()` (and `tree_status(ref)`) are the exception: safe from any thread.

    Options: `strategy` one_for_one | one_for_all | rest_for_one | dynamic; `intensity`
    restarts per `period` seconds before it trips, per supervisor or per child
    (`intensity_scope`); backoff `min(max_backoff, min_backoff·2^n)·(1+rand·jitter)`,
    n reset after `stable_period` seconds of running; `on_escalate(reason)` for a
    top-level supervisor that trips; `on_child_disabled(child_id, reason)` for a child
    whose own intensity tripped. Both callbacks run on the supervisor's thread, outside
    its lock; an exception in them is logged and ignored. `clock`, `wall_clock`, `rand`
    and `generations` are injectable for tests; `fence` receives each child's generation.
    """

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
        specs = tuple(children)
        ids = [spec.id for spec in specs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate child ids in {ids}")
        options = core.Options(
            strategy=RestartStrategy(strategy),
            intensity=intensity,
            period=period,
            per_child=intensity_scope == "child",
            min_backoff=min_backoff,
            max_backoff=max_backoff,
            jitter=jitter,
            stable_period=stable_period,
        )
        self._core = core.new_state(options, rand)
        self._initial = specs
        self._clock = clock
        self._wall_clock = wall_clock
        self._generations = generations
        self._fence = fence
        self._on_escalate = on_escalate
        self._on_child_disabled = on_child_disabled
        self._name = self._incarnation.child_id if self._incarnation.generation else name
        self._lives: dict[str, _Life] = {}
        self._lock = threading.RLock()
        self._watchdog: HangWatchdog | None = None
        self._timers: set[threading.Timer] = set()
        self._escalation: str | None = None
        self._component = f"supervisor:{self._name}"

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> pykka.ActorRef[Any]:
        """Start and, at top level, wait until every initial child is running.

        Raises StartFailed when a child fails to start (OTP: the supervisor's init fails);
        the children already started are stopped first. Nested under another supervisor it
        returns at once: the parent does the waiting, bounded by the spec's start_timeout.
        """
        if spawning():
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
        reply = self._dispatch(core.Init(self._initial))
        if reply is not None and reply.error is not None:
            raise StartFailed(f"{self._name}: {reply.error}")

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _ChildExited):
            incarnation = message.incarnation
            self._revoke(incarnation)
            reason = incarnation.exit_reason or NORMAL_EXIT
            self._dispatch(core.Exited(incarnation.child_id, incarnation.generation, reason))
        elif isinstance(message, _ChildHung):
            self._dispatch(core.Hung(message.incarnation.child_id, message.incarnation.generation))
        elif isinstance(message, RetryDue):
            self._dispatch(message)
        return None

    def _release(self) -> None:
        """Every way out of this supervisor's life ends here: children stop first."""
        if self._watchdog is not None:
            self._watchdog.stop()
        for timer in list(self._timers):
            timer.cancel()
        self._dispatch(core.Stop())

    # --- public API (call through the proxy) ------------------------------------------

    def start_child(self, spec: ChildSpec) -> pykka.ActorRef[Any]:
        """Add `spec` and start it; returns its ref once its on_start has finished.

        Raises AlreadyStarted / AlreadyPresent for a known id, StartFailed (and forgets
        the spec) when it cannot start.
        """
        self._raise_failure(self._dispatch(core.AddChild(spec)))
        return self._ref(spec.id)

    def terminate_child(self, child_id: str) -> None:
        """Stop a child (waiting up to its shutdown timeout); its spec stays, `stopped`,
        except a temporary child's, which is forgotten. Raises NotFound."""
        self._dispatch(core.TerminateChild(child_id))

    def restart_child(self, child_id: str) -> pykka.ActorRef[Any]:
        """Start a stopped, failed, killed or disabled child again with a fresh restart
        window. Raises NotFound, Running, Restarting, StartFailed."""
        self._raise_failure(self._dispatch(core.RestartChild(child_id)))
        return self._ref(child_id)

    def delete_child(self, child_id: str) -> None:
        """Forget a child that is not running. Raises NotFound, Running, Restarting."""
        self._dispatch(core.DeleteChild(child_id))

    def which_children(self) -> list[dict[str, Any]]:
        """[{id, ref, kind, state, restarts, generation}] in start order; `ref` is None
        unless the child is running."""
        with self._lock:
            return [
                {
                    "id": child_id,
                    "ref": self._live_ref(child_id, child),
                    "kind": child.spec.kind,
                    "state": child.state.value,
                    "restarts": child.restarts,
                    "generation": child.generation,
                }
                for child_id, child in self._core.children.items()
            ]

    def count_children(self) -> dict[str, int]:
        """{specs, active, supervisors, workers}, as OTP's count_children."""
        with self._lock:
            children = list(self._core.children.values())
        return {
            "specs": len(children),
            "active": sum(1 for child in children if child.state is ChildState.RUNNING),
            "supervisors": sum(1 for child in children if child.spec.kind == "supervisor"),
            "workers": sum(1 for child in children if child.spec.kind == "worker"),
        }

    def snapshot(self) -> dict[str, Any]:
        """The status-tree node of DESIGN §7, recursively (same as `status_node`)."""
        return self.status_node()

    def status_node(self, details: bool = True) -> dict[str, Any]:
        """The status-tree node of DESIGN §7, recursively. Safe from any thread.

        The child table is copied under the lock; children's `status_details()` and
        sub-supervisors' nodes are read after it is released, so slow user code there
        never delays a restart. An exception in `status_details` shows as `details.error`.
        `details=False` leaves every `status_details()` out (states, restarts and errors only:
        a watcher that reads the tree twice a second need not call into 10,000 actors).
        """
        with self._lock:
            rows = [(self._child_node(child_id, child), self._live_actor(child_id, child))
                    for child_id, child in self._core.children.items()]
            node: dict[str, Any] = {
                "id": self._name,
                "kind": "supervisor",
                "strategy": self._core.options.strategy.value,
                "state": self._core.status.value,
                "restarts": 0,
                "last_error": None,
                "last_exit_at": None,
                "generation": self.generation,
            }
        node["children"] = [self._with_details(child_node, actor, details) for child_node, actor in rows]
        return node

    def current_generation(self, child_id: str) -> int | None:
        """The running incarnation's generation of `child_id`, or None."""
        with self._lock:
            child = self._core.children.get(child_id)
            return child.generation if child is not None and child.state in core.LIVE else None

    # --- executing the core's commands ------------------------------------------------

    def _dispatch(self, event: core.Event) -> core.Reply | None:
        """Feed `event` to the core, execute its commands, feed their outcomes back."""
        reply: core.Reply | None = None
        events: deque[core.Event] = deque([event])
        while events:
            now = Now(self._clock(), self._wall_clock())
            with self._lock:
                _, commands = core.step(self._core, events.popleft(), now)
            for command in commands:
                if isinstance(command, core.Reply):
                    reply = command
                outcome = self._execute(command)
                if outcome is not None:
                    events.append(outcome)
        if self._escalation is not None:
            self._escalate(self._escalation)
        return reply

    def _execute(self, command: core.Command) -> core.Event | None:
        if isinstance(command, core.Start):
            return self._start(command.child_id)
        if isinstance(command, core.Terminate):
            return self._terminate(command.child_ids, command.parallel)
        if isinstance(command, core.Fence):
            life = self._lives.get(command.child_id)
            if life is not None and life.incarnation.generation == command.generation:
                life.incarnation.fence()
                self._revoke(life.incarnation)
        elif isinstance(command, core.Schedule):
            self._schedule(command)
        elif isinstance(command, core.Log):
            log_event(self._component, command.event, details=command.details, action_taken=command.action,
                      level=command.level)
        elif isinstance(command, core.NotifyDisabled):
            if self._on_child_disabled is not None:
                self._call_user("on_child_disabled", self._on_child_disabled, command.child_id, command.reason)
        elif isinstance(command, core.Escalate):
            self._escalation = command.reason
        return None

    def _start(self, child_id: str) -> core.Event:
        """Start one incarnation and wait for its on_start (bounded by start_timeout)."""
        with self._lock:
            spec = self._core.children[child_id].spec
        incarnation = Incarnation(child_id, self._generations(), on_exit=self._report_exit, clock=self._clock)
        with self._lock:
            self._lives[child_id] = _Life(incarnation, spec)
        generation = incarnation.generation
        push_spawning(incarnation)
        try:
            ref = spec.factory.start(*spec.args, **dict(spec.kwargs))
        except BaseException as exc:  # noqa: BLE001 - any BaseException while starting is a start failure
            return core.StartFailedEvent(child_id, generation, incarnation.start_error or ExitReason.from_exception(exc))
        finally:
            take_spawning()
        if incarnation.actor is None:
            ref.stop(block=False)
            reason = ExitReason(ExitKind.ERROR, "TypeError", f"{spec.factory!r} is not a SupervisedActor")
            return core.StartFailedEvent(child_id, generation, reason)
        if not incarnation.started.wait(spec.start_timeout):
            incarnation.fence()
            reason = ExitReason(ExitKind.KILLED, message=f"on_start exceeded {spec.start_timeout}s")
            return core.StartFailedEvent(child_id, generation, reason)
        if incarnation.start_error is not None:
            return core.StartFailedEvent(child_id, generation, incarnation.start_error)
        if self._fence is not None:
            self._fence.admit(child_id, generation)
        if spec.hang_timeout is not None and self._watchdog is None:
            self._watchdog = HangWatchdog(watched=self._watched, report=self._report_hang, clock=self._clock,
                                          name=self._name)
            self._watchdog.start()
        return core.Started(child_id, generation)

    def _terminate(self, child_ids: tuple[str, ...], parallel: bool) -> core.Terminated:
        """Stop `child_ids` in the order given; dynamic supervisors stop them all at once
        (OTP does not order them either), so 1,000 strategies stop in one timeout."""
        overran: list[tuple[str, int]] = []
        stopping: list[tuple[str, _Life, float | None]] = []
        for child_id in child_ids:
            life = self._lives.get(child_id)
            actor = life.incarnation.actor if life is not None else None
            if life is None or actor is None:
                continue  # never constructed (its start was interrupted): nothing runs
            try:
                actor.actor_ref.stop(block=False)
            except pykka.ActorDeadError:
                pass
            timeout = life.spec.shutdown
            deadline = None if timeout is None else time.monotonic() + timeout
            stopping.append((child_id, life, deadline))
            if not parallel:
                self._await_stop(child_id, life, deadline, overran)
        if parallel:
            for child_id, life, deadline in stopping:
                self._await_stop(child_id, life, deadline, overran)
        return core.Terminated(tuple(overran), stopped=len(stopping))

    def _await_stop(self, child_id: str, life: _Life, deadline: float | None, overran: list[tuple[str, int]]) -> None:
        incarnation = life.incarnation
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not incarnation.exited.wait(remaining):
            overran.append((child_id, incarnation.generation))
        self._revoke(incarnation)

    def _schedule(self, command: core.Schedule) -> None:
        message = RetryDue(command.retry_id)
        if command.delay <= 0.0:
            self._tell_self(message)
            return
        timer = threading.Timer(command.delay, self._fire, args=(message,))
        timer.daemon = True
        self._timers.add(timer)
        timer.start()

    def _fire(self, message: RetryDue) -> None:
        self._timers.discard(threading.current_thread())  # type: ignore[arg-type]
        self._tell_self(message)

    def _tell_self(self, message: Any) -> None:
        try:
            self.actor_ref.tell(message)
        except pykka.ActorDeadError:
            pass  # the supervisor is gone; nobody is left to restart anything

    def _escalate(self, reason: str) -> None:
        """The core tripped: children are already stopped. Exit with reason `escalated`."""
        self._escalation = None
        self._incarnation.record_exit(ExitReason(ExitKind.ESCALATED, message=reason))
        top_level = self._incarnation.generation == 0
        if top_level and self._on_escalate is not None:
            self._call_user("on_escalate", self._on_escalate, reason)
        self._stop_once()

    def _call_user(self, name: str, callback: Callable[..., None], *args: Any) -> None:
        """User callbacks run outside the lock; whatever they raise is logged, never fatal."""
        try:
            callback(*args)
        except BaseException as exc:  # noqa: BLE001
            log_event(self._component, "callback_failed", details={"callback": name}, level="ERROR", exc=exc)

    def _revoke(self, incarnation: Incarnation) -> None:
        if self._fence is not None:
            self._fence.revoke(incarnation.child_id, incarnation.generation)

    # --- reports from other threads ---------------------------------------------------

    def _report_exit(self, incarnation: Incarnation) -> None:
        """Runs on the dying child's thread: hand the exit to the supervisor's thread."""
        self._tell_self(_ChildExited(incarnation))

    def _report_hang(self, incarnation: Incarnation) -> None:
        """Runs on the watchdog's thread."""
        self._tell_self(_ChildHung(incarnation))

    def _watched(self) -> list[tuple[Incarnation, float]]:
        with self._lock:
            return [
                (life.incarnation, life.spec.hang_timeout)
                for child_id, life in self._lives.items()
                if life.spec.hang_timeout is not None
                and (child := self._core.children.get(child_id)) is not None
                and child.state is ChildState.RUNNING
                and child.generation == life.incarnation.generation
            ]

    # --- reading --------------------------------------------------------------------

    def _raise_failure(self, reply: core.Reply | None) -> None:
        if reply is not None and reply.error is not None:
            raise reply.error

    def _ref(self, child_id: str) -> pykka.ActorRef[Any]:
        with self._lock:
            ref = self._live_ref(child_id, self._core.children[child_id])
        assert ref is not None
        return ref

    def _live_actor(self, child_id: str, child: core.Child) -> SupervisedActor | None:
        """Caller holds the lock."""
        life = self._lives.get(child_id)
        if child.state not in core.LIVE or life is None or life.incarnation.generation != child.generation:
            return None
        return life.incarnation.actor

    def _live_ref(self, child_id: str, child: core.Child) -> pykka.ActorRef[Any] | None:
        actor = self._live_actor(child_id, child)
        return actor.actor_ref if actor is not None else None

    def _child_node(self, child_id: str, child: core.Child) -> dict[str, Any]:
        return {
            "id": child_id,
            "kind": child.spec.kind,
            "state": child.state.value,
            "restarts": child.restarts,
            "last_error": child.last_error,
            "last_exit_at": child.last_exit_at,
            "started_at": child.started_at if child.state in core.LIVE else None,
            "generation": child.generation,
            "children": [],
        }

    def _with_details(self, node: dict[str, Any], actor: SupervisedActor | None, details: bool) -> dict[str, Any]:
        """Runs outside the lock: sub-supervisor nodes and user `status_details()`."""
        if isinstance(actor, Supervisor):
            sub = actor.status_node(details)
            node["strategy"] = sub["strategy"]
            node["children"] = sub["children"]
        elif details and actor is not None and hasattr(actor, "status_details"):
            try:
                node["details"] = actor.status_details()
            except BaseException as exc:  # noqa: BLE001 - user code: logged, never fatal to the status read
                node["details"] = {"error": f"{type(exc).__name__}: {exc}"}
                log_event(self._component, "callback_failed",
                          details={"callback": "status_details", "child": node["id"]}, level="ERROR", exc=exc)
        return node


def tree_status(ref: pykka.ActorRef[Any], details: bool = True) -> dict[str, Any]:
    """The status tree under a supervisor, read without going through its inbox.

    A supervisor busy waiting out a child's shutdown timeout still answers this at once,
    which is what an operator looking at a troubled node needs. Safe from any thread.
    `details=False`: without the children's `status_details()`.
    """
    actor = actor_of(ref)
    if not isinstance(actor, Supervisor):
        raise TypeError(f"{ref!r} is not a Supervisor")
    return actor.status_node(details)
