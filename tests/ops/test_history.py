"""Issue 15: `run.py history` — orders, fills and outcomes from the journal."""
from __future__ import annotations

import pytest

from runtime.history import orders, parse_since, render
from runtime.store.journal import JournalEntry


def entry(kind: str, cid: str, at: float, outcome: str | None = None, final: bool = False, **fields) -> JournalEntry:
    return JournalEntry(f"{int(at * 1000)}-0", kind, cid, outcome, final, fields, at, f"r{at}", "redis")


JOURNAL = [
    entry("intent", "s1:e1", 100.0, strategy_id="s1", account="alice", symbol="BTCUSDT", side="BUY",
          quantity="0.01", purpose="entry", reason="scheduled buy"),
    entry("outcome", "s1:e1", 100.2, "FILLED", True, strategy_id="s1", qty="0.01", avg_price="100000.5"),
    entry("intent", "s2:e1", 110.0, strategy_id="s2", account="bob", symbol="ETHUSDT", side="BUY",
          quantity="0.2", purpose="entry", reason="scheduled buy"),
    entry("outcome", "s2:e1", 110.5, "REFUSED", True, strategy_id="s2", reason="gate closed: symbol:ETHUSDT"),
    entry("intent", "s1:x1", 120.0, strategy_id="s1", account="alice", symbol="BTCUSDT", side="SELL",
          quantity="0.01", purpose="stop_loss", reason="stop crossed"),
]


def test_issue15_history_folds_intents_and_outcomes_into_orders_newest_first():
    rows = orders(JOURNAL)
    assert [r["client_order_id"] for r in rows] == ["s1:x1", "s2:e1", "s1:e1"]
    filled = rows[2]
    assert (filled["outcome"], filled["settled"], filled["filled_qty"], filled["avg_price"]) == \
        ("FILLED", True, 0.01, 100000.5)
    assert rows[1]["detail"] == "gate closed: symbol:ETHUSDT"
    assert rows[0]["outcome"] is None and not rows[0]["settled"], "an intent without outcome is still open"


def test_issue15_history_filters_by_strategy_and_since():
    assert [r["client_order_id"] for r in orders(JOURNAL, strategy="s1")] == ["s1:x1", "s1:e1"]
    assert [r["client_order_id"] for r in orders(JOURNAL, since=105.0)] == ["s1:x1", "s2:e1"]
    assert [r["client_order_id"] for r in orders(JOURNAL, limit=1)] == ["s1:x1"]


def test_issue15_history_table_shows_fill_and_open_orders():
    text = render(orders(JOURNAL))
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["TIME", "(UTC)", "STRATEGY"]
    assert "OPEN" in lines[1] and "stop_loss" in lines[1]
    assert "FILLED" in lines[3] and "100,000.50" in lines[3]
    assert render([]) == "no orders in the journal for this selection\n"


def test_issue15_since_accepts_durations_and_iso_times_and_names_bad_input():
    assert parse_since("10m", now=1000.0) == 400.0
    assert parse_since("2026-11-30T12:00:00Z") == parse_since("2026-11-30T12:00:00")
    with pytest.raises(ValueError, match="--since must look like"):
        parse_since("yesterday")
