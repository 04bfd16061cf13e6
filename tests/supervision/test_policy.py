"""The pure restart policy, driven without threads."""

from __future__ import annotations

import pytest
from freezegun import freeze_time
from hypothesis import given, strategies as st

from supervision.incarnation import monotonic
from supervision.policy import (
    ExitKind,
    ExitReason,
    RestartStrategy,
    RestartType,
    RestartWindow,
    backoff_delay,
    plan_restart,
    should_restart,
)

ORDER = ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    "strategy,failed,expected",
    [
        (RestartStrategy.ONE_FOR_ONE, "b", ["b"]),
        (RestartStrategy.DYNAMIC, "c", ["c"]),
        (RestartStrategy.ONE_FOR_ALL, "b", ORDER),
        (RestartStrategy.REST_FOR_ONE, "b", ["b", "c", "d"]),
        (RestartStrategy.REST_FOR_ONE, "d", ["d"]),
    ],
)
def test_plan_restart(strategy, failed, expected):
    assert plan_restart(strategy, ORDER, failed) == expected


def test_should_restart_matrix():
    normal, shutdown, error = ExitReason(ExitKind.NORMAL), ExitReason(ExitKind.SHUTDOWN), ExitReason(ExitKind.ERROR)
    hung = ExitReason(ExitKind.HUNG)
    assert [should_restart(RestartType.PERMANENT, r) for r in (normal, shutdown, error)] == [True, True, True]
    assert [should_restart(RestartType.TRANSIENT, r) for r in (normal, shutdown, error, hung)] == [False, False, True, True]
    assert [should_restart(RestartType.TEMPORARY, r) for r in (normal, shutdown, error)] == [False, False, False]


def test_window_fourth_restart_trips():
    window = RestartWindow(intensity=3, period=600)
    assert [window.add(t) for t in (0, 10, 20)] == [False, False, False]
    assert window.add(30) is True


def test_window_slides_with_freezegun():
    window = RestartWindow(intensity=3, period=600)
    with freeze_time("2026-01-01") as frozen:
        for _ in range(3):
            assert not window.add(monotonic())
            frozen.tick(250)
        # stamps at 0, 250, 500; now 750: the first has left the window
        assert not window.add(monotonic())
        assert window.count(monotonic()) == 3


def test_intensity_zero_trips_on_first_restart():
    assert RestartWindow(intensity=0, period=1).add(0) is True


def test_backoff_doubles_caps_and_jitters():
    assert [backoff_delay(n, 1.0, 8.0, 0.0, 0.0) for n in range(5)] == [1, 2, 4, 8, 8]
    assert backoff_delay(0, 1.0, 8.0, 0.2, 0.5) == pytest.approx(1.1)
    assert backoff_delay(3, 0.0, 8.0, 0.2, 0.9) == 0.0


@given(st.lists(st.floats(min_value=0, max_value=50, allow_nan=False), min_size=1, max_size=40),
       st.integers(min_value=0, max_value=5), st.floats(min_value=1, max_value=100))
def test_window_trips_exactly_when_count_in_period_exceeds_intensity(gaps, intensity, period):
    window = RestartWindow(intensity=intensity, period=period)
    now, stamps = 0.0, []
    for gap in gaps:
        now += gap
        stamps.append(now)
        in_period = [s for s in stamps if now - s <= period]
        assert window.add(now) == (len(in_period) > intensity)
