"""Issue 15, gates that tell the truth: per-symbol gates, and `gate.open` meaning "entries may
go out for at least one configured symbol" (it said open while every symbol was closed)."""

from __future__ import annotations

from actors.core import signals as sig
from actors.core.degradation import Degradation, DegradationConfig
from actors.core.signals import Scope

SYMBOLS = frozenset({"BTCUSDT", "ETHUSDT"})


def make() -> Degradation:
    return Degradation(DegradationConfig(liquid_symbols=SYMBOLS, symbols=SYMBOLS))


def test_issue15_every_symbol_recovering_closes_the_status_gate():
    core = make()
    assert core.status()["gate"]["open"] is True
    for symbol in SYMBOLS:
        core.apply(sig.feed_status(symbol, "RECOVERING", "reconnecting"), 1.0)
    gate = core.status()["gate"]
    assert gate["open"] is False, f"gate.open must be false when no symbol can take entries: {gate}"
    assert {s: g["open"] for s, g in gate["symbols"].items()} == {"BTCUSDT": False, "ETHUSDT": False}
    assert all(any("RECOVERING" in r or "reconnecting" in r for r in g["reasons"]) for g in gate["symbols"].values())


def test_issue15_one_closed_symbol_keeps_the_gate_open_and_says_which_and_why():
    core = make()
    core.apply(sig.feed_status("ETHUSDT", "RECOVERING", "reconnecting"), 1.0)
    gate = core.status()["gate"]
    assert gate["open"] is True
    assert gate["symbols"]["BTCUSDT"] == {"open": True, "reasons": []}
    assert gate["symbols"]["ETHUSDT"]["open"] is False
    assert gate["symbols"]["ETHUSDT"]["reasons"][0].startswith("symbol:ETHUSDT: ")


def test_issue15_node_wide_halt_closes_every_symbol():
    core = make()
    core.apply(sig.operator_halt(True, "maintenance", Scope.NODE), 1.0)
    gate = core.status()["gate"]
    assert gate["open"] is False
    assert all(not g["open"] and any("maintenance" in r for r in g["reasons"]) for g in gate["symbols"].values())


def test_issue15_symbol_gate_agrees_with_the_order_path_check():
    core = make()
    core.apply(sig.feed_status("ETHUSDT", "RECOVERING", "reconnecting"), 1.0)
    for symbol, g in core.status()["gate"]["symbols"].items():
        assert core.gate.check("s1", symbol, "ENTRY").open is g["open"]
