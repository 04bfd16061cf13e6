"""Request budget (F5): venue weight headers, Retry-After, priorities, halving and ramp-back. Fake clock."""

from __future__ import annotations

import pytest
from freezegun import freeze_time

from runtime.venue.budget import STOP_BORROW_TOKENS, Priority, RequestBudget, WeightBudget, request_weight


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def budget(clock: FakeClock, **kw: object) -> WeightBudget:
    kw = {"weight_limit": 100, "max_rate_per_s": 1000.0, "clean_period_s": 30.0, "rng": lambda: 0.0, **kw}
    return WeightBudget(clock=clock, **kw)  # type: ignore[arg-type]


def test_weight_budget_satisfies_the_protocol_a_redis_budget_will_implement(clock: FakeClock) -> None:
    assert isinstance(budget(clock), RequestBudget)


def test_f5_priorities_are_refused_lowest_first_as_headroom_shrinks(clock: FakeClock) -> None:
    b = budget(clock)
    b.observe(status=200, used_weight=59, retry_after_s=None)
    assert b.acquire(Priority.BACKGROUND, 1).allowed  # 60 of 100: BACKGROUND's share is 60 %
    refused = b.acquire(Priority.BACKGROUND, 1)
    assert not refused.allowed and "weight headroom" in refused.reason and refused.wait_s > 0
    assert b.acquire(Priority.ENTRY, 1).allowed
    b.observe(status=200, used_weight=80, retry_after_s=None)
    assert not b.acquire(Priority.ENTRY, 1).allowed  # ENTRY stops at 80 %
    assert b.acquire(Priority.EXIT, 1).allowed
    b.observe(status=200, used_weight=95, retry_after_s=None)
    assert not b.acquire(Priority.EXIT, 1).allowed  # EXIT leaves the last 5 % to stops
    assert b.acquire(Priority.STOP, 1).allowed
    b.observe(status=200, used_weight=100, retry_after_s=None)
    assert not b.acquire(Priority.STOP, 1).allowed  # nobody exceeds the venue's limit


def test_weight_header_ages_out_after_the_window(clock: FakeClock) -> None:
    b = budget(clock)
    b.observe(status=200, used_weight=100, retry_after_s=None)
    assert not b.acquire(Priority.ENTRY, 1).allowed
    clock.advance(60.0)
    assert b.acquire(Priority.ENTRY, 1).allowed


def test_local_spend_counts_between_headers(clock: FakeClock) -> None:
    b = budget(clock)
    for _ in range(60):
        assert b.acquire(Priority.BACKGROUND, 1).allowed
    refused = b.acquire(Priority.BACKGROUND, 1)
    assert not refused.allowed
    assert refused.wait_s == pytest.approx(60.0)  # the oldest spend leaves the window in 60 s
    clock.advance(60.0)
    assert b.acquire(Priority.BACKGROUND, 1).allowed


def test_zero_weight_orders_ignore_weight_headroom(clock: FakeClock) -> None:
    b = budget(clock)
    b.observe(status=200, used_weight=100, retry_after_s=None)
    assert b.acquire(Priority.ENTRY, request_weight("POST", "/fapi/v1/order")).allowed


def test_f5_retry_after_blocks_every_priority_until_it_passes(clock: FakeClock) -> None:
    b = budget(clock)
    b.observe(status=429, used_weight=None, retry_after_s=3.0)
    for priority in Priority:
        decision = b.acquire(priority, 1)
        assert not decision.allowed and decision.wait_s == pytest.approx(3.0)
    clock.advance(3.0)
    assert b.acquire(Priority.STOP, 1).allowed


def test_f5_without_retry_after_backoff_is_exponential_with_jitter(clock: FakeClock) -> None:
    b = budget(clock, rng=lambda: 1.0, jitter=0.5)
    waits = []
    for _ in range(4):
        b.observe(status=429, used_weight=None, retry_after_s=None)
        waits.append(b.acquire(Priority.STOP).wait_s)
        clock.advance(waits[-1])
    assert waits == pytest.approx([1.5, 3.0, 6.0, 12.0])


def test_f5_418_ban_is_honoured_like_429(clock: FakeClock) -> None:
    b = budget(clock)
    b.observe(status=418, used_weight=None, retry_after_s=120.0)
    assert b.acquire(Priority.STOP).wait_s == pytest.approx(120.0)


def test_f5_rate_halves_after_429_and_ramps_back_after_clean_periods(clock: FakeClock) -> None:
    b = budget(clock, max_rate_per_s=16.0, min_rate_per_s=1.0)
    b.observe(status=429, used_weight=None, retry_after_s=0.0)
    assert b.rate_per_s == 8.0
    b.observe(status=429, used_weight=None, retry_after_s=0.0)
    assert b.rate_per_s == 4.0
    clock.advance(29.0)
    b.observe(status=200, used_weight=1, retry_after_s=None)
    assert b.rate_per_s == 4.0, "no ramp before a full clean period"
    clock.advance(1.0)
    b.observe(status=200, used_weight=1, retry_after_s=None)
    assert b.rate_per_s == 8.0
    clock.advance(30.0)
    b.acquire(Priority.BACKGROUND)
    assert b.rate_per_s == 16.0
    clock.advance(300.0)
    assert b.snapshot()["rate_per_s"] == 16.0, "never above the maximum"


def test_f5_halved_rate_defers_entries_before_stops(clock: FakeClock) -> None:
    b = budget(clock, max_rate_per_s=8.0, min_rate_per_s=1.0, burst_s=1.0)
    b.observe(status=429, used_weight=None, retry_after_s=0.0)  # rate 4/s, bucket of 4 tokens
    for priority in (Priority.BACKGROUND, Priority.ENTRY, Priority.EXIT):
        sent = 0
        while b.acquire(priority).allowed:
            sent += 1
            assert sent < 10, "pacing never refused"
        assert sent >= 1, f"{priority.name} refused while a lower priority had just been served"
        refused = b.acquire(priority)
        assert "paced" in refused.reason and refused.wait_s > 0
    assert all(b.acquire(Priority.STOP).allowed for _ in range(3)), "stops are never paced"
    clock.advance(1.0)
    assert b.acquire(Priority.EXIT).allowed


def test_budget_follows_wall_clock_by_default_frozen_time() -> None:
    with freeze_time("2026-01-01 00:00:00", tick=False) as frozen:
        import time as _time
        b = WeightBudget(weight_limit=10, clock=_time.time)
        b.observe(status=429, used_weight=None, retry_after_s=2.0)
        assert not b.acquire(Priority.STOP).allowed
        frozen.tick(2.0)
        assert b.acquire(Priority.STOP).allowed


def test_snapshot_reports_state_for_the_status_tree(clock: FakeClock) -> None:
    b = budget(clock)
    b.observe(status=429, used_weight=42, retry_after_s=5.0)
    snap = b.snapshot()
    assert snap["used_weight"] == 42 and snap["blocked_for_s"] == pytest.approx(5.0)
    assert snap["limited_count"] == 1 and snap["weight_limit"] == 100


@pytest.mark.parametrize("method,path,params,weight", [
    ("GET", "/fapi/v1/depth", {"limit": 1000}, 20), ("GET", "/fapi/v1/depth", {"limit": 5}, 2),
    ("GET", "/fapi/v1/openOrders", {}, 40), ("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"}, 1),
    ("GET", "/fapi/v2/positionRisk", {}, 5), ("POST", "/fapi/v1/order", {}, 0),
])
def test_request_weights_follow_the_venue_documentation(method: str, path: str, params: dict, weight: int) -> None:
    assert request_weight(method, path, params) == weight


def test_seed480472_stops_are_not_paced_at_the_minimum_rate_either(clock: FakeClock) -> None:
    """Soak seed 480472 (I3): after 429s the rate fell to its minimum, 0.5 req/s, where the bucket
    holds one token; a stop could borrow only that one, so the next stop-loss of a dip crossing
    several stops waited 2 s ("paced at 0.5 req/s, STOP deferred") and exited 3.2 s late."""
    b = budget(clock, max_rate_per_s=2.0, min_rate_per_s=0.5, burst_s=1.0)
    for _ in range(3):
        b.observe(status=429, used_weight=None, retry_after_s=0.0)
    assert b.rate_per_s == 0.5
    assert b.acquire(Priority.EXIT).allowed and not b.acquire(Priority.EXIT).allowed, "exits are paced"
    stops = [b.acquire(Priority.STOP) for _ in range(5)]
    assert all(d.allowed for d in stops), f"a burst of stop-losses is never paced: {[d.reason for d in stops]}"
    assert not b.acquire(Priority.ENTRY).allowed, "what stops borrowed is paid back by the other priorities"


def test_seed724076_I3_stops_are_never_paced_however_many_go_after_a_flood(clock: FakeClock) -> None:
    """Soak seed 724076 (I3, +317.95 s): after 429 floods the rate was 0.625 req/s; six stop-losses of
    one dip and their retries used up what stops could borrow (8 tokens), and t00:x18 was then
    "paced at 0.625 req/s, STOP deferred" for 7 s after the venue took orders again. Pacing is our
    own caution, not the venue's ban (which stops still obey): stops are never paced by it."""
    b = budget(clock, max_rate_per_s=2.0, min_rate_per_s=0.5, burst_s=1.0)
    for _ in range(3):
        b.observe(status=429, used_weight=None, retry_after_s=0.0)
    stops = []
    for _ in range(30):
        stops.append(b.acquire(Priority.STOP))
        clock.t += 0.1  # 10 stop requests a second, 20 times the paced rate
    assert all(d.allowed for d in stops), f"stop-losses are never paced: {[d.reason for d in stops if not d.allowed]}"
    paced = b.acquire(Priority.EXIT)
    assert not paced.allowed and "paced" in paced.reason, "the other priorities pay back what stops took"
    assert paced.wait_s <= (STOP_BORROW_TOKENS + 1.0) / 0.5 + 1e-9, \
        f"the debt they pay back is bounded ({STOP_BORROW_TOKENS:g} tokens): wait {paced.wait_s:.1f} s"
    b.observe(status=429, used_weight=None, retry_after_s=5.0)
    assert not b.acquire(Priority.STOP).allowed, "a venue ban (Retry-After) still holds stops too"
