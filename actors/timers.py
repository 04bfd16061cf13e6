"""TimerWheel: one thread runs every strategy timer.

A `threading.Timer` per strategy timer would be a thread each: 10,000 strategies with
two timers would be 20,000 threads. Here a single daemon thread sleeps until the
earliest deadline and calls the callback, which must only `tell` an actor (never block).
Deadlines are wall-clock epoch seconds because strategy schedules are absolute times.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Any, Callable

import pykka

from runtime.logging import log_event


class TimerWheel:
    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self._clock = wall_clock
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="timer-wheel", daemon=True)
        self._thread.start()

    def schedule(self, at: float, callback: Callable[[], None]) -> int:
        """Call `callback` at epoch `at` (at once if past). Returns a token for `cancel`."""
        token = next(self._ids)
        with self._cond:
            heapq.heappush(self._heap, (at, token, callback))
            self._cond.notify()
        return token

    def tell_at(self, at: float, ref: pykka.ActorRef[Any], message: Any) -> int:
        """Tell `message` to `ref` at epoch `at`; a dead actor (restarted meanwhile) is skipped."""

        def fire() -> None:
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                pass

        return self.schedule(at, fire)

    def tell_after(self, delay_s: float, ref: pykka.ActorRef[Any], message: Any) -> int:
        return self.tell_at(self._clock() + delay_s, ref, message)

    def cancel(self, token: int) -> None:
        with self._cond:
            self._cancelled.add(token)

    def pending(self) -> int:
        with self._cond:
            return sum(1 for _, token, _ in self._heap if token not in self._cancelled)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > self._clock()):
                    timeout = None if not self._heap else max(0.0, self._heap[0][0] - self._clock())
                    self._cond.wait(timeout if timeout is None else min(timeout, 1.0))
                if self._stopped:
                    return
                _, token, callback = heapq.heappop(self._heap)
                if token in self._cancelled:
                    self._cancelled.discard(token)
                    continue
            try:
                callback()
            except Exception as exc:  # noqa: BLE001 - one bad callback must not stop every timer
                log_event("timer-wheel", "timer_callback_failed", details={"error": repr(exc)}, level="ERROR")
