"""Request-weight budget: how much may be sent now, and who goes first (F5).

Pure policy with an injectable monotonic clock; no I/O, no sleeping. The
connector asks ``acquire`` before every request and reports every reply to
``observe``; a refusal is returned to the caller as RATE_LIMITED with the wait,
so the caller (not this module) decides whether to defer.

Three limits, in the order they are checked:
1. a venue ban: after 429/418 nothing is sent until Retry-After has passed
   (else exponential backoff with jitter). Stops wait too: sending into a 429
   escalates to a 418 IP ban, which would block stops for much longer.
   Exchange-side stops (algoOrder) exist for exactly this window.
2. weight headroom: the venue's ``X-MBX-USED-WEIGHT-1M`` (plus what we spent
   since that header) against the per-minute limit; each priority may only use
   a share of it, so BACKGROUND is refused first, then ENTRY, then EXIT.
3. pacing: a token bucket on requests per second. Every 429 halves the rate;
   each clean period without one doubles it back up to the maximum. STOP is
   never paced: it takes its token on credit, and the other priorities pay the
   debt back (at most STOP_BORROW_TOKENS of it, or the bucket's capacity, so
   they are never starved for long); EXIT needs one token, ENTRY and BACKGROUND
   must leave a reserve. Pacing is our own caution; the venue's ban (1.) and its
   weight limit (2.) bind stops too.

``RequestBudget`` is the seam for a Redis-shared implementation (DESIGN §3:
several processes on one account share one budget); ``WeightBudget`` is the
in-process one. Thread-safe.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol, runtime_checkable


class Priority(IntEnum):
    """Lower value = more important. Stops and exits reduce risk; they go first."""

    STOP = 0
    EXIT = 1
    ENTRY = 2
    BACKGROUND = 3


@dataclass(frozen=True)
class BudgetDecision:
    """``allowed`` or not; if not, ``wait_s`` until it is worth asking again and why."""

    allowed: bool
    wait_s: float = 0.0
    reason: str = ""


@runtime_checkable
class RequestBudget(Protocol):
    """What the connector needs from a budget; a Redis-backed bucket implements the same three calls."""

    def acquire(self, priority: Priority, weight: int = 1) -> BudgetDecision:
        """Reserve room for one request of ``weight`` at ``priority``, or say how long to wait."""

    def observe(self, *, status: int | None, used_weight: int | None, retry_after_s: float | None) -> None:
        """Feed back one reply: HTTP status (None: no reply), the weight header, Retry-After."""

    def snapshot(self) -> dict[str, Any]:
        """Current state for the status tree and metrics."""


# Share of the per-minute weight limit each priority may use.
DEFAULT_WEIGHT_SHARE: Mapping[Priority, float] = {
    Priority.STOP: 1.0,
    Priority.EXIT: 0.95,
    Priority.ENTRY: 0.8,
    Priority.BACKGROUND: 0.6,
}
# Fraction of the token bucket a priority must leave untouched (negative: never paced, borrows).
STOP_BORROW_TOKENS = 8.0  # the debt a borrowing priority (STOP) may leave at least, whatever the rate

DEFAULT_TOKEN_RESERVE: Mapping[Priority, float] = {
    Priority.STOP: -1.0,
    Priority.EXIT: 0.0,
    Priority.ENTRY: 0.25,
    Priority.BACKGROUND: 0.5,
}


class WeightBudget:
    """In-process budget following the venue's weight headers and rate-limit replies."""

    def __init__(
        self,
        *,
        weight_limit: int = 2400,
        window_s: float = 60.0,
        max_rate_per_s: float = 20.0,
        min_rate_per_s: float = 0.5,
        burst_s: float = 1.0,
        clean_period_s: float = 30.0,
        max_backoff_s: float = 60.0,
        jitter: float = 0.2,
        weight_share: Mapping[Priority, float] | None = None,
        token_reserve: Mapping[Priority, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if weight_limit <= 0 or window_s <= 0 or not 0 < min_rate_per_s <= max_rate_per_s:
            raise ValueError("weight_limit, window_s must be > 0 and 0 < min_rate_per_s <= max_rate_per_s")
        self.weight_limit = weight_limit
        self.window_s = window_s
        self.max_rate_per_s = max_rate_per_s
        self.min_rate_per_s = min_rate_per_s
        self.burst_s = burst_s
        self.clean_period_s = clean_period_s
        self.max_backoff_s = max_backoff_s
        self.jitter = jitter
        self._share = dict(weight_share or DEFAULT_WEIGHT_SHARE)
        self._reserve = dict(token_reserve or DEFAULT_TOKEN_RESERVE)
        self._clock = clock
        self._rng = rng
        self._lock = threading.Lock()
        now = clock()
        self._spent: deque[tuple[float, int, int]] = deque()  # (time, weight, sequence number)
        self._seq = 0
        self._header_used: int | None = None
        self._header_at = now
        self._header_seq = 0
        self._blocked_until = now
        self._rate = max_rate_per_s
        self._tokens = self._capacity()
        self._tokens_at = now
        self._calm_since = now  # last 429 or last ramp step
        self._strikes = 0
        self.limited_count = 0

    # -- RequestBudget ---------------------------------------------------------

    def acquire(self, priority: Priority, weight: int = 1) -> BudgetDecision:
        with self._lock:
            now = self._clock()
            self._ramp(now)
            self._prune(now)
            if now < self._blocked_until:
                return BudgetDecision(False, self._blocked_until - now,
                                      f"venue rate limit: blocked for {self._blocked_until - now:.2f}s")
            cap = self._share[priority] * self.weight_limit
            used = self._used(now)
            if weight > 0 and used + weight > cap:
                wait = self._weight_wait(now, used, weight, cap)
                return BudgetDecision(False, wait, f"weight headroom: used {used}/{self.weight_limit}, "
                                                   f"{priority.name} may use {cap:g}")
            self._refill(now)
            need = self._token_need(priority)
            if need is not None and self._tokens < need:
                wait = (need - self._tokens) / self._rate
                return BudgetDecision(False, wait, f"paced at {self._rate:g} req/s, {priority.name} deferred")
            self._tokens = max(self._tokens - 1.0, -self._debt_limit())
            self._seq += 1
            self._spent.append((now, weight, self._seq))
            return BudgetDecision(True)

    def observe(self, *, status: int | None, used_weight: int | None, retry_after_s: float | None) -> None:
        with self._lock:
            now = self._clock()
            if used_weight is not None:
                self._header_used = used_weight
                self._header_at = now
                self._header_seq = self._seq
            if status in (418, 429):
                self._on_limited(now, retry_after_s)
            else:
                self._ramp(now)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            self._prune(now)
            return {
                "rate_per_s": self._rate,
                "max_rate_per_s": self.max_rate_per_s,
                "used_weight": self._used(now),
                "weight_limit": self.weight_limit,
                "blocked_for_s": max(0.0, self._blocked_until - now),
                "strikes": self._strikes,
                "limited_count": self.limited_count,
            }

    # -- policy ------------------------------------------------------------------

    @property
    def rate_per_s(self) -> float:
        """Current pacing rate (halved after each 429, ramped back when calm)."""
        return self._rate

    def _on_limited(self, now: float, retry_after_s: float | None) -> None:
        self._strikes += 1
        self.limited_count += 1
        if retry_after_s is None:
            backoff = min(self.max_backoff_s, 2.0 ** (self._strikes - 1))
            retry_after_s = backoff * (1.0 + self.jitter * self._rng())
        self._blocked_until = max(self._blocked_until, now + retry_after_s)
        self._refill(now)
        self._rate = max(self.min_rate_per_s, self._rate / 2.0)
        self._tokens = min(self._tokens, self._capacity())
        self._calm_since = now

    def _ramp(self, now: float) -> None:
        while self._rate < self.max_rate_per_s and now - self._calm_since >= self.clean_period_s:
            self._refill(now)
            self._rate = min(self.max_rate_per_s, self._rate * 2.0)
            self._calm_since += self.clean_period_s
        if self._rate >= self.max_rate_per_s and now - self._calm_since >= self.clean_period_s:
            self._strikes = 0

    def _capacity(self) -> float:
        return max(1.0, self._rate * self.burst_s)

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._tokens_at)
        self._tokens = min(self._capacity(), self._tokens + elapsed * self._rate)
        self._tokens_at = now

    def _token_need(self, priority: Priority) -> float | None:
        """Tokens the bucket must hold for `priority` to go now; None: never paced (a borrowing
        priority, STOP: soak seeds 480472 and 724076, a dip crossing many stops right after a flood)."""
        reserve = self._reserve[priority]
        if reserve < 0:
            return None
        return 1.0 + reserve * (self._capacity() - 1.0)

    def _debt_limit(self) -> float:
        """How far below zero the bucket may go: what the other priorities pay back at most."""
        return max(self._capacity(), STOP_BORROW_TOKENS)

    def _prune(self, now: float) -> None:
        horizon = now - self.window_s
        while self._spent and self._spent[0][0] <= horizon:
            self._spent.popleft()
        if self._header_used is not None and now - self._header_at >= self.window_s:
            self._header_used = None

    def _used(self, now: float) -> int:
        local = sum(w for _, w, _ in self._spent)
        if self._header_used is None:
            return local
        since_header = sum(w for _, w, seq in self._spent if seq > self._header_seq)
        return max(local, self._header_used + since_header)

    def _weight_wait(self, now: float, used: int, weight: int, cap: float) -> float:
        excess = used + weight - cap
        freed = 0
        for t, w, _ in self._spent:
            freed += w
            if freed >= excess:
                return max(0.0, t + self.window_s - now)
        if self._header_used is not None:
            return max(0.0, self._header_at + self.window_s - now)
        return self.window_s


# -- request weights (Binance USD-M futures, IP limit) ------------------------------

_DEPTH_WEIGHTS = ((50, 2), (100, 5), (500, 10), (1000, 20))
_PATH_WEIGHTS: Mapping[tuple[str, str], int] = {
    ("POST", "/fapi/v1/order"): 0,  # counts against the order-rate limit, not IP weight
    ("GET", "/fapi/v1/order"): 1,
    ("DELETE", "/fapi/v1/order"): 1,
    ("POST", "/fapi/v1/algoOrder"): 0,
    ("GET", "/fapi/v1/algoOrder"): 1,
    ("DELETE", "/fapi/v1/algoOrder"): 1,
    ("GET", "/fapi/v1/openAlgoOrders"): 1,
    ("GET", "/fapi/v2/positionRisk"): 5,
    ("GET", "/fapi/v3/positionRisk"): 5,
    ("GET", "/fapi/v2/account"): 5,
    ("GET", "/fapi/v3/account"): 5,
    ("GET", "/fapi/v2/balance"): 5,
    ("GET", "/fapi/v3/balance"): 5,
    ("GET", "/fapi/v1/exchangeInfo"): 1,
    ("GET", "/fapi/v1/time"): 1,
    ("GET", "/fapi/v1/ping"): 1,
}


def request_weight(method: str, path: str, params: Mapping[str, Any] | None = None) -> int:
    """IP weight of one request as the venue documents it (shared by connector and simulator)."""
    params = params or {}
    if path == "/fapi/v1/depth":
        limit = int(params.get("limit", 500))
        for bound, weight in _DEPTH_WEIGHTS:
            if limit <= bound:
                return weight
        return _DEPTH_WEIGHTS[-1][1]
    if path == "/fapi/v1/openOrders":
        return 1 if params.get("symbol") else 40
    return _PATH_WEIGHTS.get((method.upper(), path), 1)


def retry_after_ceil(seconds: float) -> int:
    """Retry-After is whole seconds on the wire; never round a wait down to zero."""
    return max(1, math.ceil(seconds))
