"""The monitors subtree: ``monitor:store``, ``monitor:resources``, ``monitor:heartbeat``.

Each monitor is a small actor plus a ``_Sampler`` daemon thread. The thread does
the measuring that may take time (a Redis PING bounded by its 0.25 s timeout,
psutil, a walk of the status tree) and tells the actor the result; the actor
owns the state machine and the side effects. At most one sample is in the
mailbox at a time, so a busy actor (a long replay) is never flooded.

- ``StoreMonitor`` (F18): a failed probe tells degradation ``signals.store(False)``
  at once (probe every 0.25 s, a killed server fails in well under 1 s).
  While Redis is down every store call fails at once (``store.mark_down``: a
  hung Redis costs no socket timeouts), and after ``protect_after_s`` with
  positions open every one of them gets an exchange-side protective stop (F28).
  When Redis answers again: replay the disk buffer in order, tell
  ``position-manager`` ``Reconcile(reason)`` (it takes the protective stops back
  and refreshes the runtime cache, which is never dropped), and only then
  tell degradation ``signals.store(True)``. With ``reconcile_timeout`` > 0 it also
  waits for ``Reconciled`` from position-manager (re-asking every timeout)
  before reopening. A step that fails (Redis flapped mid-replay, position-manager
  down) leaves the gate closed and is retried at the next probe.
- ``ResourceMonitor`` (F20, F22): CPU / memory go to circuit-breaker
  (``ResourceObservation``: the resources breaker trips on CPU > 95 % for 30 s or
  memory > 90 %). Disk of ``data_dir``: >= 90 % warn and rotate logs, >= 95 %
  stop cold writes (``cold_writes_allowed`` is cleared), >= 98 % delete old
  rotated logs under ``data_dir/logs``. Trading continues: the gate is not touched.
- ``HeartbeatMonitor`` (F16): reads the status tree, counts nodes per state,
  remembers hangs (a node whose last error is ``hung``), and alerts once per
  incident on any node ``killed``, ``failed`` or ``escalated``. The hang
  detection and replacement itself is the supervisors' ``hang_timeout``.

Every monitor answers ``ReportHealth`` by re-sending its current signal(s).

Never does: block the actor thread on Redis or psutil; hold the gate open on a
guess (an unknown store state reports nothing until the first probe).
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import psutil

from actors.node_ids import CIRCUIT_BREAKER, DEGRADATION, POSITION_MANAGER
from actors.circuit_breaker import ResourceObservation
from actors.core import signals
from actors.degradation import ReportHealth
from actors.messages import Reconcile, Reconciled
from actors import node_ids
from actors.protection import open_positions, place_protective_stops
from actors.services import Services
from runtime.logging import log_event
from runtime.process_tree import ProcessTree
from runtime.store.errors import StoreUnavailable
from supervision import SupervisedActor

STORE, RESOURCES, HEARTBEAT = node_ids.STORE_MONITOR, node_ids.RESOURCE_MONITOR, node_ids.HEARTBEAT_MONITOR




@dataclass(frozen=True)
class _Sample:
    value: Any


class _Sampler:
    """A daemon thread calling ``sample()`` every ``interval`` and telling the actor the result."""

    def __init__(self, name: str, interval: float, sample: Callable[[], Any], actor_ref: Any) -> None:
        self._interval = interval
        self._sample = sample
        self._ref = actor_ref
        self._stop = threading.Event()
        self._pending = threading.Event()  # a sample is in the mailbox
        self._thread = threading.Thread(target=self._run, name=f"{name}-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def consumed(self) -> None:
        self._pending.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            if not self._pending.is_set():
                try:
                    value = self._sample()
                except Exception as exc:  # noqa: BLE001 - a sampler bug is reported, not fatal to the thread
                    value = exc
                if self._stop.is_set():
                    return
                self._pending.set()
                try:
                    self._ref.tell(_Sample(value))
                except Exception:  # noqa: BLE001 - the actor is gone
                    return
            self._stop.wait(max(0.0, self._interval - (time.monotonic() - started)))


class _MonitorActor(SupervisedActor):
    """Registration, the sampler thread and the sample plumbing shared by the monitors."""

    node_id = "monitor"

    def __init__(self, services: Services, interval: float) -> None:
        super().__init__()
        self.services = services
        self.interval = interval
        self.samples = 0  # samples handled (tests and the status tree read it)
        self._sampler: _Sampler | None = None

    def on_start(self) -> None:
        self.services.directory.register(self.node_id, self.generation, self.actor_ref)
        self._sampler = _Sampler(self.node_id, self.interval, self.sample, self.actor_ref)
        self._sampler.start()

    def on_stop(self) -> None:
        if self._sampler is not None:
            self._sampler.stop()
        self.services.directory.unregister(self.node_id, self.generation)

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self.on_stop()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Sample):
            self.samples += 1
            try:
                if isinstance(message.value, Exception):
                    log_event(self.node_id, "sample_failed", level="ERROR", details={"error": repr(message.value)},
                              action_taken="retried at the next interval")
                else:
                    self.on_sample(message.value)
            finally:
                if self._sampler is not None:
                    self._sampler.consumed()
        elif isinstance(message, ReportHealth):
            self.report(message.reply_to)
        else:
            self.on_message(message)
        return None

    # Runs on the sampler thread: may take time, must not touch actor state.
    def sample(self) -> Any:
        raise NotImplementedError

    # Run on the actor thread.
    def on_sample(self, value: Any) -> None:
        raise NotImplementedError

    def report(self, reply_to: str) -> None:
        """Re-send the current signal(s) (degradation restarted)."""

    def on_message(self, message: Any) -> None:
        """Other messages."""


# =============================================================================== store


class StoreMonitor(_MonitorActor):
    """Node ``monitor:store``: Redis health, and the F18 recovery sequence before the gate reopens."""

    node_id = STORE

    def __init__(
        self,
        services: Services,
        interval: float = 0.25,
        *,
        reconcile_timeout: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(services, interval)
        self.reconcile_timeout = reconcile_timeout
        self.clock = clock
        self.state = "unknown"  # unknown | up | down | recovering
        self.reason = ""
        self.down_since: float | None = None
        self.outages = 0
        self.replays = 0
        self.last_replay: dict[str, Any] | None = None
        self.waiting_for = ""  # the recovery step that has not succeeded yet
        self.buffer_pending = False  # as of the last sample (status reads stay plain attribute reads)
        self.protect_after_s = services.config.store.protect_after_s
        self.unprotected: dict[str, str] = {}  # strategy id -> why no venue-side stop holds it (outage only)
        self._protect_tried_at: float | None = None
        self._told: bool | None = None  # the store state degradation last *received* (None: nothing yet)
        self._request_ids = itertools.count(1)
        self._awaiting: tuple[int, float] | None = None  # (request id, asked at)

    def sample(self) -> Any:
        return self.services.store.health()

    def status_details(self) -> dict[str, Any]:
        return {"state": self.state, "reason": self.reason, "waiting_for": self.waiting_for,
                "outages": self.outages, "replays": self.replays, "buffer_pending": self.buffer_pending,
                "last_replay": self.last_replay, "protective_stops": self.services.protective.held(),
                "unprotected": dict(self.unprotected)}

    def on_sample(self, health: Any) -> None:
        self.buffer_pending = self._buffer_pending_quiet()
        if not health.up:
            self._down(health.error or "store unreachable")
            self._protect()
        elif self.state in ("unknown", "down", "recovering") or self.buffer_pending:
            # Up with records in the buffer: a write that failed without the probe seeing Redis
            # down. Runtime reads refuse until the replay (Redis is older), so replay now.
            self._recover()
        elif self._told is not True:
            self._tell_degradation(True, "store up")  # an earlier tell found degradation down

    def on_message(self, message: Any) -> None:
        if isinstance(message, Reconciled) and self._awaiting is not None and message.request_id == self._awaiting[0]:
            if message.ok:
                self._awaiting = None
                self._reopen(f"reconciled: {message.detail}" if message.detail else "reconciled")
            else:
                log_event(STORE, "reconcile_failed", level="ERROR", details={"detail": message.detail},
                          action_taken="gate stays closed; reconcile asked again")
                self._awaiting = None
                self.state = "recovering"

    def report(self, reply_to: str) -> None:
        if self.state == "up":
            self._tell_degradation(True, "store up")
        elif self.state in ("down", "recovering"):
            self._tell_degradation(False, self.reason or "store down")

    # --- the state machine ---------------------------------------------------------------

    def _down(self, reason: str) -> None:
        if self.state != "down":
            first = self.state in ("unknown", "up")
            self.state, self.reason, self.waiting_for = "down", reason, ""
            self._awaiting = None
            if first:
                self.down_since = self.clock()
                self.outages += 1
            self.services.store.mark_down(reason)
            log_event(STORE, "store_down", level="ERROR", details={"reason": reason},
                      action_taken="entries closed; exits buffered to disk; runtime cache kept")
        if self._told is not False:
            self._tell_degradation(False, reason)

    def _protect(self) -> None:
        """F28: Redis down longer than protect_after_s: every open position gets a venue-side stop.

        Positions come from the runtime cache (the last known runtimes); a round that left some
        unprotected (venue refused, no stop level) is tried again at most every protect_after_s."""
        if self.down_since is None or self.clock() - self.down_since < self.protect_after_s:
            return
        if self._protect_tried_at is not None and self.clock() - self._protect_tried_at < self.protect_after_s:
            return
        self._protect_tried_at = self.clock()
        positions = open_positions(self.services.config.strategies, self.services.runtime_cache.get)
        why = f"store down for more than {self.protect_after_s:g}s: venue-side protective stop"
        try:
            done = place_protective_stops(self.services, positions, why, component=STORE)
        except Exception as exc:  # noqa: BLE001 - the monitor must outlive a venue bug; say it, retry later
            log_event(STORE, "protective_stops_failed", level="ERROR", details={"error": repr(exc)},
                      action_taken=f"retried in {self.protect_after_s:g}s; local stops stay armed")
            return
        self._set_unprotected(done.unprotected)

    def _set_unprotected(self, unprotected: dict[str, str]) -> None:
        """Degradation hears of every position left unprotected (REDUCED) and of each that no longer is."""
        for strategy_id in set(self.unprotected) | set(unprotected):
            if strategy_id in unprotected:
                self.services.directory.tell(DEGRADATION, signals.position_unprotected(
                    strategy_id, True, f"store down, no venue-side stop: {unprotected[strategy_id]}"))
            else:
                self.services.directory.tell(DEGRADATION, signals.position_unprotected(strategy_id, False))
        self.unprotected = dict(unprotected)

    def _recover(self) -> None:
        self.services.store.mark_up()
        self._protect_tried_at = None
        self._set_unprotected({})  # the local stop book protects them again
        if self.state == "unknown" and not self._needs_recovery():
            self.state, self.reason = "up", ""
            self._tell_degradation(True, "store up")
            return
        if self._awaiting is not None:
            request_id, asked_at = self._awaiting
            if self.clock() - asked_at < self.reconcile_timeout:
                return  # waiting for position-manager
            log_event(STORE, "reconcile_timeout", level="WARNING",
                      details={"request_id": request_id, "timeout_s": self.reconcile_timeout},
                      action_taken="gate stays closed; reconcile asked again")
            self._awaiting = None
        self.state = "recovering"
        # 1. ordered replay of the exits buffered while Redis was down (idempotent; cheap when empty)
        try:
            report = self.services.store.replay_buffer()
        except StoreUnavailable as exc:
            self.waiting_for = f"replay (interrupted: {exc})"
            log_event(STORE, "replay_interrupted", level="WARNING", details={"error": str(exc)},
                      action_taken="gate stays closed; replay again at the next probe")
            return
        self.replays += 1
        self.last_replay = {"applied": report.applied, "duplicates": report.duplicates,
                            "refused": report.refused, "corrupt": [str(c) for c in report.corrupt]}
        log_event(STORE, "buffer_replayed", details=self.last_replay, action_taken="disk buffer drained in order",
                  level="WARNING" if report.refused or report.corrupt else "INFO")
        # 2. positions reconciled with the venue (protective stops taken back, runtime cache refreshed)
        #    before new entries
        request_id = next(self._request_ids)
        reason = "store back after outage" + (f" ({self.reason})" if self.reason else "")
        if not self.services.directory.tell(POSITION_MANAGER, Reconcile(reason, STORE, request_id)):
            self.waiting_for = f"{POSITION_MANAGER} (down: cannot reconcile yet)"
            log_event(STORE, "reconcile_undelivered", level="WARNING", details={"reason": reason},
                      action_taken="gate stays closed; retried at the next probe")
            return
        log_event(STORE, "reconcile_requested", details={"request_id": request_id},
                  action_taken="buffer replayed; waiting for reconciliation" if self.reconcile_timeout > 0
                  else "buffer replayed; reconcile requested")
        if self.reconcile_timeout > 0:
            self._awaiting = (request_id, self.clock())
            self.waiting_for = f"Reconciled({request_id}) from {POSITION_MANAGER}"
            return
        # 3. only now may entries reopen
        self._reopen("replayed, reconcile requested")

    def _reopen(self, how: str) -> None:
        outage = None if self.down_since is None else round(self.clock() - self.down_since, 3)
        self.state, self.reason, self.down_since, self.waiting_for = "up", "", None, ""
        log_event(STORE, "store_recovered", details={"outage_s": outage, "how": how},
                  action_taken="gate reopening for the store cause")
        self._tell_degradation(True, f"store up: {how}")

    def _needs_recovery(self) -> bool:
        """A first probe that finds Redis up still recovers if something is left from before."""
        if self._buffer_pending_quiet():
            return True
        return any(r.startswith(STORE) for r in self.services.gate().reasons)

    def _tell_degradation(self, up: bool, reason: str) -> None:
        delivered = self.services.directory.tell(DEGRADATION, signals.store(up, reason))
        self._told = up if delivered else None

    def _buffer_pending_quiet(self) -> bool:
        try:
            return bool(self.services.store.buffer_pending())
        except Exception:  # noqa: BLE001 - a status read must never raise
            return False


# =============================================================================== resources


@dataclass(frozen=True)
class ResourceSample:
    cpu_percent: float | None  # the daemon's process tree, of all cores
    memory_percent: float | None  # the daemon's process tree, of the host's memory
    disk_percent: float | None
    at: float
    system_cpu_percent: float | None = None  # the whole host: context, never a trip
    system_memory_percent: float | None = None
    processes: int | None = None  # in the daemon's tree


DISK_OK, DISK_WARN, DISK_NO_COLD_WRITES, DISK_EMERGENCY = "ok", "warn", "cold_writes_stopped", "emergency"
_DISK_LOG_LEVEL = {DISK_WARN: "WARNING", DISK_NO_COLD_WRITES: "ERROR", DISK_EMERGENCY: "CRITICAL"}
_DISK_ACTION = {DISK_WARN: "alert", DISK_NO_COLD_WRITES: "cold writes stopped",
                DISK_EMERGENCY: "cold writes stopped; old rotated logs deleted"}


def psutil_sampler(data_dir: Path, clock: Callable[[], float] = time.time) -> Callable[[], ResourceSample]:
    """The real sampler: CPU and memory of the daemon's own process tree (another program's load
    must not trip the breaker), the host's as context, disk usage of the volume holding ``data_dir``."""
    tree = ProcessTree()

    def sample() -> ResourceSample:
        try:
            disk = psutil.disk_usage(str(_existing(data_dir))).percent
        except OSError:
            disk = None
        figures = tree.sample()
        return ResourceSample(figures.cpu_percent, figures.memory_percent, disk, clock(),
                              system_cpu_percent=figures.system_cpu_percent,
                              system_memory_percent=figures.system_memory_percent, processes=figures.processes)

    return sample


class ResourceMonitor(_MonitorActor):
    """Node ``monitor:resources``: CPU/memory to the resources breaker; disk levels handled here."""

    node_id = RESOURCES

    def __init__(
        self,
        services: Services,
        interval: float = 1.0,
        *,
        sampler: Callable[[], ResourceSample] | None = None,
        clock: Callable[[], float] = time.time,
        disk_levels: tuple[float, float, float] = (90.0, 95.0, 98.0),
        log_dir: Path | None = None,
        active_logs: frozenset[str] = frozenset({"warden.log"}),
        rotate_logs: Callable[[], None] | None = None,
        cold_writes_allowed: threading.Event | None = None,
    ) -> None:
        super().__init__(services, interval)
        data_dir = Path(services.config.node.data_dir)
        self.sampler = sampler or psutil_sampler(data_dir, clock)
        self.clock = clock
        self.disk_levels = disk_levels
        self.log_dir = log_dir if log_dir is not None else data_dir / "logs"
        self.active_logs = active_logs
        self.rotate_logs = rotate_logs
        self.cold_writes_allowed = cold_writes_allowed if cold_writes_allowed is not None else threading.Event()
        self.cold_writes_allowed.set()
        self.disk_level = DISK_OK
        self.last: dict[str, Any] = {}
        self.cleaned_files = 0

    def sample(self) -> Any:
        return self.sampler()

    def status_details(self) -> dict[str, Any]:
        return {**self.last, "disk_level": self.disk_level, "cold_writes": self.cold_writes_allowed.is_set(),
                "cleaned_files": self.cleaned_files}

    def on_sample(self, sample: ResourceSample) -> None:
        self.last = {"cpu_percent": sample.cpu_percent, "memory_percent": sample.memory_percent,
                     "disk_percent": sample.disk_percent, "scope": "daemon process tree",
                     "processes": sample.processes, "system_cpu_percent": sample.system_cpu_percent,
                     "system_memory_percent": sample.system_memory_percent}
        if sample.cpu_percent is not None or sample.memory_percent is not None:
            self.services.directory.tell(CIRCUIT_BREAKER, ResourceObservation(
                cpu_percent=sample.cpu_percent, memory_percent=sample.memory_percent, at=sample.at))
        if sample.disk_percent is not None:
            self._disk(sample.disk_percent)

    def _disk(self, percent: float) -> None:
        warn, stop_cold, emergency = self.disk_levels
        disk = (DISK_EMERGENCY if percent >= emergency else DISK_NO_COLD_WRITES if percent >= stop_cold
                else DISK_WARN if percent >= warn else DISK_OK)
        previous, self.disk_level = self.disk_level, disk
        if disk == DISK_OK:
            if previous != DISK_OK:
                self.cold_writes_allowed.set()
                log_event(RESOURCES, "disk_ok", details={"disk_percent": percent, "was": previous},
                          action_taken="alerts clear; cold writes allowed")
            return
        # Rotate once per incident, on the first crossing of 90 % whatever level it lands on (a big
        # write can jump straight past 95/98 %): only rotated logs are ever cleaned up at 98 %.
        rotation = self._rotate() if previous == DISK_OK else ""
        if disk != previous:
            log_event(RESOURCES, "disk_high", level=_DISK_LOG_LEVEL[disk],
                      details={"disk_percent": percent, "level": disk,
                               "data_dir": str(self.services.config.node.data_dir)},
                      action_taken="; ".join(filter(None, (_DISK_ACTION[disk], rotation, "trading continues"))))
        if disk == DISK_WARN:
            self.cold_writes_allowed.set()
        else:
            self.cold_writes_allowed.clear()
        if disk == DISK_EMERGENCY:
            self._cleanup()

    def _rotate(self) -> str:
        """Rotate the logs; says what happened, for the alert's action_taken (never claims more)."""
        if self.rotate_logs is None:
            return "logs not rotated (no rotation hook)"
        try:
            self.rotate_logs()
        except Exception as exc:  # noqa: BLE001 - a failed rotation is an alert, not a crash
            log_event(RESOURCES, "log_rotation_failed", level="ERROR", details={"error": repr(exc)})
            return "log rotation failed"
        return "logs rotated"

    def _cleanup(self) -> None:
        removed, freed = [], 0
        for path in sorted(self._rotated_logs(), key=lambda p: p.stat().st_mtime):
            try:
                size = path.stat().st_size
                path.unlink()
            except OSError:
                continue
            removed.append(path.name)
            freed += size
        self.cleaned_files += len(removed)
        if removed:
            log_event(RESOURCES, "disk_emergency_cleanup", level="CRITICAL",
                      details={"removed": removed, "freed_bytes": freed, "dir": str(self.log_dir)},
                      action_taken="deleted rotated logs, oldest first")

    def _rotated_logs(self) -> Iterator[Path]:
        """Files under log_dir that are not an active log: loguru's ``warden.<date>.log[.gz]`` and the like."""
        if not self.log_dir.is_dir():
            return
        for path in self.log_dir.iterdir():
            if path.is_file() and path.name not in self.active_logs and ".log" in path.name:
                yield path


def _existing(path: Path) -> Path:
    """The nearest existing ancestor (data_dir may not exist yet): same volume."""
    path = path.resolve()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


# =============================================================================== heartbeat

ALERT_STATES = frozenset({"killed", "failed", "escalated"})


class HeartbeatMonitor(_MonitorActor):
    """Node ``monitor:heartbeat``: what the supervisors' watchdogs found, counted and alerted."""

    node_id = HEARTBEAT

    def __init__(self, services: Services, tree_snapshot: Callable[[], dict[str, Any]], interval: float = 0.5) -> None:
        super().__init__(services, interval)
        self.tree_snapshot = tree_snapshot
        self.counts: dict[str, int] = {}
        self.unhealthy: list[dict[str, Any]] = []  # nodes currently killed / failed / escalated
        self.restarting: list[str] = []
        self.hangs = 0
        self.alerts = 0
        self._seen_incidents: set[tuple[str, str, Any]] = set()
        self._seen_hangs: set[tuple[str, Any]] = set()

    def sample(self) -> Any:
        return self.tree_snapshot()

    def status_details(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "hangs": self.hangs, "alerts": self.alerts,
                "restarting": list(self.restarting), "unhealthy": copy.deepcopy(self.unhealthy)}

    def on_sample(self, tree: dict[str, Any]) -> None:
        counts: dict[str, int] = {}
        unhealthy, restarting = [], []
        for node in _walk(tree):
            node_id, state = str(node.get("id")), str(node.get("state"))
            counts[state] = counts.get(state, 0) + 1
            if state == "restarting":
                restarting.append(node_id)
            error = node.get("last_error") or {}
            if isinstance(error, dict) and error.get("type") == "hung":
                incident = (node_id, error.get("at"))
                if incident not in self._seen_hangs:
                    self._seen_hangs.add(incident)
                    self.hangs += 1
                    log_event(HEARTBEAT, "node_hung", level="ERROR",
                              details={"node": node_id, "message": error.get("message"), "state": state},
                              action_taken="fenced and abandoned by its supervisor; replacement started")
            if state in ALERT_STATES:
                entry = {"id": node_id, "state": state, "last_error": error or None}
                unhealthy.append(entry)
                incident = (node_id, state, node.get("last_exit_at"))
                if incident not in self._seen_incidents:
                    self._seen_incidents.add(incident)
                    self.alerts += 1
                    log_event(HEARTBEAT, "node_unhealthy", level="CRITICAL" if state == "escalated" else "ERROR",
                              details={"node": node_id, "state": state, "last_error": error or None,
                                       "restarts": node.get("restarts")},
                              action_taken="alert: operator attention needed")
        self.counts, self.unhealthy, self.restarting = counts, unhealthy, restarting


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(node, dict):
        return
    yield node
    for child in node.get("children") or ():
        yield from _walk(child)


__all__ = [
    "DISK_EMERGENCY",
    "DISK_NO_COLD_WRITES",
    "DISK_OK",
    "DISK_WARN",
    "HeartbeatMonitor",
    "Reconcile",
    "Reconciled",
    "ResourceMonitor",
    "ResourceSample",
    "StoreMonitor",
    "psutil_sampler",
]
