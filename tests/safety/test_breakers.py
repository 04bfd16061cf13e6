"""F13, F22, F23, F24 circuit breakers and the board shown in the status JSON."""

from __future__ import annotations

import pytest

from actors.core.breakers import (
    AbnormalPriceBreaker,
    BreakerBoard,
    BreakerState,
    MalfunctionConfig,
    RapidLossBreaker,
    ResourceBreaker,
    StrategyMalfunctionBreaker,
    trade_stats,
)

TRIPPED, CLOSED = BreakerState.TRIPPED, BreakerState.CLOSED


# -- F23 rapid loss -------------------------------------------------------------------


def test_f23_single_trade_loss_over_5pct_trips():
    b = RapidLossBreaker(capital=10_000.0)
    assert b.record_trade("s1", -500.0, now=1.0) is None, "exactly 5 % does not trip"
    event = b.record_trade("s2", -500.01, now=2.0)
    assert event is not None and event.state is TRIPPED and event.breaker == "rapid_loss"
    assert b.state is TRIPPED and b.tripped_at == 2.0 and "s2" in (b.reason or "")


def test_f23_session_loss_over_10pct_trips():
    b = RapidLossBreaker(capital=10_000.0)
    for i, pnl in enumerate([-400.0, -400.0, 100.0, -250.0]):  # each under 5 %, no streak of 5
        assert b.record_trade(f"t{i}", pnl, now=float(i)) is None
    assert b.session_pnl == -950.0
    assert b.record_trade("t8", -50.0, now=8.0) is None, "exactly 10 % does not trip"
    event = b.record_trade("t9", -0.01, now=9.0)
    assert event is not None and "session loss" in event.reason


def test_f23_five_losses_in_a_row_trips():
    b = RapidLossBreaker(capital=1_000_000.0)
    for i in range(4):
        assert b.record_trade(f"t{i}", -1.0, now=float(i)) is None
    event = b.record_trade("t4", -1.0, now=4.0)
    assert event is not None and "5 losses in a row" in event.reason


def test_f23_a_win_breaks_the_losing_streak():
    b = RapidLossBreaker(capital=1_000_000.0)
    for pnl in [-1, -1, -1, -1, 5, -1, -1, -1, -1, 0.0]:
        assert b.record_trade("t", pnl, now=0.0) is None
    assert b.consecutive_losses == 4, "break-even leaves the streak as it is"


def test_f23_unrealized_loss_counts():
    b = RapidLossBreaker(capital=10_000.0)
    b.open_position("s1", "BTCUSDT", +1, qty=1.0, entry_price=100_000.0, now=0.0)
    assert b.mark("BTCUSDT", 99_600.0, now=1.0) is None  # -400
    assert b.mark("ETHUSDT", 1.0, now=1.5) is None, "other symbols do not move this position"
    event = b.mark("BTCUSDT", 99_499.0, now=2.0)  # -501 open loss
    assert event is not None and event.state is TRIPPED and "open position" in event.reason


def test_f23_session_counts_realized_plus_unrealized():
    b = RapidLossBreaker(capital=10_000.0)
    b.record_trade("t1", -450.0, now=0.0)
    b.record_trade("t2", -450.0, now=1.0)
    b.open_position("s3", "ETHUSDT", -1, qty=10.0, entry_price=3_000.0, now=2.0)
    assert b.mark("ETHUSDT", 3_009.0, now=3.0) is None  # -90 -> -990 total
    event = b.mark("ETHUSDT", 3_011.0, now=4.0)  # -110 -> -1010 total
    assert event is not None and "session loss" in event.reason


def test_f23_unknown_order_counts_as_filled():
    b = RapidLossBreaker(capital=10_000.0)
    b.open_position("s1", "BTCUSDT", +1, 1.0, 100_000.0, now=0.0, unknown=True)
    event = b.mark("BTCUSDT", 99_000.0, now=1.0)
    assert event is not None and "UNKNOWN" in event.reason


def test_f23_unknown_order_settled_as_not_filled_stops_counting():
    b = RapidLossBreaker(capital=10_000.0)
    b.open_position("s1", "BTCUSDT", +1, 1.0, 100_000.0, now=0.0, unknown=True)
    b.settle_unknown("s1", filled=False)
    assert b.mark("BTCUSDT", 90_000.0, now=1.0) is None
    assert b.state is CLOSED


def test_f23_close_position_realizes_the_loss():
    b = RapidLossBreaker(capital=10_000.0)
    b.open_position("s1", "BTCUSDT", -1, 0.1, 100_000.0, now=0.0)
    event = b.close_position("s1", 105_100.0, now=1.0)  # short loses 510
    assert event is not None and "trade lost 510.00" in event.reason


def test_f23_manual_reset_only_and_new_session():
    b = RapidLossBreaker(capital=10_000.0)
    b.record_trade("t", -600.0, now=0.0)
    assert b.state is TRIPPED
    b.record_trade("t", -5_000.0, now=100.0)
    assert "t: trade lost 600.00" in (b.reason or ""), "the first cause is kept"
    events = b.reset("reviewed fills, bug fixed", now=200.0)
    assert [e.state for e in events] == [CLOSED] and "reviewed fills" in events[0].reason
    assert b.state is CLOSED and b.tripped_at is None
    assert b.session_pnl == 0.0, "a reset starts a new session"
    assert b.reset("again", now=201.0) == [], "resetting a closed breaker is a no-op"


def test_f23_keyed_reset_of_an_unkeyed_breaker_is_an_error():
    with pytest.raises(KeyError):
        RapidLossBreaker(capital=1.0).reset("x", 0.0, key="s1")


# -- F13 abnormal price -------------------------------------------------------------


def test_f13_abnormal_price_pauses_entries_60s_per_symbol():
    b = AbnormalPriceBreaker(pause=60.0)
    event = b.on_abnormal("BTCUSDT", now=100.0, reason="+25 % in 40 s")
    assert event is not None and event.key == "BTCUSDT" and event.name == "abnormal_price:BTCUSDT"
    assert b.is_tripped("BTCUSDT") and not b.is_tripped("ETHUSDT")
    assert b.poll(159.9, valid=lambda s: True) == []
    events = b.poll(160.0, valid=lambda s: True)
    assert [(e.key, e.state) for e in events] == [("BTCUSDT", CLOSED)]
    assert not b.is_tripped("BTCUSDT")


def test_f13_resume_waits_for_validation():
    b = AbnormalPriceBreaker(pause=60.0)
    b.on_abnormal("BTCUSDT", now=0.0, reason="spike")
    assert b.poll(61.0, valid=lambda s: False) == []
    assert b.is_tripped("BTCUSDT")
    assert len(b.poll(62.0, valid=lambda s: s == "BTCUSDT")) == 1


def test_f13_repeat_during_pause_extends_it():
    b = AbnormalPriceBreaker(pause=60.0)
    b.on_abnormal("BTCUSDT", now=0.0, reason="spike")
    assert b.on_abnormal("BTCUSDT", now=50.0, reason="again") is None, "already tripped: no second event"
    assert b.paused_until("BTCUSDT") == 110.0
    assert b.poll(100.0, valid=lambda s: True) == []
    assert len(b.poll(110.0, valid=lambda s: True)) == 1


# -- F24 strategy malfunction ---------------------------------------------------------


def feed_trades(b: StrategyMalfunctionBreaker, sid: str, pnls: list[float]):
    events = [b.record_trade(sid, p, now=float(i)) for i, p in enumerate(pnls)]
    return [e for e in events if e is not None]


def test_f24_needs_a_full_window_of_20_trades():
    b = StrategyMalfunctionBreaker()
    assert feed_trades(b, "s1", [-1.0] * 19) == []
    assert len(feed_trades(b, "s1", [-1.0])) == 1


def test_f24_win_rate_30_points_under_baseline_disables():
    trades = [10.0] * 5 + [-1.0] * 15  # 25 % wins, small losses, positive mean
    assert trade_stats(trades).sharpe > 0
    b = StrategyMalfunctionBreaker(baseline_win_rate={"s1": 0.60, "s2": 0.50})
    events = feed_trades(b, "s1", trades)
    assert len(events) == 1 and "win rate 25%" in events[0].reason
    assert feed_trades(b, "s2", trades) == [], "25 % is only 25 points under a 50 % baseline"


def test_f24_avg_loss_over_twice_avg_win_disables():
    b = StrategyMalfunctionBreaker()
    events = feed_trades(b, "s1", [1.0] * 15 + [-2.5] * 5)  # 75 % wins, mean +0.125
    assert len(events) == 1 and "avg loss 2.50 > 2x avg win 1.00" in events[0].reason
    assert feed_trades(b, "s2", [1.0] * 15 + [-1.9] * 5) == []


def test_f24_negative_sharpe_over_20_trades_disables():
    b = StrategyMalfunctionBreaker()
    events = feed_trades(b, "s1", [1.0, -1.1] * 10)  # 50 % wins, ratio 1.1, mean -0.05
    assert len(events) == 1 and "Sharpe" in events[0].reason
    assert feed_trades(b, "s2", [1.0, -0.9] * 10) == []


def test_f24_only_that_strategy_and_operator_reset_clears_its_window():
    b = StrategyMalfunctionBreaker()
    feed_trades(b, "s1", [-1.0] * 20)
    assert b.is_tripped("s1") and not b.is_tripped("s2")
    events = b.reset("recalibrated", now=50.0, key="s1")
    assert [(e.key, e.state) for e in events] == [("s1", CLOSED)]
    assert b.stats("s1").trades == 0
    assert b.record_trade("s1", -1.0, now=51.0) is None, "judged again only on 20 new trades"


# -- F22 resources ----------------------------------------------------------------------


def test_f22_cpu_over_95_sustained_30s_trips():
    b = ResourceBreaker()
    assert b.observe(0.0, cpu_percent=96.0) is None
    assert b.observe(29.9, cpu_percent=99.0) is None
    event = b.observe(30.0, cpu_percent=97.0)
    assert event is not None and event.state is TRIPPED and "CPU" in event.reason


def test_f22_cpu_dip_restarts_the_sustain_window():
    b = ResourceBreaker()
    b.observe(0.0, cpu_percent=96.0)
    b.observe(20.0, cpu_percent=50.0)
    b.observe(21.0, cpu_percent=96.0)
    assert b.observe(50.0, cpu_percent=96.0) is None
    assert b.observe(51.0, cpu_percent=96.0) is not None


def test_f22_memory_over_90_trips_at_once():
    b = ResourceBreaker()
    assert b.observe(0.0, memory_percent=90.0) is None
    assert b.observe(1.0, memory_percent=90.5) is not None


def test_f22_latency_p99_over_10x_baseline_trips():
    b = ResourceBreaker(latency_baseline=0.002)
    assert b.observe(0.0, latency_p99=0.02) is None
    event = b.observe(1.0, latency_p99=0.021)
    assert event is not None and "latency" in event.reason


def test_f22_auto_clears_when_clear():
    b = ResourceBreaker()
    b.observe(0.0, memory_percent=95.0)
    assert b.observe(1.0, cpu_percent=40.0) is None, "memory still high (last value kept)"
    event = b.observe(2.0, memory_percent=60.0)
    assert event is not None and event.state is CLOSED
    assert b.state is CLOSED


# -- board --------------------------------------------------------------------------------


def make_board() -> BreakerBoard:
    return BreakerBoard([
        RapidLossBreaker(capital=10_000.0),
        AbnormalPriceBreaker(),
        StrategyMalfunctionBreaker(MalfunctionConfig()),
        ResourceBreaker(),
    ])


def test_board_status_rows_match_status_json():
    board = make_board()
    rows = board.to_status()
    assert [r["name"] for r in rows] == ["rapid_loss", "abnormal_price", "strategy_malfunction", "resources"]
    assert all(set(r) == {"name", "state", "reason", "tripped_at"} for r in rows)
    assert all(r["state"] == "CLOSED" and r["tripped_at"] is None for r in rows)
    assert not board.any_tripped()


def test_board_shows_each_tripped_key_and_resets_by_name():
    board = make_board()
    prices: AbnormalPriceBreaker = board["abnormal_price"]  # type: ignore[assignment]
    prices.on_abnormal("BTCUSDT", 5.0, "spike")
    prices.on_abnormal("ETHUSDT", 6.0, "spike")
    rows = {r["name"]: r for r in board.to_status()}
    assert rows["abnormal_price:BTCUSDT"] == {"name": "abnormal_price:BTCUSDT", "state": "TRIPPED",
                                              "reason": "spike", "tripped_at": 5.0}
    assert "abnormal_price" not in rows and board.any_tripped()
    events = board.reset("abnormal_price:BTCUSDT", "checked the venue", now=7.0)
    assert [e.name for e in events] == ["abnormal_price:BTCUSDT"]
    assert [r["name"] for r in board.to_status() if r["state"] == "TRIPPED"] == ["abnormal_price:ETHUSDT"]


def test_board_reset_needs_a_reason_and_a_known_name():
    board = make_board()
    with pytest.raises(ValueError):
        board.reset("rapid_loss", "  ", now=0.0)
    with pytest.raises(KeyError):
        board.reset("nope", "reason", now=0.0)
    with pytest.raises(ValueError):
        BreakerBoard([ResourceBreaker(), ResourceBreaker()])
