"""Stops armed at a start without Redis, from the last known runtimes kept on local disk.

DESIGN §3: a hung or absent Redis of any duration never costs a stop; exits continue from
the last known runtime and the venue's position. A process started while Redis is down
(seed 4242 +1225 s: the daemon SIGKILLed during an outage and restarted, as systemd would)
has no last known runtime in memory, so two things keep it outside the process:

- `SnapshotWriter`: the runtime cache (and which positions a venue-side stop holds),
  written to `<data_dir>/buffer/runtimes.json` (runtime.store.local_snapshot) whenever it
  changed, every 0.25 s at most, by a thread of its own (never on the order path), and
  once more at a stop, after the protective stops are placed.
  It writes only once this process knows the last known state (the cold start ran, or
  `arm_from_last_known` loaded it): an empty cache never replaces the snapshot it needs.
- `arm_from_last_known`, position-manager's step when the cold start is deferred (Redis
  down): the snapshot merged with the disk buffer's records (written later than any
  snapshot could hold them, newer wins), each long confirmed against the venue's position
  (never more than the venue holds), put in the runtime cache and its stop armed. A
  crossing then exits from the last known runtime exactly as in an outage (reduce-only,
  recorded in the disk buffer, replayed later); when Redis returns the deferred cold start
  takes over (runtime reads refuse until the buffer is replayed, seed 295).

Never does: replace a runtime this process already holds (it is newer than any file);
arm a position a venue-side protective stop holds, or may hold (one crossing, one exit;
a stop the venue says is gone no longer holds it); raise out of
reading a corrupt file (a clear error naming the file, and the start goes on as before).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from actors.node_ids import POSITION_MANAGER
from actors.protection import PROTECTIVE_STOP, StopFate, look_up_stop
from runtime.logging import log_event
from runtime.store.disk_buffer import BufferedRecord
from runtime.store.errors import CorruptState
from runtime.store.local_snapshot import LastKnown, read_snapshot, write_snapshot
from runtime.store.runtime_state import Position, Runtime, parse_runtime
from runtime.store.store import BUFFER_JOURNAL_INTENT, BUFFER_JOURNAL_OUTCOME, BUFFER_RUNTIME
from runtime.venue.budget import Priority
from runtime.venue.outcomes import OutcomeKind

if TYPE_CHECKING:
    from actors.pipeline import RuntimeCache
    from actors.protection import ProtectiveStops
    from actors.services import Services

SNAPSHOT_NAME = "runtimes.json"  # beside the disk buffer's orders.jsonl
WRITE_INTERVAL_S = 0.25  # the snapshot follows the runtime cache this closely (when the disk keeps up)


class SnapshotWriter:
    """Writes the runtime cache to the local snapshot when it changed, on a thread of its own
    (`start`): never on the order path, and a slow disk never delays monitor:store's probe.
    It spends at most a tenth of its time writing (10,000 runtimes take ~0.1 s to write on a
    loaded box): the wait between two writes is at least ten times the last one. Thread-safe."""

    def __init__(self, path: Path, cache: RuntimeCache, protective: ProtectiveStops,
                 interval_s: float = WRITE_INTERVAL_S) -> None:
        self.path = path
        self.interval_s = interval_s
        self._cache = cache
        self._protective = protective
        self._lock = threading.Lock()
        self._enabled = False
        self._written: tuple[int, dict[str, str]] | None = None  # (cache version, holds) last written
        self._failing = ""  # the error of the last failed write, said once
        self._took_s = 0.0  # how long the last write took
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.written_at: float | None = None

    def enable(self) -> None:
        """The cache now holds this process's last known state: from here on it may be written."""
        self._enabled = True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="runtime-snapshot", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread, then write what changed since its last write (a graceful stop's holds)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.write_if_changed()

    def _run(self) -> None:
        while not self._stopping.wait(max(self.interval_s, 10 * self._took_s)):
            try:
                self.write_if_changed()
            except Exception as exc:  # noqa: BLE001 - the writer outlives a bug; say it, go on
                log_event(POSITION_MANAGER, "runtime_snapshot_failed", level="ERROR", exc=exc,
                          details={"path": str(self.path), "error": repr(exc)}, action_taken="tried again")

    def write_if_changed(self) -> bool:
        """Write when the cache or the holds moved since the last write; False when nothing was
        written (unchanged, not enabled yet, or the disk refused: said once, at ERROR)."""
        if not self._enabled:
            return False
        with self._lock:
            version, runtimes = self._cache.copy()
            holds = self._protective.held()
            if self._written == (version, holds):
                return False
            started = time.monotonic()
            now = time.time()
            try:
                write_snapshot(self.path, runtimes, holds, now)
            except OSError as exc:
                if str(exc) != self._failing:
                    self._failing = str(exc)
                    log_event(POSITION_MANAGER, "runtime_snapshot_not_written", level="ERROR",
                              details={"path": str(self.path), "error": str(exc)},
                              action_taken="tried again at the next change; a start without Redis arms "
                                           "stops from the last snapshot written")
                return False
            finally:
                self._took_s = time.monotonic() - started
            self._failing = ""
            self._written, self.written_at = (version, holds), now
            return True


def load_last_known(snapshot_path: Path, buffered: Iterable[BufferedRecord], buffer_path: Path | None) -> LastKnown:
    """The snapshot merged with the disk buffer's records, newer wins; never raises.

    A buffered runtime replaces the snapshot's when its (generation, updated_at) is not older;
    a buffered protective-stop intent holds its strategy's position until a final outcome of
    that stop follows in the buffer."""
    known = read_snapshot(snapshot_path)
    for record in buffered:
        data = record.data
        if record.kind == BUFFER_RUNTIME:
            where = f"{buffer_path}:{record.line}"
            try:
                runtime = parse_runtime(data["runtime"], where)
                strategy_id = str(data["strategy_id"])
            except (CorruptState, KeyError, TypeError) as exc:
                known.problems.append(f"{where}: {exc}")
                continue
            held = known.runtimes.get(strategy_id)
            if held is None or _age(runtime) >= _age(held):
                known.runtimes[strategy_id] = runtime
        elif record.kind == BUFFER_JOURNAL_INTENT and isinstance(fields := data.get("fields"), dict) \
                and fields.get("purpose") == PROTECTIVE_STOP:
            known.protective[str(fields.get("strategy_id", ""))] = str(data.get("client_order_id", ""))
        elif record.kind == BUFFER_JOURNAL_OUTCOME and data.get("final"):
            client_id = data.get("client_order_id")
            for strategy_id, held_id in list(known.protective.items()):
                if held_id == client_id:
                    del known.protective[strategy_id]
    return known


def _age(runtime: Runtime) -> tuple[int, float]:
    return runtime.generation, runtime.updated_at


def arm_from_last_known(services: Services) -> list[str]:
    """Fill the runtime cache from the local snapshot and disk buffer and arm the stops of the
    longs the venue confirms. Returns the strategies armed. Only strategies the cache does not
    hold are touched, so calling it again (a position-manager restart in the outage) is harmless."""
    path = services.snapshot_path
    buffer = getattr(services.store, "buffer", None)
    if path is None:
        return []
    records: list[BufferedRecord] = []
    if buffer is not None:
        records, corrupt = buffer.read()
        problems = [str(line) for line in corrupt]
    else:
        problems = []
    known = load_last_known(path, records, getattr(buffer, "path", None))
    problems += known.problems
    if problems:
        log_event(POSITION_MANAGER, "last_known_runtimes_unreadable", level="ERROR",
                  details={"snapshot": str(path), "problems": problems[:20], "more": max(0, len(problems) - 20)},
                  action_taken="what could not be read is left out: those strategies get no stop until Redis "
                               "is back (the entries readable are armed)")
    configured = {s.id: s for s in services.config.strategies}
    fresh = {sid: runtime for sid, runtime in known.runtimes.items()
             if sid in configured and services.runtime_cache.get(sid) is None}
    for strategy_id, client_id in known.protective.items():
        if strategy_id in fresh and client_id:
            looked = look_up_stop(services.venue, client_id)
            if looked is None or looked.fate is not StopFate.GONE:  # live, triggered or in doubt: the venue's
                services.protective.hold(strategy_id, client_id)
    longs = [sid for sid, runtime in fresh.items() if runtime.position is Position.BOUGHT and runtime.quantity > 0]
    venue = _venue_longs(services) if longs else {}
    armed: list[str] = []
    left: dict[str, str] = {}
    for strategy_id, runtime in fresh.items():
        strategy = configured[strategy_id]
        if strategy_id in longs and venue is not None:
            held_there = venue.get(strategy.symbol, 0.0)
            if held_there <= 0:
                left[strategy_id] = f"the venue holds no long {strategy.symbol}"
            elif held_there < runtime.quantity:
                runtime = replace(runtime, quantity=held_there)  # never exit more than the venue holds
        services.runtime_cache.put(strategy_id, runtime)
        if strategy_id not in longs or strategy_id in left:
            continue
        if services.protective.holds(strategy_id):
            left[strategy_id] = f"held by venue-side stop {services.protective.held().get(strategy_id)}"
        elif not runtime.stop_loss:
            left[strategy_id] = "no stop-loss level"
        else:
            services.stops.arm(strategy.symbol, strategy_id, runtime.stop_loss, runtime.quantity)
            armed.append(strategy_id)
    if fresh or problems:
        log_event(POSITION_MANAGER, "stops_armed_from_last_known", level="WARNING",
                  details={"snapshot": str(path), "written_at": known.written_at, "runtimes": len(fresh),
                           "armed": armed, "not_armed": left, "venue_confirmed": venue is not None},
                  action_taken=f"{len(armed)} stop(s) armed from the last known runtimes (Redis down at start); "
                               "exits run from them, reduce-only, until the deferred cold start")
    return armed


def _venue_longs(services: Services) -> dict[str, float] | None:
    """Long quantity per symbol at the venue; None when it did not answer (each exit asks again)."""
    outcome = services.venue.positions(priority=Priority.STOP)
    if outcome.kind is not OutcomeKind.ACCEPTED:
        log_event(POSITION_MANAGER, "venue_positions_unavailable", level="WARNING",
                  details={"outcome": outcome.describe()},
                  action_taken="stops armed at the recorded quantities; each exit checks the venue's position")
        return None
    longs: dict[str, float] = {}
    for position in outcome.data or []:
        if position.amount > 0:
            longs[position.symbol] = longs.get(position.symbol, 0.0) + float(position.amount)
    return longs
