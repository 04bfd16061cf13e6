"""Hang watchdog: a daemon thread that spots children stuck inside one message.

It only reads incarnation stamps and tells the supervisor; the supervisor decides.
It never blocks on an actor, so a hung child cannot hang the watchdog.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterable

from supervision.incarnation import Incarnation

Watched = tuple[Incarnation, float]  # (incarnation, hang_timeout seconds)


class HangWatchdog:
    def __init__(
        self,
        watched: Callable[[], Iterable[Watched]],
        report: Callable[[Incarnation], None],
        clock: Callable[[], float],
        interval: float,
        name: str,
    ) -> None:
        self._watched = watched
        self._report = report
        self._clock = clock
        self._interval = interval
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
            if busy_since is None or incarnation.hang_reported or incarnation.abandoned:
                continue
            if now - busy_since > hang_timeout:
                incarnation.hang_reported = True
                hung.append(incarnation)
                self._report(incarnation)
        return hung

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            self.check_once()
