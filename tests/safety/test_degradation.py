"""Degradation modes, trading states and the gate (DESIGN §2, §5), driven by signals at explicit times."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core import signals as sig
from actors.core.breakers import BreakerEvent, BreakerState
from actors.core.degradation import (
    Degradation,
    DegradationConfig,
    Mode,
    OrderKind,
    TradingState,
)
from actors.core.feed_health import FeedHealthTracker
from actors.core.signals import Effect, Scope, Signal

ENTRY, EXIT = OrderKind.ENTRY, OrderKind.EXIT
LIQUID = frozenset({"BTCUSDT", "ETHUSDT"})


def make(**kw) -> Degradation:
    kw.setdefault("liquid_symbols", LIQUID)
    kw.setdefault("clean_period", 60.0)
    return Degradation(DegradationConfig(**kw))


def reduced(active: bool = True, clean_period: float | None = None) -> Signal:
    return Signal("feed:BTCUSDT", "corrupt_rate", active, Effect.REDUCED, reason="corrupt 7 %",
                  clean_period=clean_period)


def tripped(name: str, key: str | None = None, state: BreakerState = BreakerState.TRIPPED) -> BreakerEvent:
    return BreakerEvent(name, key, state, "test", 0.0)


def test_normal_gate_open_at_full_size():
    d = make()
    decision = d.gate.check("s1", "SOLUSDT", ENTRY)
    assert decision.open and decision.reasons == [] and decision.size_factor == 1.0
    assert d.mode is Mode.NORMAL and d.trading is TradingState.ACTIVE and d.exit_code is None


def test_f7_feed_stale_closes_entries_on_that_symbol_only():
    d = make()
    transitions = d.apply(sig.feed_status("BTCUSDT", "STALE", "data age 1.2s"), now=1.0)
    assert [(t.kind, t.scope, t.from_, t.to) for t in transitions] == [("gate", "symbol:BTCUSDT", "OPEN", "CLOSED")]
    closed = d.gate.check("s1", "BTCUSDT", ENTRY)
    assert not closed.open and closed.size_factor == 0.0
    assert closed.reasons == ["symbol:BTCUSDT: feed:BTCUSDT: data age 1.2s"], "scope, source, reason"
    assert d.gate.check("s1", "ETHUSDT", ENTRY).open
    assert d.gate.check("s1", "BTCUSDT", EXIT).open, "stop-losses still run on a stale symbol's positions"
    assert d.trading is TradingState.ACTIVE and d.gate.open, "node-wide trading continues"
    assert d.apply(sig.feed_status("BTCUSDT", "LIVE"), now=2.0)[0].to == "OPEN"
    assert d.gate.check("s1", "BTCUSDT", ENTRY).open


def test_reduced_only_liquid_symbols_at_half_size():
    d = make()
    transitions = d.apply(reduced(), now=5.0)
    assert [(t.kind, t.from_, t.to) for t in transitions] == [("mode", "NORMAL", "REDUCED")]
    liquid = d.gate.check("s1", "BTCUSDT", ENTRY)
    assert liquid.open and liquid.size_factor == 0.5
    illiquid = d.gate.check("s1", "DOGEUSDT", ENTRY)
    assert not illiquid.open and "not in the liquid set" in illiquid.reasons[0]
    assert "corrupt 7 %" in illiquid.reasons[0], "the reason says why the node is REDUCED"
    assert d.trading is TradingState.ACTIVE
    assert any(r.startswith("REDUCED:") for r in d.status()["gate"]["reasons"])


def test_f23_rapid_loss_emergency_no_entries_flatten():
    d = make()
    transitions = d.apply(sig.from_breaker(tripped("rapid_loss")), now=3.0)
    assert ("mode", "NORMAL", "EMERGENCY") in [(t.kind, t.from_, t.to) for t in transitions]
    assert ("trading", "ACTIVE", "REDUCING") in [(t.kind, t.from_, t.to) for t in transitions]
    assert not d.gate.check("s1", "BTCUSDT", ENTRY).open
    assert d.gate.check("s1", "BTCUSDT", EXIT).open
    assert d.flatten_requested == ("node",)
    # operator reset of the breaker is the validation: it reopens without a clean period
    d.apply(sig.from_breaker(tripped("rapid_loss", state=BreakerState.CLOSED)), now=4.0)
    assert d.mode is Mode.NORMAL and d.flatten_requested == ()


def test_hard_shutdown_is_terminal_with_exit_code_3():
    d = make()
    transitions = d.apply(sig.supervisor_escalation("root: 4 restarts in 600s"), now=10.0)
    assert [(t.kind, t.to) for t in transitions] == [("mode", "HARD_SHUTDOWN"), ("trading", "REDUCING")]
    assert d.exit_code == 3
    d.apply(Signal("supervisor", "escalated", False, Effect.HARD_SHUTDOWN, clean_period=0.0), now=11.0)
    d.tick(10_000.0)
    assert d.mode is Mode.HARD_SHUTDOWN, "only a manual restart leaves HARD_SHUTDOWN"
    assert not d.gate.check("s1", "BTCUSDT", ENTRY).open
    assert d.gate.check("s1", "BTCUSDT", EXIT).open, "flatten runs before the final flush"
    assert d.flatten_requested == ("node",)


def test_hard_shutdown_final_flush_closes_exits():
    d = make()
    assert d.begin_flush(0.0) == [], "no flush outside HARD_SHUTDOWN"
    d.apply(sig.supervisor_escalation("root tripped"), now=1.0)
    transitions = d.begin_flush(2.0)
    assert [(t.kind, t.from_, t.to) for t in transitions] == [("trading", "REDUCING", "HALTED")]
    exit_decision = d.gate.check("s1", "BTCUSDT", EXIT)
    assert not exit_decision.open and "final flush" in exit_decision.reasons[0]
    assert d.flatten_requested == ()


@pytest.mark.parametrize(
    "signal",
    [
        reduced(),
        sig.from_breaker(tripped("rapid_loss")),
        sig.store(up=False),
        sig.operator_halt(True, "maintenance"),
        sig.clock_offset(9.0),
        sig.supervisor_escalation("root"),
    ],
    ids=["REDUCED", "EMERGENCY", "store-down", "operator-halt", "clock", "HARD_SHUTDOWN"],
)
def test_risk_reducing_exits_allowed_in_every_mode(signal):
    d = make()
    d.apply(signal, now=0.0)
    decision = d.gate.check("s1", "DOGEUSDT", "EXIT")
    assert decision.open and decision.size_factor == 1.0


def test_upward_transition_immediate_downward_after_clean_period():
    d = make(clean_period=60.0)
    assert d.apply(reduced(), now=0.0)[0].to == "REDUCED"
    assert d.apply(reduced(active=False), now=10.0) == [], "clearing starts the clean period"
    assert d.mode is Mode.REDUCED
    assert d.tick(69.9) == []
    transitions = d.tick(70.0)
    assert [(t.kind, t.from_, t.to, t.at) for t in transitions] == [("mode", "REDUCED", "NORMAL", 70.0)]
    assert "corrupt_rate" in transitions[0].cause
    assert transitions[0].as_dict()["from"] == "REDUCED"


def test_cause_returning_during_clean_period_restarts_it():
    d = make(clean_period=60.0)
    d.apply(reduced(), now=0.0)
    d.apply(reduced(active=False), now=10.0)
    d.apply(reduced(), now=50.0)
    d.apply(reduced(active=False), now=55.0)
    assert d.tick(70.0) == [] and d.mode is Mode.REDUCED
    assert d.tick(115.0)[0].to == "NORMAL"


def test_worse_cause_is_immediate_and_milder_cause_remains():
    d = make(clean_period=60.0)
    d.apply(reduced(), now=0.0)
    d.apply(sig.from_breaker(tripped("resources")), now=1.0)
    d.apply(Signal("monitor:store", "emergency", True, Effect.EMERGENCY, reason="disk 98 %"), now=2.0)
    assert d.mode is Mode.EMERGENCY
    d.apply(Signal("monitor:store", "emergency", False, Effect.EMERGENCY), now=3.0)
    assert d.mode is Mode.EMERGENCY
    assert d.tick(63.0)[0].to == "REDUCED", "the REDUCED causes are still active"


def test_f18_store_down_closes_gate_and_store_up_reopens_it():
    d = make()
    transitions = d.apply(sig.store(up=False, reason="PING timeout"), now=0.0)
    assert [(t.kind, t.from_, t.to) for t in transitions] == [("trading", "ACTIVE", "HALTED")]
    decision = d.gate.check("s1", "BTCUSDT", ENTRY)
    assert not decision.open and "PING timeout" in decision.reasons[0]
    assert _open_and_reasons(d.status()["gate"]) == {"open": False, "reasons": ["monitor:store: PING timeout"]}
    assert d.apply(sig.store(up=True), now=0.5)[0].to == "ACTIVE"
    assert d.gate.check("s1", "BTCUSDT", ENTRY).open


def test_f21_clock_offset_over_5s_halts_entries():
    d = make()
    d.apply(sig.clock_offset(2.0), now=0.0)
    assert d.gate.check("s1", "BTCUSDT", ENTRY).open, "1-5 s is an alert, not a halt"
    d.apply(sig.clock_offset(-5.5), now=1.0)
    assert not d.gate.check("s1", "BTCUSDT", ENTRY).open
    d.apply(sig.clock_offset(0.1), now=2.0)
    assert d.gate.check("s1", "BTCUSDT", ENTRY).open


def test_operator_halt_and_resume():
    d = make()
    d.apply(sig.operator_halt(True, "deploy"), now=0.0)
    assert d.trading is TradingState.HALTED
    assert d.gate.check("s1", "BTCUSDT", ENTRY).reasons == ["operator: halt: deploy"]
    d.apply(sig.operator_halt(False, "deploy done"), now=1.0)
    assert d.trading is TradingState.ACTIVE


def test_f24_strategy_scope_blocks_only_that_strategy():
    d = make()
    d.apply(sig.from_breaker(tripped("strategy_malfunction", "s1")), now=0.0)
    assert not d.gate.check("s1", "BTCUSDT", ENTRY).open
    assert d.gate.check("s2", "BTCUSDT", ENTRY).open
    assert d.gate.check("s1", "BTCUSDT", EXIT).open


def test_f3_token_invalid_pauses_the_account():
    d = make()
    d.apply(sig.account_paused("alice", True), now=0.0)
    assert not d.gate.check("s1", "BTCUSDT", ENTRY, account="alice").open
    assert d.gate.check("s2", "BTCUSDT", ENTRY, account="bob").open


def test_f10_stale_exit_requests_flatten_of_the_symbol():
    d = make()
    d.apply(sig.stale_exit("BTCUSDT", True), now=0.0)
    assert d.flatten_requested == ("symbol:BTCUSDT",)
    assert d.trading is TradingState.ACTIVE


def test_all_blocking_reasons_are_listed():
    d = make()
    d.apply(sig.store(up=False), now=0.0)
    d.apply(sig.feed_status("BTCUSDT", "DISCONNECTED", "ws closed"), now=0.0)
    d.apply(sig.strategy_disabled("s1", True, "4 crashes in 600s"), now=0.0)
    reasons = d.gate.check("s1", "BTCUSDT", ENTRY).reasons
    assert reasons == ["monitor:store: store down", "symbol:BTCUSDT: feed:BTCUSDT: ws closed",
                       "strategy:s1: supervisor: 4 crashes in 600s"]


def test_block_clean_period_holds_entry_blocks_when_configured():
    d = make(block_clean_period=2.0)
    d.apply(sig.clock_offset(9.0), now=0.0)
    d.apply(sig.clock_offset(0.0), now=1.0)
    assert not d.gate.check("s1", "BTCUSDT", ENTRY).open
    assert "holding until 3.000" in d.gate.check("s1", "BTCUSDT", ENTRY).reasons[0]
    d.tick(3.0)
    assert d.gate.check("s1", "BTCUSDT", ENTRY).open


def test_status_shape():
    d = make()
    d.apply(reduced(), now=0.0)
    status = d.status()
    assert status["mode"] == "REDUCED" and status["trading"] == "ACTIVE"
    assert status["gate"]["open"] is True and status["flatten"] == []
    assert [c["cause"] for c in d.causes()] == ["corrupt_rate"]


def test_clearing_an_unknown_cause_is_a_no_op():
    d = make()
    assert d.apply(sig.store(up=True), now=0.0) == []
    assert d.mode is Mode.NORMAL


# -- signals table -------------------------------------------------------------------------


def test_mode_effects_are_node_wide_only():
    with pytest.raises(ValueError):
        Signal("x", "y", True, Effect.REDUCED, Scope.SYMBOL, "BTCUSDT")
    with pytest.raises(ValueError):
        Signal("x", "y", True, Effect.BLOCK_ENTRIES, Scope.SYMBOL)  # no key
    with pytest.raises(ValueError):
        Signal("x", "y", True, Effect.BLOCK_ENTRIES, key="BTCUSDT")  # key on node scope


@pytest.mark.parametrize(
    "event,effect,label",
    [
        (tripped("rapid_loss"), Effect.EMERGENCY, "node"),
        (tripped("abnormal_price", "BTCUSDT"), Effect.BLOCK_ENTRIES, "symbol:BTCUSDT"),
        (tripped("strategy_malfunction", "s1"), Effect.BLOCK_ENTRIES, "strategy:s1"),
        (tripped("resources"), Effect.REDUCED, "node"),
        (tripped("something_new"), Effect.BLOCK_ENTRIES, "node"),
    ],
)
def test_breaker_mapping(event, effect, label):
    signal = sig.from_breaker(event)
    assert signal.effect is effect and signal.scope_label == label and signal.active


def test_f12_feed_health_maps_to_symbol_gate_and_reduced():
    tracker = FeedHealthTracker("SOLUSDT")
    d = make()
    for signal in sig.from_feed_health(tracker.poll(0.0)):
        d.apply(signal, now=0.0)
    assert not d.gate.check("s1", "SOLUSDT", ENTRY).open, "a feed that never connected blocks its symbol"
    assert d.mode is Mode.NORMAL
    tracker.on_connected(1.0)
    for i in range(25):
        tracker.on_corrupt(1.0 + i * 0.01)
    for signal in sig.from_feed_health(tracker.poll(1.3)):
        d.apply(signal, now=1.3)
    assert d.mode is Mode.REDUCED


# -- invariants under any signal sequence -------------------------------------------------

SIGNALS = [
    sig.feed_status("BTCUSDT", "STALE"), sig.feed_status("BTCUSDT", "LIVE"),
    sig.store(up=False), sig.store(up=True),
    reduced(True), reduced(False),
    sig.from_breaker(tripped("rapid_loss")), sig.from_breaker(tripped("rapid_loss", state=BreakerState.CLOSED)),
    sig.operator_halt(True, "x"), sig.operator_halt(False, "x"),
    sig.strategy_disabled("s1", True), sig.strategy_disabled("s1", False),
    sig.supervisor_escalation("root"),
]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(range(len(SIGNALS))), st.floats(0, 100)), max_size=30),
       st.booleans())
def test_gate_invariants_hold_for_any_signal_sequence(steps, flush):
    d = make(clean_period=30.0)
    now = 0.0
    shutdown = False
    for index, dt in steps:
        now += dt
        d.tick(now)
        signal = SIGNALS[index]
        d.apply(signal, now)
        shutdown = shutdown or signal.effect is Effect.HARD_SHUTDOWN
        assert (d.mode is Mode.HARD_SHUTDOWN) == shutdown, "HARD_SHUTDOWN is entered at once and never left"
        active = [c for c in d.causes() if c["holds_until"] is None]
        worst = max((Mode[c["effect"]].rank for c in active if c["effect"] in Mode.__members__), default=0)
        assert d.mode.rank >= worst, "an active cause's mode applies at once"
        for strategy, symbol in (("s1", "BTCUSDT"), ("s2", "ETHUSDT"), ("s2", "DOGEUSDT")):
            entry = d.gate.check(strategy, symbol, ENTRY)
            blockers = [c for c in d.causes() if c["effect"] in ("BLOCK_ENTRIES", "FLATTEN")
                        and c["scope"] in ("node", f"symbol:{symbol}", f"strategy:{strategy}")]
            if entry.open:
                assert not blockers and d.mode.rank <= Mode.REDUCED.rank
                assert entry.size_factor == (0.5 if d.mode is Mode.REDUCED else 1.0)
            else:
                assert entry.reasons, "a closed gate always says why"
            assert d.gate.check(strategy, symbol, EXIT).open
    if flush and shutdown:
        d.begin_flush(now)
        assert not d.gate.check("s1", "BTCUSDT", EXIT).open


def _open_and_reasons(gate: dict) -> dict:
    """The node-wide part of the status gate (per-symbol gates are tests/safety/test_symbol_gates.py's)."""
    return {"open": gate["open"], "reasons": gate["reasons"]}


def test_f31_failed_strategy_and_unprotected_position_are_node_wide_reduced_signals():
    from actors.core import signals as sig
    for signal in (sig.strategy_failed("s1", True, "SAFETY_ABORT: corrupt"), sig.position_unprotected("s1", True)):
        assert signal.effect is sig.Effect.REDUCED and signal.scope is sig.Scope.NODE
    assert sig.position_unprotected("s1", True).identity != sig.position_unprotected("s2", True).identity
    assert sig.strategy_failed("s1", True).identity != sig.strategy_failed("s2", True).identity
