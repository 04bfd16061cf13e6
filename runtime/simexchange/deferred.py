"""Work the simulated venue does later: an "unknown" order that executes seconds after it
arrived, the rest of a partial fill, a listenKey's expiry.

One daemon thread with a time-ordered heap (not a thread per job), so a test that
schedules hundreds of late executions costs one thread. ``cancel_all`` (reset,
stop) drops every pending job; a job already running finishes. Jobs take the
matching engine's lock themselves; a job that raises is logged, never fatal.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

from runtime.logging import log_event


class Deferred:
    """Run callables after a delay, in due order, on one thread; ``clock`` is monotonic seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._jobs: list[tuple[float, int, str, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def call_later(self, delay_s: float, job: Callable[[], None], what: str) -> None:
        """Run ``job`` in ``delay_s`` seconds (``what`` names it in logs)."""
        with self._cv:
            if self._stopped:
                return
            heapq.heappush(self._jobs, (self._clock() + max(0.0, delay_s), next(self._seq), what, job))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="simexchange-deferred", daemon=True)
                self._thread.start()
            self._cv.notify()

    def pending(self) -> int:
        with self._cv:
            return len(self._jobs)

    def cancel_all(self) -> None:
        with self._cv:
            self._jobs.clear()
            self._cv.notify()

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._cv:
            self._stopped = True
            self._jobs.clear()
            self._cv.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stopped and (not self._jobs or self._jobs[0][0] > self._clock()):
                    self._cv.wait(None if not self._jobs else max(0.0, self._jobs[0][0] - self._clock()))
                if self._stopped:
                    return
                _, _, what, job = heapq.heappop(self._jobs)
            try:
                job()
            except Exception as exc:
                log_event("simexchange", "deferred_job_failed", details={"job": what}, level="ERROR", exc=exc)
