"""When to try the feed's WebSocket again, and when to tell degradation (F7, F8).

DESIGN §5 F7: reconnect at 0, 1, 2, 4, 8 s ... capped at 60 s, plus jitter,
forever; more than 5 consecutive failures -> REDUCED + alert; the count resets
only after a *stable* connection, so a link that connects and drops again at
once keeps backing off instead of hammering the venue at 0 s.

Pure: the feed actor owns the socket and the timer; this module only says how
long to wait. Randomness is injectable so tests are exact.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class ReconnectConfig:
    base_delay: float = 1.0  # the delay of the 2nd attempt; doubles afterwards
    max_delay: float = 60.0  # cap before jitter
    jitter: float = 0.25  # delay * (1 + jitter * rand()), rand in [0, 1)
    reduced_after: int = 5  # more consecutive failures than this -> REDUCED + alert
    stable_after: float = 30.0  # a connection up this long resets the count


@dataclass(frozen=True)
class ReconnectPlan:
    """The next attempt: wait ``delay`` seconds, then connect."""

    attempt: int  # 1-based attempt number within this outage
    delay: float
    failures: int  # consecutive failures so far (drops of unstable links included)
    reduced: bool  # the REDUCED signal for this feed is raised
    alert: str | None  # set once, on the failure that crossed ``reduced_after``


class ReconnectSchedule:
    """Backoff state of one feed connection.

    Calls from the feed actor:

    - ``on_disconnected(now)`` when an established connection drops (or at
      start-up, before the first attempt) -> plan for the next attempt;
    - ``on_attempt_failed(now)`` when a connect attempt fails -> next plan;
    - ``on_connected(now)`` when a connect attempt succeeds;
    - ``poll(now)`` from a timer: returns True once, when the connection has
      been up ``stable_after`` seconds and a raised REDUCED should be cleared.
    """

    def __init__(
        self,
        config: ReconnectConfig | None = None,
        *,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config or ReconnectConfig()
        self._rand = rand
        self._failures = 0
        self._attempt = 0
        self._connected_at: float | None = None
        self._reduced = False

    @property
    def failures(self) -> int:
        return self._failures

    @property
    def reduced(self) -> bool:
        return self._reduced

    @property
    def connected(self) -> bool:
        return self._connected_at is not None

    def delay_for(self, failures: int) -> float:
        """Delay before the next attempt after ``failures`` consecutive failures, without jitter."""
        if failures <= 0:
            return 0.0
        cfg = self.config
        exponent = min(failures - 1, 32)  # 2**32 s is already far past any cap
        return min(cfg.max_delay, cfg.base_delay * (2.0**exponent))

    def on_disconnected(self, now: float) -> ReconnectPlan:
        """An established connection dropped (F7) or stalled (F8).

        A connection that lasted ``stable_after`` resets the backoff, so the
        first attempt is immediate. One that did not counts as a failure.
        """
        connected_at, self._connected_at = self._connected_at, None
        self._attempt = 0
        if connected_at is not None and now - connected_at >= self.config.stable_after:
            self._failures = 0
            self._reduced = False
            return self._plan(alert=None)
        if connected_at is not None:
            return self._fail()
        return self._plan(alert=None)

    def on_attempt_failed(self, now: float) -> ReconnectPlan:
        """A connect attempt failed; the next one waits longer."""
        self._connected_at = None
        return self._fail()

    def on_connected(self, now: float) -> None:
        """A connect attempt succeeded; the count resets once it proves stable."""
        self._connected_at = now

    def poll(self, now: float) -> bool:
        """True once when a stable connection clears the failure count (and REDUCED, if raised)."""
        if self._connected_at is None or now - self._connected_at < self.config.stable_after:
            return False
        if self._failures == 0 and not self._reduced:
            return False
        was_reduced = self._reduced
        self._failures = 0
        self._reduced = False
        return was_reduced

    def _fail(self) -> ReconnectPlan:
        self._failures += 1
        alert = None
        if self._failures > self.config.reduced_after and not self._reduced:
            self._reduced = True
            alert = (
                f"feed reconnect failed {self._failures} times in a row "
                f"(> {self.config.reduced_after}): REDUCED; still retrying"
            )
        return self._plan(alert)

    def _plan(self, alert: str | None) -> ReconnectPlan:
        self._attempt += 1
        base = self.delay_for(self._failures)
        delay = base * (1.0 + self.config.jitter * self._rand())
        return ReconnectPlan(
            attempt=self._attempt,
            delay=delay,
            failures=self._failures,
            reduced=self._reduced,
            alert=alert,
        )


__all__ = ["ReconnectConfig", "ReconnectPlan", "ReconnectSchedule"]
