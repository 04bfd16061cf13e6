"""The soak checker is itself tested: recorded data with a planted bug must give a violation.

Each planted bug is the ledger/journal/status trace the bug leaves behind, fed to the pure
checker (no process): a resend without a lookup, a stop skipped while Redis is down, an
exit that ignores the fence, a daemon that exits by itself, an order left UNKNOWN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chaos.soak.checker import check
from chaos.soak.recording import AppliedFault, DaemonRun, Final, Recording, Sample, StrategyInfo

T0 = 1_000.0
QTY = 0.002
STOP = 99_000.0


def order(seq: int, at: float, cid: str, side: str, *, outcome: str = "FILLED", action: str = "place",
          qty: float = QTY, **extra: Any) -> dict[str, Any]:
    return {"seq": seq, "time_ms": int(at * 1000), "action": action, "symbol": "BTCUSDT", "side": side,
            "type": "MARKET", "quantity": str(qty), "client_order_id": cid, "outcome": outcome,
            "executed": outcome not in ("REJECTED", "NOT_EXECUTED"), **extra}


def intent(cid: str, at: float, stop: float | None = None) -> dict[str, Any]:
    return {"kind": "intent", "client_order_id": cid, "outcome": None, "final": False, "at": at, "source": "redis",
            "fields": {"strategy_id": cid.split(":")[0], "stop_loss": "" if stop is None else repr(stop)}}


def outcome(cid: str, at: float, result: str = "FILLED") -> dict[str, Any]:
    return {"kind": "outcome", "client_order_id": cid, "outcome": result, "final": True, "at": at, "fields": {},
            "source": "redis"}


def prices(points: list[tuple[float, float]], until: float = T0 + 60) -> list[tuple[float, float]]:
    """A price every 0.1 s: each (from_time, price) holds until the next one."""
    out, t, i = [], T0 - 5, 0
    while t <= until:
        while i + 1 < len(points) and points[i + 1][0] <= t:
            i += 1
        out.append((round(t, 2), points[i][1]))
        t += 0.1
    return out


def clean(**changes: Any) -> Recording:
    """One strategy: entry at +1 s with a stop, the price crosses it at +10 s, the exit lands 0.3 s later."""
    samples = [Sample(T0 - 5 + i * 0.25, True, True, True, "NORMAL", {"BTCUSDT": "LIVE"}) for i in range(300)]
    recording = Recording(
        seed=42, started=T0, duration_s=60.0, symbols=["BTCUSDT"],
        strategies=[StrategyInfo("t00", "BTCUSDT", "alpha", "class")],
        daemon_runs=[DaemonRun(T0 - 10, T0 + 65, 0, "SIGTERM")],
        samples=samples,
        prices={"BTCUSDT": prices([(T0 - 5, 100_000.0), (T0 + 10, 98_500.0)])},
        ledger=[order(1, T0 + 1, "t00:e1", "BUY"), order(2, T0 + 10.3, "t00:x1", "SELL")],
        journal=[intent("t00:e1", T0 + 0.99, STOP), outcome("t00:e1", T0 + 1.01),
                 intent("t00:x1", T0 + 10.29), outcome("t00:x1", T0 + 10.31)],
        final=Final(T0 + 61, {"t00": {"position": "exited_by_sl", "quantity": 0.0, "pending_order": ""}},
                    {"BTCUSDT": 0.0}, [], True),
    )
    for name, value in changes.items():
        setattr(recording, name, value)
    return recording


def invariants(recording: Recording) -> list[str]:
    return [v.invariant for v in check(recording).violations]


def test_clean_run_passes_and_counts_the_crossing() -> None:
    result = check(clean())
    assert result.passed, f"a clean run must pass: {[v.message for v in result.violations]}"
    assert result.counts["I3"]["stop_crossings"] == 1
    assert result.counts["I2"]["executed_orders"] == 2


def test_planted_resend_without_lookup_is_a_duplicate_order() -> None:
    """The engine resent t00:e1 after a timeout without looking it up: the venue executed it twice."""
    recording = clean()
    recording.ledger.insert(1, order(9, T0 + 2.2, "t00:e1", "BUY"))
    recording.final.venue_positions["BTCUSDT"] = QTY  # the second BUY is still open at the venue
    result = check(recording)
    first = result.violations[0]
    assert first.invariant == "I1" and "t00:e1" in first.order_ids, \
        f"one intent -> at most one executed order: the resend must be reported ({result.violations})"
    assert "I4" in invariants(recording), "the venue holds what no strategy holds"
    assert "seed 42 I1" in first.line(42)


def test_planted_stop_skipped_while_redis_is_down() -> None:
    """Redis is killed at +8 s; the price goes through the stop at +10 s; no exit is ever sent."""
    recording = clean()
    recording.faults = [AppliedFault(0, "redis_kill", T0 + 8, T0 + 20, "applied")]
    recording.ledger = recording.ledger[:1]
    recording.journal = recording.journal[:2]
    recording.final.runtimes["t00"] = {"position": "bought", "quantity": QTY, "pending_order": ""}
    recording.final.venue_positions["BTCUSDT"] = QTY
    result = check(recording)
    stops = [v for v in result.violations if v.invariant == "I3"]
    assert stops and "no exit at all" in stops[0].message, \
        f"a stop crossing on fresh data while the daemon runs gives an exit, Redis or not ({result.violations})"
    assert stops[0].faults and stops[0].faults[0].startswith("redis_kill#0"), "the violation names the fault"


def test_planted_exit_that_ignores_the_fence_is_a_second_exit() -> None:
    """A fenced (hung) incarnation's SELL goes out after the live one already exited: two exits, one entry."""
    recording = clean()
    recording.faults = [AppliedFault(0, "strategy_hang", T0 + 5, T0 + 13, "applied")]
    recording.ledger.append(order(3, T0 + 13.5, "t00:x1", "SELL"))
    recording.final.venue_positions["BTCUSDT"] = -QTY
    result = check(recording)
    assert [v.invariant for v in result.violations[:2]] == ["I1", "I1"], \
        f"an exit after a complete exit of the same intent, and more exited than entered ({result.violations})"
    assert "I4" in invariants(recording)


def test_exit_via_exchange_side_protective_stop_counts() -> None:
    recording = clean()
    recording.ledger[1] = order(2, T0 + 10.5, "t00:p1", "SELL", action="trigger")
    recording.journal[2:] = [intent("t00:p1", T0 + 5)]
    assert check(recording).passed, "an exchange-side protective stop is the position's exit"


def test_partial_exit_then_rest_under_the_same_intent_is_one_exit() -> None:
    recording = clean()
    recording.ledger[1] = order(2, T0 + 10.3, "t00:x1", "SELL", outcome="EXPIRED", executed_qty="0.001")
    recording.ledger.append(order(3, T0 + 10.6, "t00:x1", "SELL", qty=0.001))
    assert check(recording).passed, "an EXPIRED partial exit and its remainder under the same id are not a duplicate"


def test_partial_fill_counts_the_venue_final_executed_quantity() -> None:
    """The ledger saw PARTIALLY_FILLED 0.001; the rest filled later inside the venue (its order says so)."""
    recording = clean()
    recording.ledger[0] = order(1, T0 + 1, "t00:e1", "BUY", outcome="PARTIALLY_FILLED", executed_qty="0.001",
                                order_id=77)
    recording.orders = {"77": {"status": "FILLED", "executedQty": "0.002"}}
    assert check(recording).passed, "the entry is the venue's final executedQty, not the first reply's"
    recording.orders = {}
    assert "I1" in invariants(recording), "without the rest, the exit of 0.002 exceeds the 0.001 entry"


def test_crossing_while_the_daemon_is_down_is_owed_when_it_is_back() -> None:
    down = [DaemonRun(T0 - 10, T0 + 9, -9, "SIGKILL"), DaemonRun(T0 + 12, T0 + 65, 0, "SIGTERM")]
    samples = [s if not T0 + 9 <= s.at < T0 + 14 else Sample(s.at, False) for s in clean().samples]
    on_time = clean(daemon_runs=down, samples=samples)
    on_time.ledger[1] = order(2, T0 + 14.8, "t00:x1", "SELL")
    assert check(on_time).passed, "within 2 s of the daemon coming back"
    late = clean(daemon_runs=down, samples=samples)
    late.ledger[1] = order(2, T0 + 19.0, "t00:x1", "SELL")
    result = check(late)
    assert [v.invariant for v in result.violations] == ["I3"] and "exit at +" in result.violations[0].message


def test_rate_limit_flood_delays_the_obligation_until_it_heals() -> None:
    flood = [AppliedFault(0, "http_418", T0 + 9, T0 + 14, "applied", blocks_orders=True)]
    ok = clean(faults=flood)
    ok.ledger[1] = order(2, T0 + 18, "t00:x1", "SELL")
    assert check(ok).passed, "the venue refused orders: the clock starts when it takes them again"
    late = clean(faults=flood)
    late.ledger[1] = order(2, T0 + 40, "t00:x1", "SELL")
    assert invariants(late) == ["I3"]


def test_clock_skew_is_undone_on_venue_times() -> None:
    skew = [AppliedFault(0, "clock_skew", T0 + 5, T0 + 20, "applied", params={"ms": 3000})]
    recording = clean(faults=skew)
    recording.ledger[1] = order(2, T0 + 10.3 + 3.0, "t00:x1", "SELL")  # the venue's clock is 3 s ahead
    assert check(recording).passed, "a skewed venue clock must not make an on-time exit look late"


def test_executed_order_without_journal_or_final_outcome() -> None:
    recording = clean()
    recording.journal = [e for e in recording.journal if e["client_order_id"] != "t00:x1"]
    result = check(recording)
    assert [v.invariant for v in result.violations] == ["I2"] and result.violations[0].order_ids == ["t00:x1"]
    recording = clean()
    recording.journal = recording.journal[:3]
    assert invariants(recording) == ["I2"], "once faults heal, every executed order has a final outcome"


def test_buffered_intent_counts_as_journaled() -> None:
    recording = clean()
    recording.journal = recording.journal[:2]
    recording.buffer = [{"kind": "journal_intent", "at": T0 + 10.29, "data": {"client_order_id": "t00:x1",
                                                                             "fields": {}}},
                        {"kind": "journal_outcome", "at": T0 + 10.31, "data": {
                            "client_order_id": "t00:x1", "outcome": "FILLED", "final": True, "fields": {}}}]
    assert check(recording).passed, "the disk buffer is part of the journal"


def test_order_left_unknown_at_the_end() -> None:
    recording = clean()
    recording.final.runtimes["t00"]["pending_order"] = "t00:x1"
    recording.final.unsettled = ["t00:x1"]
    assert invariants(recording) == ["I4", "I4"]


def test_run_that_never_healed_is_a_violation() -> None:
    recording = clean()
    recording.final.healed = False
    assert "I4" in invariants(recording)


def test_daemon_exits_and_hard_shutdown() -> None:
    crashed = clean(daemon_runs=[DaemonRun(T0 - 10, T0 + 30, 1, None), DaemonRun(T0 + 31, None)])
    assert invariants(crashed) == ["I5"], "the daemon exited by itself"
    term = clean(daemon_runs=[DaemonRun(T0 - 10, T0 + 65, 1, "SIGTERM")])
    assert invariants(term) == ["I5"], "SIGTERM must end in exit 0"
    killed = clean(daemon_runs=[DaemonRun(T0 - 10, T0 + 30, -9, "SIGKILL"), DaemonRun(T0 + 31, None)])
    assert "I5" not in invariants(killed)
    shutdown = clean()
    shutdown.samples[100] = Sample(shutdown.samples[100].at, True, True, False, "HARD_SHUTDOWN", {"BTCUSDT": "LIVE"})
    assert invariants(shutdown) == ["I5"]


def test_recording_round_trips_through_json(tmp_path: Path) -> None:
    recording = clean()
    recording.ledger.insert(1, order(9, T0 + 2.2, "t00:e1", "BUY"))
    recording.save(tmp_path / "recording.json")
    again = Recording.load(tmp_path / "recording.json")
    assert [v.message for v in check(again).violations] == [v.message for v in check(recording).violations]


def test_seed724076_I5_a_sigterm_that_runs_out_of_its_stop_deadline_may_exit_4_saying_what_it_left() -> None:
    """Seed 724076: exit 4 (the graceful stop's deadline passed) is a stop the harness asked for,
    but only with the daemon's line naming what it left; a SIGKILL after SIGTERM stays a violation."""
    line = {"at": T0 + 64, "level": "CRITICAL", "event": "stop_deadline_passed", "node": "node",
            "details": {"unprotected": [], "in_doubt": ["t00:x2"]}}
    said = clean(daemon_runs=[DaemonRun(T0 - 10, T0 + 65, 4, "SIGTERM")], log_events=[line])
    assert invariants(said) == [], "I5: SIGTERM ended by the stop deadline (exit 4, said in the log) is a stop"
    silent = clean(daemon_runs=[DaemonRun(T0 - 10, T0 + 65, 4, "SIGTERM")])
    assert invariants(silent) == ["I5"], "exit 4 without the stop_deadline_passed line is not explained"
    earlier = clean(daemon_runs=[DaemonRun(T0 - 10, T0 + 20, 0, "SIGTERM"), DaemonRun(T0 + 70, T0 + 80, 4, "SIGTERM")],
                    log_events=[line])
    assert invariants(earlier) == ["I5"], "the line must come from the run that exited 4"
    by_itself = clean(daemon_runs=[DaemonRun(T0 - 10, T0 + 65, 4, None)], log_events=[line])
    assert invariants(by_itself) == ["I5"], "exit 4 with no SIGTERM is the daemon exiting by itself"
    sigkilled = clean(daemon_runs=[DaemonRun(T0 - 10, T0 + 65, -9, "SIGTERM")])
    assert invariants(sigkilled) == ["I5"], "SIGKILLed after its SIGTERM (the stop overran): a violation"


SETTLE = 12.0  # the daemon's default settle window (runtime.config.VenueConfig.settle_window_s)


def test_seed1001_I3_an_exit_answered_unknown_is_owed_once_its_settle_window_ends() -> None:
    """Seed 1001, t13#75: the stop-loss went out at once and the venue answered 503 "unknown"; it may
    still execute for the settle window, so a resend before then could sell twice (I1). The checker
    owes the exit from the end of that window, not from the end of the fault."""
    fault = [AppliedFault(0, "unknown_503", T0 + 9.0, T0 + 10.0, "applied", blocks_orders=True)]
    unknown = order(2, T0 + 9.6, "t00:x1", "SELL", outcome="NOT_EXECUTED", http_status=503, fault="unknown_503")
    on_time = clean(faults=fault)
    on_time.ledger[1:] = [unknown, order(3, T0 + 9.6 + SETTLE + 1.05, "t00:x1", "SELL")]
    on_time.journal[2:] = [intent("t00:x1", T0 + 9.59), outcome("t00:x1", T0 + 22.7)]
    result = check(on_time)
    assert result.passed, f"I3: an exit in doubt is owed when its settle window ends ({result.violations})"
    assert result.counts["I3"]["crossings_in_doubt"] >= 1
    late = clean(faults=fault)
    late.ledger[1:] = [unknown, order(3, T0 + 9.6 + SETTLE + 3.0, "t00:x1", "SELL")]
    late.journal[2:] = [intent("t00:x1", T0 + 9.59), outcome("t00:x1", T0 + 24.7)]
    assert invariants(late) == ["I3"], "a resend more than 2 s after the settle window ended is late"


def test_seed1001_I3_another_strategys_unknown_exit_excuses_nothing() -> None:
    """The doubt is the position's own: a sibling's exit answered "unknown" never delays this one."""
    recording = clean(strategies=[StrategyInfo("t00", "BTCUSDT", "alpha", "class"),
                                  StrategyInfo("t01", "BTCUSDT", "alpha", "class")])
    recording.ledger[1:] = [order(3, T0 + 10.1, "t01:x1", "SELL", outcome="NOT_EXECUTED", http_status=503),
                            order(4, T0 + 15.0, "t00:x1", "SELL")]
    recording.final.runtimes["t01"] = {"position": "flat", "quantity": 0.0, "pending_order": ""}
    recording.journal[2:] = [intent("t00:x1", T0 + 14.9), outcome("t00:x1", T0 + 15.1)]
    assert invariants(recording) == ["I3"], "t00's exit came 5 s after its crossing, whatever t01's fate"


def exit_journaled_before_a_kill(restart: float, fresh_from: float, resent_at: float) -> Recording:
    """Exit x1 journaled at +7.9 s, the daemon SIGKILLed at +8 s and back at `restart` (data fresh
    from `fresh_from`); the new process settles x1 NOT_FOUND and its resend x1.2 fills at `resent_at`."""
    runs = [DaemonRun(T0 - 10, T0 + 8.0, -9, "SIGKILL"), DaemonRun(restart, T0 + 65, 0, "SIGTERM")]
    samples = [s if not T0 + 8.0 <= s.at < fresh_from else Sample(s.at, False) for s in clean().samples]
    recording = clean(daemon_runs=runs, samples=samples)
    recording.ledger[1:] = [order(2, resent_at, "t00:x1.2", "SELL")]
    recording.journal[2:] = [intent("t00:x1", T0 + 7.9), outcome("t00:x1", resent_at - 0.01, "NOT_FOUND"),
                             intent("t00:x1.2", resent_at - 0.005), outcome("t00:x1.2", resent_at + 0.01)]
    return recording


def test_seed4242_I3_an_exit_in_doubt_from_a_killed_daemon_is_owed_once_the_restart_settles_it() -> None:
    """Seed 4242, t28#37: the exit was journaled just before a SIGKILL, so it may be on the wire. The
    restarted daemon may resend it only once a NOT_FOUND is final: a settle window after it came back."""
    def resent_at(at: float) -> Recording:
        return exit_journaled_before_a_kill(restart=T0 + 9.5, fresh_from=T0 + 10.0, resent_at=at)

    result = check(resent_at(T0 + 9.5 + SETTLE + 1.2))
    assert result.passed, f"I3: owed a settle window after the restart, not 2 s after it ({result.violations})"
    assert invariants(resent_at(T0 + 9.5 + SETTLE + 3.0)) == ["I3"], "later than 2 s after that is late"
    settled = resent_at(T0 + 9.5 + SETTLE + 1.2)
    settled.journal[2:3] = [intent("t00:x1", T0 + 7.9), outcome("t00:x1", T0 + 7.95, "NOT_FOUND")]
    assert invariants(settled) == ["I3"], "an exit settled before the kill was not in doubt at the restart"


def test_seed4242_I3_after_a_long_outage_an_exit_in_doubt_is_owed_as_soon_as_the_daemon_is_back() -> None:
    """Whatever the killed process sent had settled long before a restart 30 s later: the doubt
    ends a settle window after its last possible send, so the restart owes the exit within 2 s."""
    def resent_at(at: float) -> Recording:
        return exit_journaled_before_a_kill(restart=T0 + 38.0, fresh_from=T0 + 38.5, resent_at=at)

    assert check(resent_at(T0 + 39.0)).passed, "I3: exited 1 s after the daemon came back"
    assert invariants(resent_at(T0 + 49.0)) == ["I3"], \
        "a settle window after the restart is no excuse when the send's window ended before it"
