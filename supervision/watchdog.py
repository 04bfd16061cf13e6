"""Hang watchdog: a daemon thread that spots children stuck inside one message.

One deadline per child: a busy child is looked at when its own `hang_timeout` since its
last sign of life (`busy_since`, moved on by `progress()`) runs out; an idle child at
least every quarter of its own timeout, so a child that becomes busy is caught within
about 1.25 × its timeout whatever its siblings' timeouts are. It only reads incarnation
stamps and tells the supervisor; it never blocks on an actor, so a hung child cannot
hang the watchdog.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterable

from supervision.incarnation import Incarnation

Watched = tuple[Incarnation, float]  # (incarnation, hang_timeout seconds)
IDLE_LOOKS_PER_TIMEOUT = 4
MAX_WAIT = 1.0  # bounds the wait when the clock is not the real one (tests move it by hand)
MIN_WAIT = 0.005


class HangWatchdog:
    def __init__(
        self,
        watched: Callable[[], Iterable[Watched]],
        report: Callable[[Incarnation], None],
        clock: Callable[[], float],
        name: str,
    ) -> None:
        self._watched = watched
        self._report = report
        self._clock = clock
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"hang-watchdog:{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def check_once(self) -> list[Incarnation]:
        now = self._clock()
        hung = []
        for incarnation, hang_timeout in self._watched():
            busy_since = incarnation.busy_since
            if busy_since is None or incarnation.hang_reported or incarnation.fenced:
                continue
            if now - busy_since > hang_timeout:
                incarnation.hang_reported = True
                hung.append(incarnation)
                self._report(incarnation)
        return hung

    def next_wait(self) -> float:
        """Seconds until the earliest child deadline (busy) or look (idle)."""
        now = self._clock()
        wait = MAX_WAIT
        for incarnation, hang_timeout in self._watched():
            busy_since = incarnation.busy_since
            if busy_since is not None and not incarnation.hang_reported:
                wait = min(wait, busy_since + hang_timeout - now)
            else:
                wait = min(wait, hang_timeout / IDLE_LOOKS_PER_TIMEOUT)
        return max(MIN_WAIT, wait)

    def _run(self) -> None:
        while not self._stopped.wait(self.next_wait()):
            self.check_once()
