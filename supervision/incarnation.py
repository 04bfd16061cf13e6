"""One life of one child: its generation, its liveness stamps, how it ended, and its fence.

An `Incarnation` is created by the supervisor before the actor is constructed and is
shared by three threads: the actor's (stamps progress, records its exit, replies), the
supervisor's (starts, fences) and the watchdog's (reads `busy_since`). `record_exit` is
the one writer of `exit_reason` (first reason wins); `fence` is the one way an
incarnation is cut off. Replies and fencing share `_lock`, so a reply is either
delivered before the fence or never.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

import pykka

from supervision.policy import NORMAL_EXIT, ExitReason

if TYPE_CHECKING:
    from pykka._envelope import Envelope

    from supervision.actor import SupervisedActor


def monotonic() -> float:
    """Late-bound so that freezegun (which patches time.monotonic) is honoured."""
    return time.monotonic()


def fail_dead(envelope: Envelope[Any], actor_ref: object) -> None:
    """Answer an ask with ActorDeadError (a tell has no one to answer)."""
    if envelope.reply_to is None:
        return
    error = pykka.ActorDeadError(f"{actor_ref} stopped before handling the message")
    try:
        envelope.reply_to.set_exception(exc_info=(pykka.ActorDeadError, error, None))
    except queue.Full:
        pass  # already answered


class Incarnation:
    def __init__(
        self,
        child_id: str,
        generation: int,
        on_exit: Callable[[Incarnation], None] | None = None,
        clock: Callable[[], float] = monotonic,
    ) -> None:
        self.child_id = child_id
        self.generation = generation
        self.clock = clock
        self.actor: SupervisedActor | None = None
        self.started = threading.Event()
        self.exited = threading.Event()
        self.start_error: ExitReason | None = None
        self.exit_reason: ExitReason | None = None
        self.busy_since: float | None = None
        self.fenced = False
        self.hang_reported = False
        self._in_flight: Envelope[Any] | None = None
        self._on_exit = on_exit
        self._lock = threading.Lock()

    # --- actor thread -----------------------------------------------------------------

    def record_exit(self, reason: ExitReason) -> None:
        """First recorded reason wins: a crash is not overwritten by the stop that follows."""
        with self._lock:
            if self.exit_reason is None:
                self.exit_reason = reason

    def begin(self, envelope: Envelope[Any]) -> None:
        with self._lock:
            self._in_flight = envelope
            self.busy_since = self.clock()

    def progress(self) -> None:
        """The handler in progress is alive: its hang deadline starts again from now."""
        if self.busy_since is not None:
            self.busy_since = self.clock()

    def end(self) -> None:
        with self._lock:
            self._in_flight = None
            self.busy_since = None

    def reply(self, envelope: Envelope[Any], value: Any = None, exc_info: Any = None) -> None:
        """Answer an ask, unless this incarnation was fenced: then the caller gets ActorDeadError."""
        if envelope.reply_to is None:
            return
        with self._lock:
            if self.fenced:
                fail_dead(envelope, self.actor)
            elif exc_info is not None:
                envelope.reply_to.set_exception(exc_info=exc_info)
            else:
                envelope.reply_to.set(value)

    def mark_started(self) -> None:
        self.started.set()

    def finish(self) -> None:
        """Called once from the actor thread when its loop has ended."""
        self.record_exit(NORMAL_EXIT)
        if not self.started.is_set():
            self.start_error = self.exit_reason
            self.started.set()
        try:
            if self._on_exit is not None:
                self._on_exit(self)
        finally:
            self.exited.set()

    # --- supervisor thread ------------------------------------------------------------

    def fence(self) -> None:
        """Cut this incarnation off: its mailbox closes and its in-flight ask fails now.

        It is unregistered, `tell` is refused, queued and new asks fail with
        ActorDeadError, and whatever its running handler returns later is dropped.
        The thread itself cannot be killed; it ends when its handler returns.
        """
        with self._lock:
            if self.fenced:
                return
            self.fenced = True
            in_flight = self._in_flight
            if in_flight is not None:
                fail_dead(in_flight, self.actor)
        if self.actor is not None:
            self.actor.close_mailbox()


class _Spawning(threading.local):
    incarnation: Incarnation | None = None


_spawning = _Spawning()


def push_spawning(incarnation: Incarnation) -> None:
    """Hand `incarnation` to the SupervisedActor about to be constructed in this thread."""
    _spawning.incarnation = incarnation


def take_spawning() -> Incarnation | None:
    incarnation, _spawning.incarnation = _spawning.incarnation, None
    return incarnation


def spawning() -> bool:
    """True while a supervisor is constructing a child in this thread."""
    return _spawning.incarnation is not None
