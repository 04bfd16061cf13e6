"""F26 / seed 724076: the graceful stop's deadline policy (actors/core/stop_deadline.py), on a frozen clock."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from freezegun import freeze_time

from actors.core.stop_deadline import StopDeadline, leftover


def test_seed724076_waiting_for_orders_in_flight_ends_a_reserve_before_the_deadline() -> None:
    with freeze_time("2026-12-01 02:00:00") as frozen:
        deadline = StopDeadline(45.0)
        assert deadline.protect_reserve_s == 10.0, "a quarter of 45 s, capped at 10 s, kept for protective stops"
        assert deadline.for_waiting(60) == 35.0 and deadline.for_waiting(5) == 5.0
        frozen.tick(30)
        assert deadline.for_waiting(60) == pytest.approx(5.0) and not deadline.waiting_over()
        frozen.tick(5)
        assert deadline.waiting_over() and deadline.for_waiting(60) == 0.0, "no more waiting for the tree"
        assert deadline.remaining() == pytest.approx(10.0) and not deadline.expired(), "protective stops' turn"
        frozen.tick(10)
        assert deadline.expired() and deadline.remaining() == 0.0
        frozen.tick(100)
        assert deadline.remaining() == 0.0 and deadline.for_waiting() == 0.0, "never negative"


def test_seed724076_short_deadline_keeps_a_quarter_for_protective_stops() -> None:
    with freeze_time("2026-12-01 02:00:00"):
        deadline = StopDeadline(8.0)
        assert deadline.protect_reserve_s == 2.0 and deadline.for_waiting() == 6.0


def test_seed724076_deadline_must_be_positive() -> None:
    with pytest.raises(ValueError, match="stop deadline must be > 0"):
        StopDeadline(0.0)


def test_seed724076_leftover_names_unprotected_positions_and_orders_in_doubt() -> None:
    s1, s2, s3 = (SimpleNamespace(id=i, symbol="BTCUSDT") for i in ("s1", "s2", "s3"))
    bought = SimpleNamespace(quantity=0.01, pending_order="")
    exiting = SimpleNamespace(quantity=0.02, pending_order="s2:x4")
    entering = SimpleNamespace(quantity=0.0, pending_order="s3:e1")
    left = leftover([(s1, bought), (s2, exiting)], {"s1": bought, "s2": exiting, "s3": entering, "s4": None},
                    protected=["s1"])
    assert left.unprotected == ("s2 (BTCUSDT 0.02)",), "s1 is held by a venue-side stop"
    assert left.in_doubt == ("s2:x4", "s3:e1")
    line = left.line(45.0, 4)
    assert line.startswith("graceful stop deadline (45 s) passed: exiting with code 4")
    assert "unprotected: s2 (BTCUSDT 0.02)" in line and "s2:x4, s3:e1" in line
    assert "unprotected: none" in leftover([], {}, []).line(45.0, 4)
