"""F7/F8 reconnect schedule: 0, 1, 2, 4, 8 ... <= 60 s + jitter, forever; > 5 failures -> REDUCED."""

from __future__ import annotations

import pytest

from actors.core.reconnect import ReconnectConfig, ReconnectSchedule


def no_jitter(**kw) -> ReconnectSchedule:
    return ReconnectSchedule(ReconnectConfig(**kw), rand=lambda: 0.0)


def test_f7_reconnect_delays_0_1_2_4_8_capped_at_60():
    sched = no_jitter()
    delays = [sched.on_disconnected(0.0).delay]
    for i in range(9):
        delays.append(sched.on_attempt_failed(float(i)).delay)
    assert delays == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


def test_f7_first_attempt_after_a_drop_is_immediate_even_with_jitter():
    sched = ReconnectSchedule(rand=lambda: 0.999)
    assert sched.on_disconnected(0.0).delay == 0.0


def test_f7_jitter_is_injected_and_bounded():
    sched = ReconnectSchedule(ReconnectConfig(jitter=0.25), rand=lambda: 1.0)
    sched.on_disconnected(0.0)
    assert sched.on_attempt_failed(0.0).delay == pytest.approx(1.25)
    assert sched.on_attempt_failed(1.0).delay == pytest.approx(2.5)
    for i in range(20):
        plan = sched.on_attempt_failed(float(i))
    assert plan.delay == pytest.approx(75.0), "cap applies before jitter: 60 s + 25 %"
    half = ReconnectSchedule(ReconnectConfig(jitter=0.25), rand=lambda: 0.5)
    half.on_disconnected(0.0)
    assert half.on_attempt_failed(0.0).delay == pytest.approx(1.125)


def test_f7_more_than_five_failures_signal_reduced_and_alert_once():
    sched = no_jitter()
    sched.on_disconnected(0.0)
    plans = [sched.on_attempt_failed(float(i)) for i in range(1, 8)]
    assert [p.reduced for p in plans] == [False] * 5 + [True, True]
    assert [p.alert is not None for p in plans] == [False] * 5 + [True, False]
    assert "6 times" in (plans[5].alert or "")
    assert sched.reduced


def test_f7_reconnects_forever():
    sched = no_jitter()
    sched.on_disconnected(0.0)
    for i in range(10_000):
        plan = sched.on_attempt_failed(float(i))
    assert plan.delay == 60.0 and plan.attempt == 10_001 and plan.failures == 10_000


def test_f7_stable_connection_resets_failures_and_clears_reduced():
    sched = no_jitter(stable_after=30.0)
    sched.on_disconnected(0.0)
    for i in range(6):
        sched.on_attempt_failed(float(i))
    assert sched.reduced
    sched.on_connected(100.0)
    assert sched.poll(129.9) is False, "not stable yet"
    assert sched.reduced
    assert sched.poll(130.0) is True, "REDUCED clears once, on a stable connection"
    assert not sched.reduced and sched.failures == 0
    assert sched.poll(200.0) is False
    plan = sched.on_disconnected(300.0)
    assert plan.delay == 0.0 and plan.failures == 0


def test_f7_drop_of_a_stable_connection_resets_without_a_poll():
    sched = no_jitter(stable_after=30.0)
    sched.on_disconnected(0.0)
    for i in range(3):
        sched.on_attempt_failed(float(i))
    sched.on_connected(10.0)
    plan = sched.on_disconnected(45.0)
    assert plan.delay == 0.0 and plan.failures == 0


def test_f7_flapping_connection_keeps_backing_off():
    sched = no_jitter(stable_after=30.0)
    sched.on_disconnected(0.0)
    delays = []
    t = 0.0
    for _ in range(7):
        sched.on_connected(t)
        plan = sched.on_disconnected(t + 1.0)  # up for 1 s only
        delays.append(plan.delay)
        t += 100.0
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0]
    assert sched.reduced, "a link that never stays up is a failing link"
