"""The graceful stop's deadline (F26, soak seed 724076): pure policy over an injectable clock.

A service manager allows a stop only so long before it SIGKILLs (systemd's TimeoutStopSec,
90 s by default; the soak harness allows 60 s). A graceful stop that waits without bound
for the orders in flight can outlast it: during a 429 flood a stop-loss waits out Retry-After
again and again (a rate limit never counts as a failed attempt), so the SIGKILL comes
before the protective stops and before any line saying what was left.

So the stop has a deadline (`[node] stop_deadline_s`). Waiting for the tree and the orders in
flight ends `protect_reserve_s` before it, so the venue-side protective stops always get
their turn; at the deadline the daemon stops waiting. An order still in flight then stays
journaled and pending: the next start looks it up before any resend (F19), so nothing is
lost and nothing is sent twice. `Leftover` is what one line must name when that happens.

Never does: sleep, or read a clock other than the one it was given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

PROTECT_RESERVE_FRACTION = 0.25  # of the deadline kept for the protective stops...
PROTECT_RESERVE_MAX_S = 10.0  # ...but never more than this (one venue call per open position)


def _monotonic() -> float:
    return time.monotonic()  # looked up per call, so a frozen clock in a test applies


@dataclass
class StopDeadline:
    """The deadline of one graceful stop, counted from its construction."""

    deadline_s: float
    clock: Callable[[], float] = _monotonic
    started_at: float = field(init=False)

    def __post_init__(self) -> None:
        if not self.deadline_s > 0:
            raise ValueError(f"stop deadline must be > 0 s, got {self.deadline_s!r}")
        self.started_at = self.clock()

    @property
    def protect_reserve_s(self) -> float:
        return min(PROTECT_RESERVE_MAX_S, self.deadline_s * PROTECT_RESERVE_FRACTION)

    def elapsed(self) -> float:
        return max(0.0, self.clock() - self.started_at)

    def remaining(self) -> float:
        """Seconds until the deadline (0 once it has passed)."""
        return max(0.0, self.deadline_s - self.elapsed())

    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def for_waiting(self, timeout: float | None = None) -> float:
        """How long a wait for the tree or the orders in flight may still take (at most `timeout`):
        up to the deadline less the protective stops' reserve."""
        left = max(0.0, self.remaining() - self.protect_reserve_s)
        return left if timeout is None else min(timeout, left)

    def waiting_over(self) -> bool:
        return self.for_waiting() <= 0.0


@dataclass(frozen=True)
class Leftover:
    """What a stop that ran out of time leaves behind, for the next start to settle."""

    unprotected: tuple[str, ...]  # "strategy (SYMBOL qty)" of open positions with no venue-side stop
    in_doubt: tuple[str, ...]  # client ids of orders journaled and not settled

    def line(self, deadline_s: float, exit_code: int) -> str:
        return (f"graceful stop deadline ({deadline_s:g} s) passed: exiting with code {exit_code}; "
                f"positions left unprotected: {', '.join(self.unprotected) or 'none'}; "
                f"orders in doubt (journaled, settled by the next start before any resend): "
                f"{', '.join(self.in_doubt) or 'none'}")


def leftover(open_positions: Iterable[tuple[Any, Any]], runtimes: Mapping[str, Any],
             protected: Iterable[str]) -> Leftover:
    """`open_positions`: (strategy config, runtime) per open position; `runtimes`: strategy id ->
    runtime (or None) for every strategy; `protected`: strategy ids a venue-side stop holds."""
    held = set(protected)
    unprotected = tuple(f"{strategy.id} ({strategy.symbol} {runtime.quantity:g})"
                        for strategy, runtime in open_positions if strategy.id not in held)
    in_doubt = tuple(sorted(runtime.pending_order for runtime in runtimes.values()
                            if runtime is not None and getattr(runtime, "pending_order", "")))
    return Leftover(unprotected, in_doubt)
