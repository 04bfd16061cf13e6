"""The pure part of issue 10's exit promotion (seed 11 t18): `actors.core.urgency.Urgency`.

No venue, no Redis: the priority of one order in flight only ever rises, and a raise ends the
sender's current wait (once), so it asks the budget again at the new priority.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from actors.core.urgency import Urgency
from runtime.venue.budget import Priority

LONG_S = 3600.0  # a wait nothing in these tests may sit out
JOIN_S = 10.0  # generous bound for a wait that must end (the box is loaded)


def _waiting(urgency: Urgency, cancel: threading.Event) -> tuple[threading.Thread, Callable[[], bool | None]]:
    """A sender waiting LONG_S in a thread; the second value reads what its wait returned."""
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(urgency.wait(LONG_S, cancel)), daemon=True)
    thread.start()
    return thread, lambda: result[0] if result else None


def test_issue10_t18_priority_only_rises():
    urgency = Urgency(Priority.EXIT)
    assert urgency.raise_to(Priority.ENTRY) is False and urgency.priority is Priority.EXIT, \
        "a lower priority never lowers an exit in flight"
    assert urgency.raise_to(Priority.STOP) is True and urgency.priority is Priority.STOP, "a stop crossing raises it"
    assert urgency.raise_to(Priority.STOP) is False, "a second crossing changes nothing (logged once)"
    assert urgency.raise_to(Priority.EXIT) is False and urgency.priority is Priority.STOP


def test_issue10_t18_a_raise_during_the_wait_ends_it_not_cancelled():
    urgency, cancel = Urgency(Priority.EXIT), threading.Event()
    thread, returned = _waiting(urgency, cancel)
    urgency.raise_to(Priority.STOP)
    thread.join(JOIN_S)
    assert not thread.is_alive() and returned() is False, \
        "a stop crossing ends the exit's wait (sized for EXIT) and it is not a cancel"


def test_issue10_t18_a_raise_before_the_wait_ends_the_next_wait_once():
    urgency, cancel = Urgency(Priority.EXIT), threading.Event()
    urgency.raise_to(Priority.STOP)  # raised while the sender was sending, not waiting
    assert urgency.wait(LONG_S, cancel) is False, "the next wait ends at once: it was sized for the old priority"
    thread, returned = _waiting(urgency, cancel)
    thread.join(0.2)
    assert thread.is_alive(), "the raise was consumed: a later wait (e.g. a Retry-After ban) is waited out"
    cancel.set()
    thread.join(JOIN_S)
    assert not thread.is_alive() and returned() is True, "an operator cancel (F25) still ends the wait"


def test_issue10_t18_a_wait_with_nothing_happening_elapses_uncancelled():
    urgency, cancel = Urgency(Priority.EXIT), threading.Event()
    assert urgency.wait(0.01, cancel) is False
    cancel.set()
    assert urgency.wait(LONG_S, cancel) is True, "a cancelled sender does not wait"
