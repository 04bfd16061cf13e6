"""Server-time offset (F21): midpoint of the round trip, noisy samples not adopted."""

from __future__ import annotations

import pytest

from runtime.venue.clock import ServerClock


def test_f21_offset_is_server_minus_round_trip_midpoint() -> None:
    local = [1_000_000.0]
    clock = ServerClock(lambda: local[0])
    sample = clock.observe(server_ms=1_005_050, sent_local_ms=1_000_000.0, received_local_ms=1_000_100.0)
    assert sample.offset_ms == pytest.approx(5_000.0) and sample.rtt_ms == 100.0
    assert clock.now_ms() == 1_005_000
    local[0] += 250
    assert clock.now_ms() == 1_005_250 and clock.age_ms() == pytest.approx(150.0)


def test_slow_round_trips_do_not_replace_a_good_offset() -> None:
    clock = ServerClock(lambda: 0.0, max_rtt_ms=500)
    clock.observe(1_000, 0.0, 10.0)
    clock.observe(9_000, 0.0, 4_000.0)  # 4 s round trip: its midpoint is not trustworthy
    assert clock.offset_ms == pytest.approx(995.0)


def test_first_sample_is_adopted_even_if_slow() -> None:
    clock = ServerClock(lambda: 0.0, max_rtt_ms=1)
    clock.observe(2_000, 0.0, 1_000.0)
    assert clock.offset_ms == pytest.approx(1_500.0) and clock.last_sample is not None
