"""monitor:clock against the simulated exchange's real /fapi/v1/time with a clock_skew fault (F21)."""

from __future__ import annotations

import re

from actors.clock_monitor import ClockMonitor
from tests.market.actor_rig import exchange, make_rig, venue  # noqa: F401 - fixtures
from tests.waiting import eventually


def offset_in(reason: str) -> float:
    return float(re.search(r"clock offset ([+-][0-9.]+)s", reason).group(1))


def start_monitor(rig, **kwargs):
    ref = ClockMonitor.start(rig.services, **{"interval_s": 0.05, **kwargs})
    rig.actors.append(ref)
    return ref


def test_f21_clock_skew_6s_halts_entries_then_resync_clears(make_rig):
    rig = make_rig()
    monitor = start_monitor(rig)
    first = eventually(lambda: rig.degradation.signals("clock_drift"), timeout=2.0, what="first verdict")[0]
    assert not first.active, "an in-sync clock reports a cleared clock_drift"

    rig.exchange.set_fault("clock_skew", ms=6000)
    raised = eventually(lambda: [s for s in rig.degradation.signals("clock_drift") if s.active], timeout=2.0,
                        what="clock_drift raised")[0]
    details = rig.details(monitor)
    assert raised.effect.value == "BLOCK_ENTRIES" and abs(offset_in(raised.reason) - 6.0) < 0.2, \
        f"F21: > 5 s off venue time halts entries: {raised.reason}"
    assert 5_800 <= details["offset_ms"] <= 6_200 and details["alert"] and details["halt"]
    assert abs(rig.venue.clock.offset_ms - 6000) < 200, "the probe also resynced the signing clock"

    count = len(rig.degradation.signals("clock_drift"))
    rig.exchange.set_fault("clock_skew", ms=1500)  # > 1 s: alert only
    cleared = eventually(lambda: [s for s in rig.degradation.signals("clock_drift")[count:] if not s.active],
                         timeout=2.0, what="halt cleared under 5 s")[0]
    assert abs(offset_in(cleared.reason) - 1.5) < 0.2
    details = eventually(lambda: (d := rig.details(monitor))["halt"] is False and d, timeout=1.0, what="halt off")
    assert details["alert"], "F21: > 1 s is still alerted"
    rig.exchange.clear_faults("clock_skew")
    eventually(lambda: rig.details(monitor)["alert"] is False, timeout=2.0, what="alert cleared")


def test_f21_failed_probe_keeps_the_last_verdict(make_rig):
    rig = make_rig()
    monitor = start_monitor(rig)
    rig.exchange.set_fault("clock_skew", ms=7000)
    eventually(lambda: rig.details(monitor)["halt"], timeout=2.0, what="halted")
    rig.exchange.set_fault("http_429", scope="/fapi/v1/time", retry_after_s=1)
    rig.exchange.clear_faults("clock_skew")
    details = eventually(lambda: (d := rig.details(monitor))["failures"] >= 2 and d, timeout=2.0,
                         what="failed probes")
    assert details["halt"], "a probe that failed must not clear the halt"
    assert rig.degradation.signals("clock_drift")[-1].active
    rig.exchange.clear_faults("http_429")
    eventually(lambda: not rig.details(monitor)["halt"], timeout=2.0, what="cleared once probes succeed")
