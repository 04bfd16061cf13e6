"""Pure restart policy: which children to restart, whether to restart, when the window trips.

Nothing here touches threads, actors or clocks: callers pass `now`. The supervisor's
core (`core.py`) is built from these pieces; tests drive them directly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Sequence


class RestartStrategy(str, Enum):
    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"
    DYNAMIC = "dynamic"  # OTP simple_one_for_one: children added at run time, one_for_one rules


class RestartType(str, Enum):
    PERMANENT = "permanent"  # always restarted
    TRANSIENT = "transient"  # restarted only after an abnormal exit
    TEMPORARY = "temporary"  # never restarted; its spec is forgotten when it ends


class ExitKind(str, Enum):
    NORMAL = "normal"  # the actor stopped (itself or via ActorRef.stop)
    SHUTDOWN = "shutdown"  # raised `Shutdown`, or terminated by its supervisor
    ERROR = "error"  # an exception escaped on_start / a tell handler / on_stop
    HUNG = "hung"  # busy longer than hang_timeout: fenced and abandoned
    KILLED = "killed"  # did not stop within its shutdown timeout: abandoned
    ESCALATED = "escalated"  # a supervisor whose restart intensity tripped


@dataclass(frozen=True)
class ExitReason:
    kind: ExitKind
    error_type: str | None = None
    message: str | None = None

    @property
    def abnormal(self) -> bool:
        return self.kind not in (ExitKind.NORMAL, ExitKind.SHUTDOWN)

    def describe(self) -> str:
        if self.error_type:
            return f"{self.kind.value}: {self.error_type}: {self.message}"
        return self.kind.value if not self.message else f"{self.kind.value}: {self.message}"

    @classmethod
    def from_exception(cls, exc: BaseException, kind: ExitKind = ExitKind.ERROR) -> ExitReason:
        return cls(kind=kind, error_type=type(exc).__name__, message=str(exc))


NORMAL_EXIT = ExitReason(ExitKind.NORMAL)
SHUTDOWN_EXIT = ExitReason(ExitKind.SHUTDOWN)


def should_restart(restart: RestartType, reason: ExitReason) -> bool:
    """OTP's rule: permanent always, transient only when abnormal, temporary never."""
    if restart is RestartType.PERMANENT:
        return True
    if restart is RestartType.TRANSIENT:
        return reason.abnormal
    return False


def plan_restart(strategy: RestartStrategy, order: Sequence[str], failed: str) -> list[str]:
    """Ids to restart, in start order, when `failed` dies and must be restarted.

    `order` holds the children that take part (running, or waiting for their own
    restart). The running ones in the result other than `failed` are terminated first,
    in reverse order; the waiting ones give up their own restart and follow `failed`.
    """
    if strategy is RestartStrategy.ONE_FOR_ALL:
        return list(order)
    if strategy is RestartStrategy.REST_FOR_ONE:
        return list(order[order.index(failed):])
    return [failed]


@dataclass
class RestartWindow:
    """Sliding restart-intensity window (OTP `add_restart`).

    The restart that makes the count exceed `intensity` within `period` seconds trips:
    with intensity 3 the 4th restart inside the period trips.
    """

    intensity: int
    period: float
    _stamps: deque[float] = field(default_factory=deque)

    def add(self, now: float) -> bool:
        """Record a restart at `now`; True when the window is now exceeded (tripped)."""
        self._stamps.append(now)
        while self._stamps and now - self._stamps[0] > self.period:
            self._stamps.popleft()
        return len(self._stamps) > self.intensity

    def count(self, now: float) -> int:
        return sum(1 for stamp in self._stamps if now - stamp <= self.period)

    def reset(self) -> None:
        self._stamps.clear()


def backoff_delay(
    consecutive: int, min_backoff: float, max_backoff: float, jitter: float, rand: float
) -> float:
    """`min(max_backoff, min_backoff * 2**n) * (1 + rand * jitter)`, with `rand` in [0, 1)."""
    if min_backoff <= 0.0:
        return 0.0
    base = min(max_backoff, min_backoff * (2 ** max(consecutive, 0)))
    return base * (1.0 + rand * jitter)
