"""The soak's money-safety invariants, as a pure function over a `Recording`.

`check(recording)` reads nothing but the recording (the venue ledger, the Redis journal,
the disk buffer, `/status` samples, the logs, and the harness's record of faults and daemon
processes) and returns every violation with the seed, the invariant, the order ids and
the faults around it:

- I1 one intent, at most one executed order: by client id (no execution after a complete
  fill of the same id) and by intent (one position's exits never exceed its entry);
- I2 every executed order has a journaled intent and, once faults heal, a final outcome;
- I3 every stop crossing on fresh data while the daemon runs gives an exit within
  `EXIT_S`: the clock starts at the crossing, or when the daemon is back, its data fresh
  and the venue takes orders again (exchange-side protective stops count as the exit), or
  when the position's own exit stops being in doubt: an exit the venue answered "unknown"
  (5xx) may still execute for the daemon's settle window, and one journaled by a process
  that died unsettled may be on the wire; resending either sooner risks a second sale (I1);
- I4 at the end, faults healed: each strategy's position equals what the venue executed
  for it, the strategies' sum equals the venue's position per symbol, nothing UNKNOWN;
- I5 the daemon exited only when the harness killed or stopped it (SIGTERM → exit 0, or 4 when
  the graceful stop ran out of its deadline, saying so in its log; a SIGKILL because SIGTERM did
  not end it is a violation) and never reached HARD_SHUTDOWN unless a fault called for it.

Client order ids are `<strategy>:e<n>` (entry n), `<strategy>:x<n>` (its exit, sell or
stop-loss; `x<n>.<k>` the remainder of an exit sent again) and `<strategy>:p<n>` (its
exchange-side protective stop).
"""

from __future__ import annotations

import bisect
import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from chaos.soak.recording import AppliedFault, Recording, Sample
from runtime.config import VenueConfig
from runtime.exit_codes import EXIT_STOP_DEADLINE, STOPPED_ON_REQUEST

EXIT_S = 2.0  # a stop crossing on fresh data → an exit at the venue within this
CROSS_MARGIN = 0.0005  # the price must be this far through the stop (the daemon's price source differs a little)
VENUE_GRACE_S = 5.0  # after the venue takes orders again: the last retry backoff (4 s + 20 % jitter) may still run
FRESH_GRACE_S = 1.0  # after a feed fault heals, before data counts as fresh
SETTLE_S = VenueConfig().settle_window_s  # the soak's daemon runs the default: no resend of an exit in doubt before
SEND_BOUND_S = VenueConfig().order_timeout_s + 0.5  # a send still on the wire is signed no later than this after
# its process last ran (the order timeout, plus the daemon's clock margin against the venue's)
TOUCH_SLACK_S = 0.5  # an exit this much before the recorded touch of the stop still answers it (sampling)
AROUND_S = 10.0  # faults this close to a violation are printed with it
EPS = 1e-9
ORDER_ID = re.compile(r"^(?P<strategy>.+):(?P<letter>[exp])(?P<n>\d+)(?:\.\d+)?$")  # x<n>.<k>: an exit's remainder
COMPLETE = frozenset({"FILLED"})
STOP_DEADLINE_EVENT = "stop_deadline_passed"  # the daemon's CRITICAL line when a graceful stop ran out of time

INVARIANTS = {
    "I1": "one intent -> at most one executed order (by client id and by intent)",
    "I2": "every executed order has a journaled intent and, once faults heal, a final outcome",
    "I3": f"every stop crossing on fresh data while the daemon runs -> an exit within {EXIT_S:g} s",
    "I4": "at the end, faults healed: positions equal the venue's (per strategy, per symbol), nothing UNKNOWN",
    "I5": "the daemon exited only when killed, and never reached HARD_SHUTDOWN unless a fault called for it",
}


@dataclass(frozen=True)
class Fill:
    """One execution at the venue, attributed to a strategy and a position by its client id."""

    at: float  # harness wall time (the venue's time with any clock skew undone)
    client_order_id: str
    strategy: str
    letter: str  # e | x | p
    n: int
    side: str
    quantity: float
    outcome: str
    seq: int


@dataclass
class Violation:
    invariant: str
    message: str
    order_ids: list[str] = field(default_factory=list)
    at: float | None = None
    faults: list[str] = field(default_factory=list)

    def line(self, seed: int) -> str:
        ids = f" orders {', '.join(self.order_ids)}" if self.order_ids else ""
        near = f" faults around: {', '.join(self.faults)}" if self.faults else " no fault around"
        return f"seed {seed} {self.invariant} VIOLATED: {self.message};{ids};{near}"


@dataclass
class CheckResult:
    seed: int
    counts: dict[str, dict[str, int]]
    violations: list[Violation]
    exit_latencies_s: list[float]

    @property
    def passed(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "passed": self.passed,
                "invariants": {k: {"name": INVARIANTS[k], **self.counts.get(k, {}),
                                   "violations": sum(1 for v in self.violations if v.invariant == k)}
                               for k in INVARIANTS},
                "violations": [asdict(v) for v in self.violations],
                "exit_latency_s": _latency_summary(self.exit_latencies_s)}


# --- reading the recording ---------------------------------------------------------------


def skew_at(faults: Iterable[AppliedFault], venue_s: float) -> float:
    """Seconds the venue's clock was ahead of the harness at venue time `venue_s` (clock_skew faults)."""
    for fault in faults:
        if fault.kind == "clock_skew" and fault.status == "applied":
            skew = float(fault.params.get("ms", 0)) / 1000.0
            if fault.start <= venue_s - skew <= fault.end:
                return skew
    return 0.0


def filled_qty(entry: dict[str, Any], orders: dict[str, dict[str, Any]]) -> tuple[float, str]:
    """(quantity executed, final status) of one order request: the venue's final word on the order
    when it has one (a partial fill's rest executes after the request was ledgered), else the ledger's."""
    if not entry.get("executed"):
        return 0.0, str(entry.get("outcome"))
    final = orders.get(str(entry.get("order_id")))
    if final is not None and entry.get("action") == "place":
        return float(final.get("executedQty") or 0.0), str(final.get("status"))
    if entry.get("executed_qty") not in (None, ""):
        return float(entry["executed_qty"]), str(entry.get("outcome"))
    outcome = str(entry.get("outcome"))
    return (float(entry.get("quantity") or 0.0) if outcome in COMPLETE else 0.0), outcome


def fills(recording: Recording) -> list[Fill]:
    """Every execution in the ledger (orders and triggered exchange-side stops), oldest first."""
    out = []
    for entry in recording.ledger:
        if entry.get("action") not in ("place", "trigger"):
            continue
        qty, status = filled_qty(entry, recording.orders)
        match = ORDER_ID.match(str(entry.get("client_order_id") or ""))
        if qty <= EPS or match is None:
            continue
        venue_s = float(entry["time_ms"]) / 1000.0
        out.append(Fill(venue_s - skew_at(recording.faults, venue_s), entry["client_order_id"],
                        match["strategy"], match["letter"], int(match["n"]), str(entry.get("side")), qty,
                        status, int(entry.get("seq", 0))))
    return sorted(out, key=lambda f: (f.at, f.seq))


def journal_entries(recording: Recording) -> list[dict[str, Any]]:
    """The Redis journal plus journal records still waiting in the disk buffer."""
    buffered = []
    for record in recording.buffer:
        data = record.get("data") or {}
        if record.get("kind") == "journal_intent":
            buffered.append({"kind": "intent", "client_order_id": data.get("client_order_id"), "outcome": None,
                             "final": False, "fields": data.get("fields") or {}, "at": record.get("at"),
                             "source": "buffer"})
        elif record.get("kind") == "journal_outcome":
            buffered.append({"kind": "outcome", "client_order_id": data.get("client_order_id"),
                             "outcome": data.get("outcome"), "final": bool(data.get("final")),
                             "fields": data.get("fields") or {}, "at": record.get("at"), "source": "buffer"})
    return [*recording.journal, *buffered]


def faults_around(recording: Recording, at: float | None) -> list[str]:
    if at is None:
        return []
    return [f"{f.kind}#{f.index}@{f.start - recording.started:.1f}s+{f.end - f.start:.1f}s"
            for f in recording.faults if f.status == "applied" and f.start - AROUND_S <= at <= f.end + AROUND_S]


class Availability:
    """When the daemon could be required to exit on `symbol`: up, ready, data fresh, venue taking orders."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.samples: list[Sample] = sorted(recording.samples, key=lambda s: s.at)
        self.times = [s.at for s in self.samples]

    def window_ok(self, symbol: str, start: float, end: float) -> bool:
        return self._process_up(start, end) and self._samples_ok(symbol, start, end) and self._faults_ok(start, end)

    def _process_up(self, start: float, end: float) -> bool:
        return any(run.start <= start and (run.end is None or run.end >= end) for run in self.recording.daemon_runs)

    def _samples_ok(self, symbol: str, start: float, end: float) -> bool:
        lo = max(0, bisect.bisect_right(self.times, start) - 1)  # the last sample at or before `start`, too
        hi = bisect.bisect_right(self.times, end)
        window = self.samples[lo:hi]
        return bool(window) and window[0].at <= start + 0.5 and all(
            s.up and s.ready and s.feeds.get(symbol) == "LIVE" for s in window)

    def _faults_ok(self, start: float, end: float) -> bool:
        for fault in self.recording.faults:
            if fault.status != "applied":
                continue
            grace = VENUE_GRACE_S if fault.blocks_orders else FRESH_GRACE_S if fault.blinds else None
            if grace is not None and fault.start <= end and fault.end + grace >= start:
                return False
        return True


# --- the invariants ---------------------------------------------------------------------


def check(recording: Recording) -> CheckResult:
    executed = fills(recording)
    journal = journal_entries(recording)
    violations: list[Violation] = []
    counts: dict[str, dict[str, int]] = {}
    latencies: list[float] = []
    violations += _one_order_per_intent(executed, counts)
    violations += _journaled(recording, executed, journal, counts)
    violations += _stops_exit(recording, executed, journal, counts, latencies)
    violations += _positions_agree(recording, executed, counts)
    violations += _daemon_lifecycle(recording, counts)
    for v in violations:
        v.faults = faults_around(recording, v.at)
    return CheckResult(recording.seed, counts, violations, latencies)


def _one_order_per_intent(executed: list[Fill], counts: dict[str, dict[str, int]]) -> list[Violation]:
    out = []
    by_id: dict[str, list[Fill]] = defaultdict(list)
    for f in executed:
        by_id[f.client_order_id].append(f)
    for cid, group in by_id.items():
        first = next((i for i, f in enumerate(group) if f.outcome in COMPLETE), None)
        if first is not None and first < len(group) - 1:
            out.append(Violation("I1", f"client id {cid} executed {len(group)} times, again after a complete fill "
                                 f"({[f.outcome for f in group]})", [cid], group[first + 1].at))
    positions = _positions(executed)
    for (strategy, n), (entries, exits) in positions.items():
        bought, sold = sum(f.quantity for f in entries), sum(f.quantity for f in exits)
        if sold > bought + EPS:
            ids = sorted({f.client_order_id for f in [*entries, *exits]})
            out.append(Violation("I1", f"position {strategy}#{n} exited {sold:g} for an entry of {bought:g} "
                                 f"({len(exits)} exit executions: {[f.client_order_id for f in exits]})", ids,
                                 exits[-1].at))
    counts["I1"] = {"client_ids": len(by_id), "positions": len(positions)}
    return out


def _positions(executed: list[Fill]) -> dict[tuple[str, int], tuple[list[Fill], list[Fill]]]:
    """(strategy, n) -> (entry fills, exit fills: x<n> and p<n>)."""
    out: dict[tuple[str, int], tuple[list[Fill], list[Fill]]] = {}
    for f in executed:
        entries, exits = out.setdefault((f.strategy, f.n), ([], []))
        (entries if f.letter == "e" else exits).append(f)
    return out


def _journaled(recording: Recording, executed: list[Fill], journal: list[dict[str, Any]],
               counts: dict[str, dict[str, int]]) -> list[Violation]:
    intents = {e["client_order_id"] for e in journal if e.get("kind") == "intent"}
    finals = {e["client_order_id"] for e in journal if e.get("kind") == "outcome" and e.get("final")}
    healed = recording.final is not None and recording.final.healed
    out = []
    seen: set[str] = set()
    for f in executed:
        if f.client_order_id in seen:
            continue
        seen.add(f.client_order_id)
        if f.client_order_id not in intents:
            out.append(Violation("I2", f"{f.client_order_id} executed at the venue with no journaled intent",
                                 [f.client_order_id], f.at))
        elif healed and f.letter != "p" and f.client_order_id not in finals:
            out.append(Violation("I2", f"{f.client_order_id} executed but the journal has no final outcome after "
                                 "faults healed", [f.client_order_id], f.at))
    counts["I2"] = {"executed_orders": len(seen), "journal_intents": len(intents)}
    return out


def _stop_levels(journal: list[dict[str, Any]]) -> dict[str, float]:
    levels = {}
    for e in journal:
        raw = (e.get("fields") or {}).get("stop_loss")
        if e.get("kind") == "intent" and raw not in (None, ""):
            levels[e["client_order_id"]] = float(raw)
    return levels


def _stops_exit(recording: Recording, executed: list[Fill], journal: list[dict[str, Any]],
                counts: dict[str, dict[str, int]], latencies: list[float]) -> list[Violation]:
    symbol_of = {s.id: s.symbol for s in recording.strategies}
    levels = _stop_levels(journal)
    known = {e["client_order_id"]: float(e["at"]) for e in journal
             if e.get("kind") == "outcome" and e.get("final") and e.get("outcome") in COMPLETE}
    available = Availability(recording)
    doubts = _exits_in_doubt(recording, journal)
    in_doubt = 0
    end = recording.final.at if recording.final else max((t for v in recording.prices.values() for t, _ in v),
                                                         default=recording.started)
    out, crossings, exits = [], 0, 0
    for (strategy, n), (entries, exit_fills) in sorted(_positions(executed).items()):
        entry_id = f"{strategy}:e{n}"
        stop, symbol = levels.get(entry_id), symbol_of.get(strategy)
        if not entries or stop is None or symbol is None:
            continue
        exits += bool(exit_fills)
        opened = max(entries[0].at, known.get(entry_id, entries[0].at))
        closed = exit_fills[0].at if exit_fills else end
        series = recording.prices.get(symbol, [])
        series = series[bisect.bisect_left(series, (opened, float("-inf"))):]
        touched = next((at for at, price in series if at < closed + EXIT_S and price <= stop), None)
        if touched is not None and exit_fills and touched - TOUCH_SLACK_S <= exit_fills[0].at <= touched + EXIT_S:
            crossings += 1  # the stop was reached and the position exited around it: obeyed
            latencies.append(max(0.0, exit_fills[0].at - touched))
            continue
        for at, price in series:
            if at >= closed:
                break
            if price > stop * (1 - CROSS_MARGIN) or not available.window_ok(symbol, at, at + EXIT_S):
                continue  # not through the stop, or blind / down / the venue refusing orders: not yet owed
            if any(start <= at + EXIT_S and at < until for start, until in doubts.get((strategy, n), ())):
                in_doubt += 1
                continue  # its own exit is in doubt: resending now could sell twice, so not yet owed
            crossings += 1
            if exit_fills and exit_fills[0].at <= at + EXIT_S:
                latencies.append(exit_fills[0].at - at)  # owed from when the daemon could act
                break
            late = f"exit at +{exit_fills[0].at - at:.2f} s" if exit_fills else "no exit at all"
            out.append(Violation("I3", f"{strategy}#{n} on {symbol}: price {price:g} through stop {stop:g} at "
                                 f"+{at - recording.started:.2f} s with the daemon up and fresh data; {late}",
                                 [entry_id, *sorted({f.client_order_id for f in exit_fills})], at))
            break
    counts["I3"] = {"stop_crossings": crossings, "positions_with_stop": sum(1 for k in levels if ":e" in k),
                    "positions_exited": exits, "crossings_in_doubt": in_doubt}
    return out


def _exits_in_doubt(recording: Recording, journal: list[dict[str, Any]]) -> dict[tuple[str, int], list[tuple[float, float]]]:
    """(strategy, n) -> the spans in which the position's own exit was in doubt (DESIGN §3, F29):
    the daemon may not resend it yet, so a crossing inside one is owed only once it ends.

    - An exit attempt the venue answered 5xx ("unknown": it may still execute inside the venue)
      is in doubt from that answer for the settle window.
    - An exit journaled by a daemon process that ended before the exit's final outcome may be
      on the wire: it is in doubt for a settle window after its last possible send, which its
      successor bounds by its own start, and the record by the dead process's last moment plus
      the order timeout (the daemon records that deadline before every send). Whether anything
      left at all only the dead process knew (it records "nothing sent" when a send was only
      deferred, seed 724076): from outside, that case is in doubt too, and its own
      deterministic test (tests/e2e/test_soak_regress.py) keeps it fast.
    """
    spans: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    for entry in recording.ledger:
        match = ORDER_ID.match(str(entry.get("client_order_id") or ""))
        if entry.get("action") != "place" or match is None or match["letter"] != "x" \
                or int(entry.get("http_status") or 0) < 500:
            continue
        venue_s = float(entry["time_ms"]) / 1000.0
        answered = venue_s - skew_at(recording.faults, venue_s)
        spans[(match["strategy"], int(match["n"]))].append((answered, answered + SETTLE_S))
    final_at: dict[str, float] = {}
    for e in journal:
        if e.get("kind") == "outcome" and e.get("final") and e.get("at") is not None:
            final_at.setdefault(e["client_order_id"], float(e["at"]))
    runs = sorted(recording.daemon_runs, key=lambda run: run.start)
    for e in journal:
        match = ORDER_ID.match(str(e.get("client_order_id") or ""))
        if e.get("kind") != "intent" or match is None or match["letter"] != "x" or e.get("at") is None:
            continue
        journaled, settled = float(e["at"]), final_at.get(e["client_order_id"], float("inf"))
        for run, successor in zip(runs, runs[1:]):
            if run.start <= journaled and run.end is not None and journaled <= run.end < settled:
                last_send = min(successor.start, run.end + SEND_BOUND_S)
                spans[(match["strategy"], int(match["n"]))].append((journaled, last_send + SETTLE_S))
                break
    return spans


def _positions_agree(recording: Recording, executed: list[Fill], counts: dict[str, dict[str, int]]) -> list[Violation]:
    final = recording.final
    if final is None or not final.healed:
        counts["I4"] = {"strategies": 0, "symbols": 0}
        return [Violation("I4", "the run ended before every fault healed and the daemon was back: positions not "
                          "compared", [], final.at if final else None)]
    out = []
    venue_of: dict[str, float] = defaultdict(float)
    for f in executed:
        venue_of[f.strategy] += f.quantity if f.letter == "e" else -f.quantity
    totals: dict[str, float] = defaultdict(float)
    for info in recording.strategies:
        runtime = final.runtimes.get(info.id) or {}
        if "corrupt" in runtime:
            out.append(Violation("I4", f"runtime:{info.id} unreadable at the end: {runtime['corrupt']}", [], final.at))
            continue
        mine = float(runtime.get("quantity") or 0.0) if runtime.get("position") == "bought" else 0.0
        totals[info.symbol] += mine
        if abs(mine - venue_of[info.id]) > 1e-6:
            out.append(Violation("I4", f"{info.id}: runtime holds {mine:g} ({runtime.get('position')}), the venue "
                                 f"executed a net {venue_of[info.id]:g} for it", [], final.at))
        if runtime.get("pending_order"):
            out.append(Violation("I4", f"{info.id}: order {runtime['pending_order']} still pending (UNKNOWN) after "
                                 "faults healed", [runtime["pending_order"]], final.at))
    for symbol in recording.symbols:
        venue = float(final.venue_positions.get(symbol, 0.0))
        if abs(venue - totals[symbol]) > 1e-6:
            out.append(Violation("I4", f"{symbol}: strategies hold {totals[symbol]:g} in total, the venue {venue:g}",
                                 [], final.at))
    if final.unsettled:
        out.append(Violation("I4", f"{len(final.unsettled)} journal intent(s) unsettled after faults healed",
                             sorted(final.unsettled), final.at))
    counts["I4"] = {"strategies": len(recording.strategies), "symbols": len(recording.symbols)}
    return out


def _daemon_lifecycle(recording: Recording, counts: dict[str, dict[str, int]]) -> list[Violation]:
    out = []
    for run in recording.daemon_runs:
        if run.end is None:
            continue
        if run.signal is None:
            out.append(Violation("I5", f"the daemon exited by itself with code {run.exit_code} ({run.log})", [],
                                 run.end))
        elif run.signal == "SIGTERM" and run.exit_code not in STOPPED_ON_REQUEST:
            out.append(Violation("I5", f"SIGTERM ended the daemon with code {run.exit_code}, not 0 or 4 (the "
                                       f"stop deadline) ({run.log})", [], run.end))
        elif run.signal == "SIGTERM" and run.exit_code == EXIT_STOP_DEADLINE and not any(
                e.get("event") == STOP_DEADLINE_EVENT and run.start <= e.get("at", 0.0) <= run.end
                for e in recording.log_events):
            out.append(Violation("I5", f"the daemon exited {EXIT_STOP_DEADLINE} (stop deadline) without the "
                                       f"{STOP_DEADLINE_EVENT} line naming what it left ({run.log})", [], run.end))
    allowed = [f for f in recording.faults if f.hard_shutdown and f.status == "applied"]
    for s in recording.samples:
        if s.mode == "HARD_SHUTDOWN" and not any(f.start <= s.at <= f.end + AROUND_S for f in allowed):
            out.append(Violation("I5", "mode HARD_SHUTDOWN with no fault calling for it", [], s.at))
            break
    counts["I5"] = {"daemon_runs": len(recording.daemon_runs), "samples": len(recording.samples)}
    return out


def _latency_summary(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {"n": len(ordered), "p50": round(ordered[len(ordered) // 2], 3),
            "max": round(ordered[-1], 3)}
