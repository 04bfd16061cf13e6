"""The priority of one order in flight, which a stop crossing may raise while it runs.

Issue 10, soak seed 11 t18: a strategy's exit (priority EXIT) was waiting out the budget's
pacing or its backoff before a resend when its position's stop crossed. The stop-loss cannot
run beside it (one order per strategy at a time, the same intent: never a second exit order),
so the crossing raises the exit in flight to stop priority instead, and its wait ends: the
sender asks the budget again at once, at the new priority (stops may borrow tokens).

Pure: no I/O, never sends. Thread-safe: raised from the engine's actor thread, read and waited
on by the order's worker. Never lowers a priority.
"""

from __future__ import annotations

import threading
import time

from runtime.venue.budget import Priority

CANCEL_POLL_S = 0.05  # how often a wait looks at the operator's cancel (a raise wakes it at once)


class Urgency:
    def __init__(self, priority: Priority) -> None:
        self._priority = priority
        self._raised = threading.Event()  # set by a raise, consumed by the wait it ends
        self._lock = threading.Lock()

    @property
    def priority(self) -> Priority:
        return self._priority

    def raise_to(self, priority: Priority) -> bool:
        """Make the order at least this urgent; True when that raised it (a lower one changes nothing)."""
        with self._lock:
            if priority >= self._priority:
                return False
            self._priority = priority
        self._raised.set()
        return True

    def wait(self, seconds: float, cancel: threading.Event) -> bool:
        """Wait up to `seconds` before the next send; True when `cancel` is set. Ends early, once,
        when the priority was raised since the last wait: the wait was sized for the old priority."""
        deadline = time.monotonic() + seconds
        while not cancel.is_set():
            left = deadline - time.monotonic()
            if self._raised.wait(max(0.0, min(left, CANCEL_POLL_S))):
                self._raised.clear()
                return cancel.is_set()
            if left <= CANCEL_POLL_S:
                return cancel.is_set()
        return True
