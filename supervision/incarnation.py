"""One life of one child: its generation, its liveness stamps and how it ended.

An `Incarnation` is created by the supervisor before the actor is constructed and is
shared by three threads: the actor's (stamps progress, records its exit), the
supervisor's (starts, fences) and the watchdog's (reads `busy_since`). Fields are
written by one side each and read racily by design; `exited` is the only handshake.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from supervision.policy import NORMAL_EXIT, ExitReason


def monotonic() -> float:
    """Late-bound so that freezegun (which patches time.monotonic) is honoured."""
    return time.monotonic()


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
        self.actor: object | None = None
        self.started = threading.Event()
        self.exited = threading.Event()
        self.start_error: ExitReason | None = None
        self.exit_reason: ExitReason | None = None
        self.started_at: float | None = None
        self.exited_at: float | None = None
        self.busy_since: float | None = None
        self.messages_done = 0
        self.abandoned = False  # fenced: its results must never take effect
        self.hang_reported = False
        self._on_exit = on_exit
        self._lock = threading.Lock()

    @property
    def fenced(self) -> bool:
        return self.abandoned

    def record_exit(self, reason: ExitReason) -> None:
        """First recorded reason wins: a crash is not overwritten by the stop that follows."""
        with self._lock:
            if self.exit_reason is None:
                self.exit_reason = reason

    def mark_started(self) -> None:
        self.started_at = self.clock()
        if self.exit_reason is not None:
            self.start_error = self.exit_reason
        self.started.set()

    def finish(self) -> None:
        """Called once from the actor thread when its loop has ended."""
        self.record_exit(NORMAL_EXIT)
        self.exited_at = self.clock()
        if not self.started.is_set():
            self.start_error = self.exit_reason
            self.started.set()
        try:
            if self._on_exit is not None:
                self._on_exit(self)
        finally:
            self.exited.set()


class _Spawning(threading.local):
    incarnation: Incarnation | None = None


_spawning = _Spawning()


def push_spawning(incarnation: Incarnation) -> None:
    """Hand `incarnation` to the SupervisedActor about to be constructed in this thread."""
    _spawning.incarnation = incarnation


def take_spawning() -> Incarnation | None:
    incarnation, _spawning.incarnation = _spawning.incarnation, None
    return incarnation
