"""F7, F8, F10-F13 and recovery validation: per-symbol data health, driven with explicit times."""

from __future__ import annotations

import pytest

from actors.core.feed_health import CorruptRate, FeedHealthConfig, FeedHealthTracker, FeedStatus, worst_health, \
    worst_status

T0 = 1_000.0


def stream(tracker: FeedHealthTracker, start: float, end: float, step: float = 0.1, price: float = 100.0, **kw):
    """Regular updates from ``start`` to ``end`` inclusive; returns the last time used."""
    t = start
    while t <= end + 1e-9:
        tracker.on_update(t, event_time=t, price=price, **kw)
        t = round(t + step, 9)
    return round(t - step, 9)


def live_tracker(config: FeedHealthConfig | None = None) -> tuple[FeedHealthTracker, float]:
    tracker = FeedHealthTracker("BTCUSDT", config)
    tracker.on_connected(T0)
    t = stream(tracker, T0 + 0.1, T0 + 6.0)
    assert tracker.poll(t).status is FeedStatus.LIVE
    return tracker, t


def test_starts_disconnected_and_untradable():
    health = FeedHealthTracker("BTCUSDT").poll(T0)
    assert health.status is FeedStatus.DISCONNECTED and not health.tradable


def test_f7_disconnect_blocks_symbol_at_once():
    tracker, t = live_tracker()
    health = tracker.on_disconnected(t + 0.01, "ws closed 1006")
    assert health.status is FeedStatus.DISCONNECTED
    assert not health.tradable
    assert any("ws closed 1006" in r for r in health.reasons)
    assert health.counters.disconnects == 1


def test_f7_data_while_disconnected_is_not_accepted():
    tracker, t = live_tracker()
    tracker.on_disconnected(t)
    verdict = tracker.on_update(t + 0.1, event_time=t + 0.1, price=100.0)
    assert not verdict.accepted and "not_connected" in verdict.flags


def test_f7_resume_only_after_n_seconds_of_clean_data():
    tracker = FeedHealthTracker("BTCUSDT", FeedHealthConfig(resume_after_clean=5.0))
    assert tracker.on_connected(T0).status is FeedStatus.RECOVERING
    stream(tracker, T0 + 0.1, T0 + 5.0)  # clean since T0+0.1: 4.9 s
    assert tracker.poll(T0 + 5.0).status is FeedStatus.RECOVERING
    tracker.on_update(T0 + 5.1, event_time=T0 + 5.1, price=100.0)  # clean for 5.0 s
    health = tracker.poll(T0 + 5.1)
    assert health.status is FeedStatus.LIVE and health.tradable
    assert health.since == T0 + 5.1


def test_f7_recovery_needs_data_flowing_when_it_resumes():
    tracker = FeedHealthTracker("BTCUSDT", FeedHealthConfig(heartbeat_timeout=10.0))
    tracker.on_connected(T0)
    stream(tracker, T0 + 0.1, T0 + 0.3)  # three fresh updates, then quiet
    assert tracker.poll(T0 + 5.4).status is FeedStatus.RECOVERING, "no resume on data that stopped"
    stream(tracker, T0 + 5.5, T0 + 5.7)
    assert tracker.poll(T0 + 5.7).status is FeedStatus.RECOVERING, "the silence restarted the clean period"


def test_f7_anomaly_during_recovery_restarts_clean_period():
    tracker = FeedHealthTracker("BTCUSDT")
    tracker.on_connected(T0)
    stream(tracker, T0 + 0.1, T0 + 3.0)
    tracker.on_corrupt(T0 + 3.05)
    stream(tracker, T0 + 3.1, T0 + 8.0)  # only 4.9 s clean since the corrupt frame
    assert tracker.poll(T0 + 8.0).status is FeedStatus.RECOVERING
    stream(tracker, T0 + 8.1, T0 + 8.1)
    assert tracker.poll(T0 + 8.1).status is FeedStatus.LIVE


def test_f7_recovery_price_jump_over_5pct_alerts():
    tracker, t = live_tracker()
    tracker.take_alerts()
    tracker.on_disconnected(t + 1)
    tracker.on_connected(t + 2)
    verdict = tracker.on_update(t + 2.1, event_time=t + 2.1, price=106.0)
    alerts = tracker.take_alerts()
    assert [a.kind for a in alerts] == ["recovery_price_jump"]
    assert "recovery_price_jump" in verdict.flags
    # checked once per recovery: later prices do not alert again
    tracker.on_update(t + 2.2, event_time=t + 2.2, price=106.1)
    assert tracker.take_alerts() == []


def test_f7_recovery_price_within_5pct_does_not_alert():
    tracker, t = live_tracker()
    tracker.take_alerts()
    tracker.on_disconnected(t + 1)
    tracker.on_connected(t + 2)
    tracker.on_update(t + 2.1, event_time=t + 2.1, price=104.9)
    assert tracker.take_alerts() == []


def test_f7_recovery_uses_cold_start_reference():
    tracker = FeedHealthTracker("BTCUSDT")
    tracker.on_connected(T0, last_known_price=200.0, last_known_open_interest=1_000.0)
    tracker.on_update(T0 + 0.1, event_time=T0 + 0.1, price=100.0, open_interest=1_000.0)
    assert [a.kind for a in tracker.take_alerts()] == ["recovery_price_jump"]


def test_f7_recovery_oi_jump_over_20pct_alerts():
    tracker = FeedHealthTracker("BTCUSDT")
    tracker.on_connected(T0)
    stream(tracker, T0 + 0.1, T0 + 6.0, open_interest=1_000.0)
    tracker.on_disconnected(T0 + 7)
    tracker.on_connected(T0 + 8)
    tracker.on_update(T0 + 8.1, event_time=T0 + 8.1, price=100.0, open_interest=1_250.0)
    assert [a.kind for a in tracker.take_alerts()] == ["recovery_oi_jump"]

    tracker.on_disconnected(T0 + 9)
    tracker.on_connected(T0 + 10)
    tracker.on_update(T0 + 10.1, event_time=T0 + 10.1, price=100.0, open_interest=1_400.0)  # +12 % vs 1250
    assert tracker.take_alerts() == []


def test_f8_stall_after_heartbeat_timeout():
    tracker, t = live_tracker(FeedHealthConfig(heartbeat_timeout=2.0, stale_after=1.0))
    assert tracker.poll(t + 2.0).status is FeedStatus.STALE  # silent, but not yet a stall
    health = tracker.poll(t + 2.001)
    assert health.status is FeedStatus.DISCONNECTED
    assert health.needs_reconnect
    assert any(r.startswith("heartbeat_timeout") for r in health.reasons)
    assert health.counters.stalls == 1
    assert tracker.on_connected(t + 3).needs_reconnect is False


def test_f8_corrupt_frames_keep_the_connection_alive_but_not_the_data():
    tracker, t = live_tracker()
    for i in range(1, 30):
        tracker.on_corrupt(t + i * 0.1)
    health = tracker.poll(t + 2.9)
    assert health.status is FeedStatus.STALE, "corrupt frames are heartbeats, not fresh data"
    assert not health.needs_reconnect


def test_f10_stale_when_data_age_over_one_second():
    tracker, t = live_tracker()
    assert tracker.poll(t + 1.0).status is FeedStatus.LIVE
    health = tracker.poll(t + 1.001)
    assert health.status is FeedStatus.STALE and not health.tradable
    assert health.data_age == pytest.approx(1.001)
    assert health.counters.stale_periods == 1


def test_f10_fresh_again_only_after_three_fresh_updates():
    tracker, t = live_tracker()
    tracker.poll(t + 1.5)
    assert tracker.on_update(t + 1.6, event_time=t + 1.6, price=100.0).accepted
    assert tracker.poll(t + 1.6).status is FeedStatus.STALE
    tracker.on_update(t + 1.7, event_time=t + 1.7, price=100.0)
    assert tracker.poll(t + 1.7).status is FeedStatus.STALE
    tracker.on_update(t + 1.8, event_time=t + 1.8, price=100.0)
    assert tracker.poll(t + 1.8).status is FeedStatus.LIVE


def test_f10_stale_detected_by_next_update_without_a_poll():
    tracker, t = live_tracker()
    tracker.on_update(t + 1.5, event_time=t + 1.5, price=100.0)
    assert tracker.health(t + 1.5).status is FeedStatus.STALE


def test_f10_trickling_updates_do_not_count_as_fresh():
    tracker, t = live_tracker()
    for i in range(1, 8):
        tracker.on_update(t + 1.5 * i, event_time=t + 1.5 * i, price=100.0)
    assert tracker.health(t + 10.5).status is FeedStatus.STALE


def test_f10_corrupt_frame_breaks_the_fresh_run():
    tracker, t = live_tracker()
    tracker.poll(t + 1.5)
    stream(tracker, t + 1.6, t + 1.7)
    tracker.on_corrupt(t + 1.75)
    tracker.on_update(t + 1.8, event_time=t + 1.8, price=100.0)
    assert tracker.poll(t + 1.8).status is FeedStatus.STALE
    stream(tracker, t + 1.9, t + 2.0)
    assert tracker.poll(t + 2.0).status is FeedStatus.LIVE


def test_f11_future_timestamp_rejected():
    tracker, t = live_tracker()
    verdict = tracker.on_update(t + 0.1, event_time=t + 0.1 + 5.001, price=100.0)
    assert not verdict.accepted
    assert verdict.flags == ("future_timestamp",)
    assert verdict.effective_time == t + 0.1
    assert tracker.health(t + 0.1).counters.future_rejected == 1
    ok = tracker.on_update(t + 0.2, event_time=t + 0.2 + 5.0, price=100.0)
    assert ok.accepted, "exactly at the 5 s tolerance is accepted"


def test_f11_backwards_timestamp_flagged_suspect_and_uses_receive_time():
    tracker, t = live_tracker()
    verdict = tracker.on_update(t + 0.1, event_time=t - 3.0, price=100.0)
    assert verdict.accepted
    assert "backwards_timestamp" in verdict.flags
    assert verdict.effective_time == t + 0.1
    health = tracker.health(t + 0.1)
    assert health.suspect and health.counters.backwards == 1


def test_f11_streams_have_their_own_clocks():
    tracker, t = live_tracker()
    tracker.on_update(t + 0.1, event_time=t + 0.1, price=100.0, stream="markPrice")
    verdict = tracker.on_update(t + 0.15, event_time=t + 0.05, price=100.0, stream="aggTrade")
    assert "backwards_timestamp" not in verdict.flags


def test_f11_repeated_anomalies_alert_once_per_burst():
    tracker, t = live_tracker()
    tracker.take_alerts()
    tracker.on_update(t + 0.1, event_time=t + 10, price=100.0)
    tracker.on_update(t + 0.2, event_time=t + 10, price=100.0)
    assert tracker.take_alerts() == []
    tracker.on_update(t + 0.3, event_time=t + 10, price=100.0)
    alerts = tracker.take_alerts()
    assert [a.kind for a in alerts] == ["timestamp_anomalies_repeated"]
    assert alerts[0].symbol == "BTCUSDT" and alerts[0].at == t + 0.3


def test_f11_sparse_anomalies_do_not_alert():
    tracker, t = live_tracker()
    tracker.take_alerts()
    for i in range(3):
        tracker.on_update(t + 61.0 * i, event_time=t + 61.0 * i + 10, price=100.0)
    assert tracker.take_alerts() == []


def test_f12_corrupt_rate_over_5pct_signals_reduced():
    tracker, t = live_tracker()  # 60 clean updates in the window so far
    tracker.take_alerts()
    for i in range(3):
        health = tracker.on_corrupt(t + 0.01 * (i + 1))
    assert health.corrupt_rate == pytest.approx(3 / 63)
    assert not health.reduced, "4.8 % is under the limit"
    health = tracker.on_corrupt(t + 0.04)
    assert health.corrupt_rate == pytest.approx(4 / 64)
    assert health.reduced, "6.25 % is over the 5 % limit"
    assert health.status is FeedStatus.LIVE, "corrupt frames degrade the node, they do not block the symbol"


def test_f12_corrupt_rate_exactly_5pct_is_not_reduced():
    tracker = FeedHealthTracker("BTCUSDT")
    tracker.on_connected(T0)
    for i in range(95):
        tracker.on_update(T0 + 0.01 * i, event_time=T0 + 0.01 * i, price=100.0)
    for i in range(5):
        tracker.on_corrupt(T0 + 0.95 + 0.001 * i)
    health = tracker.poll(T0 + 0.96)
    assert health.corrupt_rate == pytest.approx(0.05)
    assert not health.reduced
    tracker.on_corrupt(T0 + 0.97)
    health = tracker.poll(T0 + 0.97)
    assert health.reduced
    assert any(r.startswith("corrupt_rate") for r in health.reasons)
    assert [a.kind for a in tracker.take_alerts()] == ["corrupt_rate"]


def test_f12_few_messages_are_not_judged():
    tracker = FeedHealthTracker("BTCUSDT")
    tracker.on_connected(T0)
    tracker.on_update(T0, event_time=T0, price=100.0)
    tracker.on_corrupt(T0 + 0.1)
    assert not tracker.poll(T0 + 0.1).reduced


def test_f12_corrupt_rate_rolls_off_the_window():
    tracker = FeedHealthTracker("BTCUSDT", FeedHealthConfig(corrupt_window=60.0))
    tracker.on_connected(T0)
    for i in range(20):
        tracker.on_corrupt(T0 + 0.01 * i)
    assert tracker.poll(T0 + 1).reduced
    stream(tracker, T0 + 2, T0 + 62, step=1.0)
    health = tracker.poll(T0 + 62)
    assert not health.reduced and health.corrupt_rate == 0.0


def test_f13_price_up_more_than_20pct_in_a_minute_is_abnormal():
    tracker, t = live_tracker()
    tracker.take_alerts()
    verdict = tracker.on_update(t + 30, event_time=t + 30, price=120.5)
    assert "abnormal_price" in verdict.flags
    health = tracker.health(t + 30)
    assert health.abnormal_price and "abnormal_price" in health.reasons
    assert [a.kind for a in tracker.take_alerts()] == ["abnormal_price"]
    assert not tracker.health(t + 91).abnormal_price, "the flag expires with its window"


def test_f13_price_down_more_than_20pct_is_abnormal_but_19pct_is_not():
    tracker, t = live_tracker()
    assert "abnormal_price" not in tracker.on_update(t + 0.1, event_time=t + 0.1, price=81.0).flags
    assert "abnormal_price" in tracker.on_update(t + 0.2, event_time=t + 0.2, price=79.9).flags


def test_f13_slow_move_over_more_than_a_minute_is_not_abnormal():
    tracker, t = live_tracker()
    verdict = tracker.on_update(t + 61, event_time=t + 61, price=125.0)
    assert "abnormal_price" not in verdict.flags


def test_f13_zscore_outlier_flagged():
    tracker = FeedHealthTracker("BTCUSDT")
    tracker.on_connected(T0)
    price = 100.0
    for i in range(60):
        price *= 1.0005 if i % 2 else 0.9995
        tracker.on_update(T0 + 0.1 * i, event_time=T0 + 0.1 * i, price=price)
    verdict = tracker.on_update(T0 + 6.1, event_time=T0 + 6.1, price=price * 1.03)
    assert "zscore_outlier" in verdict.flags
    assert "abnormal_price" not in verdict.flags, "3 % is an outlier, not a 20 % move"
    assert tracker.health(T0 + 6.1).counters.zscore_outliers == 1


def test_f13_depth_collapse_is_abnormal():
    tracker, t = live_tracker()
    tracker.on_depth(t, 1_000_000.0)
    assert not tracker.on_depth(t + 1, 60_000.0).abnormal_price  # -94 %
    health = tracker.on_depth(t + 2, 40_000.0)  # -96 %
    assert health.abnormal_price and health.counters.depth_collapses == 1


def test_f9_book_resync_blocks_then_resumes_with_the_book():
    tracker, t = live_tracker()
    assert tracker.set_book_live(t, False).status is FeedStatus.RECOVERING
    stream(tracker, t + 0.1, t + 0.5)
    assert tracker.poll(t + 0.5).status is FeedStatus.RECOVERING, "no LIVE symbol without a LIVE book"
    assert tracker.set_book_live(t + 0.5, True).status is FeedStatus.LIVE


def test_f9_book_rebuilt_on_stale_data_stays_stale():
    tracker, t = live_tracker()
    tracker.set_book_live(t, False)
    assert tracker.set_book_live(t + 3, True).status is FeedStatus.STALE


def test_f11_repeated_anomalies_alert_once_per_burst():
    tracker = FeedHealthTracker("BTCUSDT", FeedHealthConfig())
    tracker.on_connected(0.0)
    for i in range(20):  # twenty future-dated messages within a second: one burst
        tracker.on_update(100.0 + i * 0.05, event_time=200.0 + i, price=100.0)
    alerts = [a for a in tracker.take_alerts() if a.kind == "timestamp_anomalies_repeated"]
    assert len(alerts) == 1, f"one alert per burst, got {len(alerts)}"


def test_f13_one_step_move_is_flagged_once():
    tracker = FeedHealthTracker("BTCUSDT", FeedHealthConfig())
    tracker.on_connected(0.0)
    flagged = [
        "abnormal_price" in tracker.on_update(t, event_time=t, price=100.0 if t < 10 else 70.0).flags
        for t in (1.0, 2.0, 10.0, 11.0, 12.0, 13.0)
    ]
    assert flagged == [False, False, True, False, False, False], "later prices compare with the new level"


# --- two connections, one symbol (DESIGN §4: /public depth, /market prices) -----------------


def test_worst_health_takes_the_worse_connection_and_names_its_route():
    public, t = live_tracker()
    market, _ = live_tracker(FeedHealthConfig(stale_after=1.5))
    combined = worst_health("BTCUSDT", {"public": public.poll(t), "market": market.poll(t)})
    assert combined.status is FeedStatus.LIVE and combined.tradable and combined.reasons == ()
    market.on_disconnected(t + 0.01, "connection lost")
    combined = worst_health("BTCUSDT", {"public": public.poll(t + 0.01), "market": market.poll(t + 0.01)})
    assert combined.status is FeedStatus.DISCONNECTED and not combined.tradable, \
        "F7: a /market-only drop blinds the symbol"
    assert combined.reasons[0] == "market: disconnected: connection lost"
    assert combined.since == t + 0.01
    assert combined.counters.connects == 2 and combined.counters.disconnects == 1, "counters are summed"


def test_worst_status_order_blind_is_worse_than_recovering():
    assert worst_status(FeedStatus.LIVE, FeedStatus.RECOVERING) is FeedStatus.RECOVERING
    assert worst_status(FeedStatus.RECOVERING, FeedStatus.STALE) is FeedStatus.STALE
    assert worst_status(FeedStatus.STALE, FeedStatus.DISCONNECTED) is FeedStatus.DISCONNECTED


def test_worst_health_f10_market_stale_alone_blocks_entries_and_ages_by_the_older_data():
    public, t = live_tracker()
    market, _ = live_tracker()
    stream(public, t + 0.1, t + 1.5)  # depth keeps flowing, prices stop
    combined = worst_health("BTCUSDT", {"public": public.poll(t + 1.5), "market": market.poll(t + 1.5)})
    assert combined.status is FeedStatus.STALE, "F10: stale mark price blocks entries although depth flows"
    assert combined.data_age is not None and combined.data_age >= 1.5 - 1e-9
    assert any(r.startswith("market: stale") for r in combined.reasons)


def test_f12_one_corrupt_rate_per_symbol_over_both_connections_alerted_once():
    """A burst on the low-rate /market connection is weighed against the symbol's whole traffic."""
    config = FeedHealthConfig(corrupt_min_messages=10)
    shared = CorruptRate(config)
    public, market = FeedHealthTracker("BTCUSDT", config, shared), FeedHealthTracker("BTCUSDT", config, shared)
    public.on_connected(T0)
    market.on_connected(T0)
    t = stream(public, T0 + 0.01, T0 + 0.9, step=0.01)  # 90 depth updates
    for i in range(4):
        market.on_corrupt(t + 0.01 * (i + 1))
    assert not market.health(t + 0.05).reduced, "4 corrupt of 94 messages is under 5 %"
    for i in range(4):
        market.on_corrupt(t + 0.05 + 0.01 * (i + 1))
    public.on_update(t + 0.1)
    combined = worst_health("BTCUSDT", {"public": public.poll(t + 0.1), "market": market.poll(t + 0.1)})
    assert combined.reduced and abs(combined.corrupt_rate - 8 / 99) < 1e-9, "8 of 99 messages is over 5 %"
    alerts = [a.kind for a in public.take_alerts() + market.take_alerts()]
    assert alerts.count("corrupt_rate") == 1, f"REDUCED is alerted once for the symbol: {alerts}"
    assert sum("corrupt_rate" in r for r in combined.reasons) == 1, combined.reasons
