"""What the execution engine does next with an order outcome (F1-F5).

The venue connector turns every reply (or its absence) into one outcome kind
at its edge (DESIGN §4); this module maps that kind and the attempt number to
one action. It never sends, sleeps or looks anything up itself.

| outcome | action |
| --- | --- |
| ACCEPTED, FILLED | DONE |
| DUPLICATE (-4116) | DONE: the order exists; the client id is the same intent |
| UNKNOWN (timeout, -1006/-1007/503, crash) | LOOKUP_THEN_RETRY: query by client id before any resend |
| NOT_FOUND (the lookup found nothing) | RETRY_AFTER backoff: it is safe to send again |
| REJECTED_TRANSIENT (5xx, -1001), network error | RETRY_AFTER backoff 1/2/4 s + jitter |
| RATE_LIMITED (429/418) | RETRY_AFTER Retry-After if given, else backoff |
| REJECTED_PERMANENT (-2019, -1121, -2010) | ABORT: SAFETY_ABORT, strategy ``failed`` with the reason |
| TOKEN_INVALID (-2015, -2014, 401) | ABORT_ACCOUNT: no retry, SAFETY_ABORT, pause the account |

Attempts (F1 "retry, max 3, backoff 1/2/4 s"): the first send plus at most
``max_retries`` (3) resends, waiting 1, 2, then 4 s. An outcome that would need
a fourth resend is SAFETY_ABORT with the position unchanged. An UNKNOWN is
always looked up first, even on the last attempt -- an order that may have
filled is never abandoned as "unchanged"; the lookup's NOT_FOUND then decides.
The client order id is reused on every resend, so a resend of an order that
did land is answered DUPLICATE, never filled twice.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum
from typing import Callable

from runtime.venue.outcomes import OutcomeKind  # the one vocabulary of outcomes, from the venue's edge


class RetryAction(str, Enum):
    DONE = "DONE"
    LOOKUP_THEN_RETRY = "LOOKUP_THEN_RETRY"
    RETRY_AFTER = "RETRY_AFTER"
    ABORT = "ABORT"
    ABORT_ACCOUNT = "ABORT_ACCOUNT"


@dataclass(frozen=True)
class RetryConfig:
    max_retries: int = 3
    backoff: tuple[float, ...] = (1.0, 2.0, 4.0)  # before resend 1, 2, 3 (last value repeats)
    jitter: float = 0.2  # delay * (1 + jitter * rand())
    max_retry_after: float = 60.0  # cap on a venue-supplied Retry-After


@dataclass(frozen=True)
class RetryDecision:
    action: RetryAction
    attempt: int  # the send whose outcome was classified (1 = first send)
    delay: float = 0.0  # seconds to wait before the resend (RETRY_AFTER only)
    retry_allowed: bool = False  # LOOKUP_THEN_RETRY: may the engine resend if the lookup finds nothing?
    safety_abort: bool = False  # emit SAFETY_ABORT; runtime position stays unchanged
    pause_account: bool = False  # F3: pause every strategy of the order's account
    reason: str = ""


class RetryPolicy:
    """Outcome + attempt -> decision. ``rand`` is injectable so jitter is testable."""

    def __init__(self, config: RetryConfig | None = None, *, rand: Callable[[], float] = random.random) -> None:
        self.config = config or RetryConfig()
        self._rand = rand

    def backoff(self, attempt: int) -> float:
        """The jittered wait before resend number ``attempt`` (1-based)."""
        steps = self.config.backoff
        base = steps[min(attempt, len(steps)) - 1]
        return base * (1.0 + self.config.jitter * self._rand())

    def decide(
        self,
        kind: OutcomeKind | str | Enum,
        attempt: int,
        *,
        retry_after: float | None = None,
        detail: str = "",
    ) -> RetryDecision:
        """Classify the outcome of send number ``attempt`` (1 = the first send).

        ``retry_after``: seconds from a 429/418 Retry-After header, if any.
        ``detail``: the venue's message/code, carried into the reason.
        """
        if attempt < 1:
            raise ValueError("attempt is 1-based")
        kind = OutcomeKind(getattr(kind, "value", kind))  # also the connector's own enum of the same words
        cfg = self.config
        can_retry = attempt <= cfg.max_retries
        suffix = f": {detail}" if detail else ""

        if kind in (OutcomeKind.ACCEPTED, OutcomeKind.FILLED, OutcomeKind.DUPLICATE):
            return RetryDecision(RetryAction.DONE, attempt, reason=f"{kind.value}{suffix}")
        if kind is OutcomeKind.TOKEN_INVALID:
            return RetryDecision(
                RetryAction.ABORT_ACCOUNT, attempt, safety_abort=True, pause_account=True,
                reason=f"TOKEN_INVALID{suffix}: no retry; every strategy of the account paused until re-auth",
            )
        if kind is OutcomeKind.REJECTED_PERMANENT:
            return RetryDecision(RetryAction.ABORT, attempt, safety_abort=True,
                                 reason=f"REJECTED_PERMANENT{suffix}")
        if kind is OutcomeKind.UNKNOWN:
            return RetryDecision(
                RetryAction.LOOKUP_THEN_RETRY, attempt,
                retry_allowed=can_retry,  # the lookup's NOT_FOUND is decided (and delayed) on its own
                reason=f"UNKNOWN{suffix}: query by client id before any resend",
            )
        # NOT_FOUND, REJECTED_TRANSIENT, RATE_LIMITED: nothing is live at the venue; resend if allowed.
        if not can_retry:
            return RetryDecision(
                RetryAction.ABORT, attempt, safety_abort=True,
                reason=f"{kind.value}{suffix}: {cfg.max_retries} retries exhausted; position unchanged",
            )
        delay = self.backoff(attempt)
        if kind is OutcomeKind.RATE_LIMITED and retry_after is not None:
            delay = min(max(retry_after, 0.0), cfg.max_retry_after)
        return RetryDecision(RetryAction.RETRY_AFTER, attempt, delay=delay, retry_allowed=True,
                             reason=f"{kind.value}{suffix}: retry {attempt}/{cfg.max_retries}")


__all__ = ["OutcomeKind", "RetryAction", "RetryConfig", "RetryDecision", "RetryPolicy"]
