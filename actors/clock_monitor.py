"""The ``monitor:clock`` actor: this host's offset to the venue's clock (F21).

Every ``interval_s`` it asks the venue for its time (``services.venue.server_time()``,
which also resyncs the connector's signing clock) on a worker thread, and judges
the connector's measured offset:

- ``|offset| > alert_above_s`` (1 s): alert (logged once per excursion);
- ``|offset| > halt_above_s`` (5 s): ``signals.clock_offset(offset_s)`` told to
  ``degradation`` (entries halted); back under: the same factory clears it.

A failed probe changes nothing (the last verdict stands) and is counted; the
signal is re-sent when degradation asks (``ReportHealth``) or when it could not
be delivered.

Never does: call the venue on the actor thread; raise or clear the halt on a
failed probe.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pykka

from actors.core import signals
from actors.node_ids import CLOCK_MONITOR, DEGRADATION
from actors.degradation import ReportHealth
from actors.services import Services
from runtime.logging import log_event
from supervision import SupervisedActor

NODE_ID = CLOCK_MONITOR


@dataclass(frozen=True)
class ProbeNow:
    """Probe at once (operator, tests); the periodic probe continues."""


@dataclass(frozen=True)
class _Probe:
    pass


@dataclass(frozen=True)
class _Measured:
    offset_ms: float | None
    rtt_ms: float | None
    error: str | None


class ClockMonitor(SupervisedActor):
    """Node ``monitor:clock``. Messages: ``ProbeNow``, ``ReportHealth``."""

    def __init__(self, services: Services, interval_s: float = 5.0, *, alert_above_s: float = 1.0,
                 halt_above_s: float = 5.0) -> None:
        super().__init__()
        self.services = services
        self.interval_s = interval_s
        self.alert_above_s = alert_above_s
        self.halt_above_s = halt_above_s
        self.offset_ms: float | None = None
        self.rtt_ms: float | None = None
        self.alerting = False
        self.halting = False
        self.probes = 0
        self.failures = 0
        self.last_error: str | None = None
        self.last_probe_at: float | None = None
        self._probing = False
        self._reported = False  # degradation has heard this monitor's verdict
        self._undelivered = False
        self._timer: int | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._stopped = False

    def on_start(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="monitor-clock")
        self.services.directory.register(NODE_ID, self.generation, self.actor_ref)
        self._probe()

    def on_stop(self) -> None:
        self._teardown()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self._teardown()

    def _teardown(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._timer is not None:
            self.services.timers.cancel(self._timer)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.services.directory.unregister(NODE_ID, self.generation)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Measured):
            self._on_measured(message)
        elif isinstance(message, (_Probe, ProbeNow)):
            if isinstance(message, _Probe):
                self._timer = None
            self._probe()
        elif isinstance(message, ReportHealth):
            if self.offset_ms is not None:
                self._tell(reply_to=message.reply_to)
        return None

    def _probe(self) -> None:
        if self._stopped or self._pool is None:
            return
        if not self._probing:
            self._probing = True
            venue, ref = self.services.venue, self.actor_ref

            def probe() -> None:
                offset = rtt = error = None
                try:
                    outcome = venue.server_time()
                    if outcome.ok:
                        offset = float(venue.clock.offset_ms)
                        sample = venue.clock.last_sample
                        rtt = None if sample is None else float(sample.rtt_ms)
                    else:
                        error = outcome.describe() if hasattr(outcome, "describe") else str(outcome.kind)
                except Exception as exc:  # noqa: BLE001 - a failed probe is a value
                    error = f"{type(exc).__name__}: {exc}"
                try:
                    ref.tell(_Measured(offset, rtt, error))
                except pykka.ActorDeadError:
                    pass

            self._pool.submit(probe)
        if self._timer is None:
            self._arm()

    def _arm(self) -> None:
        self._timer = self.services.timers.tell_after(self.interval_s, self.actor_ref, _Probe())

    def _on_measured(self, message: _Measured) -> None:
        self._probing = False
        self.probes += 1
        self.last_probe_at = time.time()
        if message.offset_ms is None:
            self.failures += 1
            self.last_error = message.error
            log_event(NODE_ID, "clock_probe_failed", level="WARNING",
                      details={"error": message.error, "failures": self.failures},
                      action_taken="last verdict kept; probing again next interval")
            if self._undelivered:
                self._tell()
            return
        self.offset_ms, self.rtt_ms, self.last_error = message.offset_ms, message.rtt_ms, None
        offset_s = message.offset_ms / 1000.0
        alerting = abs(offset_s) > self.alert_above_s
        halting = abs(offset_s) > self.halt_above_s
        if alerting != self.alerting:
            self.alerting = alerting
            log_event(NODE_ID, "alert_clock_offset" if alerting else "clock_offset_ok",
                      level="WARNING" if alerting else "INFO",
                      details={"offset_ms": round(message.offset_ms, 1), "rtt_ms": message.rtt_ms,
                               "alert_above_s": self.alert_above_s},
                      action_taken="alert; orders are signed with the measured offset" if alerting else "cleared")
        if halting != self.halting or not self._reported or self._undelivered:
            changed = halting != self.halting
            self.halting = halting
            if changed:
                log_event(NODE_ID, "clock_drift_halt" if halting else "clock_drift_cleared",
                          level="ERROR" if halting else "INFO",
                          details={"offset_ms": round(message.offset_ms, 1), "halt_above_s": self.halt_above_s},
                          action_taken="degradation told: entries halted" if halting else
                          "degradation told: halt cleared")
            self._tell()

    def _tell(self, reply_to: str = DEGRADATION) -> None:
        assert self.offset_ms is not None
        signal = signals.clock_offset(self.offset_ms / 1000.0, self.halt_above_s)
        delivered = self.services.directory.tell(reply_to, signal)
        if reply_to == DEGRADATION:
            self._reported = self._reported or delivered
            self._undelivered = not delivered

    def status_details(self) -> dict[str, Any]:
        """Plain attribute reads only (called from another thread)."""
        return {"offset_ms": None if self.offset_ms is None else round(self.offset_ms, 1),
                "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 1),
                "alert": self.alerting, "halt": self.halting, "probes": self.probes, "failures": self.failures,
                "last_error": self.last_error, "last_probe_at": self.last_probe_at, "interval_s": self.interval_s}


__all__ = ["ClockMonitor", "NODE_ID", "ProbeNow"]
