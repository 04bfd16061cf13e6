"""The feed:<SYMBOL> actor against the real simulated exchange over real sockets on 127.0.0.1.

Each test breaks the feed the way the failure matrix says (F7 drop, F8 stall, F9 gap,
F11 timestamps, F12 corrupt frames, F13 abnormal price) and shows detection, the Signal
told to a recording `degradation`, recovery, and a local book equal to the exchange's.
Intervals are injected short (actor_rig.FAST_*); every wait is bounded.
"""

from __future__ import annotations

import time
from dataclasses import replace

from actors.circuit_breaker import AbnormalPrice, PriceValidity
from actors.core.feed_health import FeedHealthConfig
from actors.core.reconnect import ReconnectConfig
from actors.core.signals import Effect, Scope
from actors.degradation import DegradationActor, ReportHealth
from tests.market.actor_rig import (  # noqa: F401 - fixtures
    FAST_HEALTH,
    FAST_TIMINGS,
    SYMBOL,
    Inbox,
    book_converges,
    exchange,
    exchange_book,
    make_rig,
    venue,
)
from tests.waiting import eventually


def attempts(details: dict) -> dict[str, int]:
    """Connection attempts per route."""
    return {route: link["reconnect"]["attempts"] for route, link in details["connections"].items()}


def signals_after(inbox: Inbox, cause: str, start: int) -> list:
    return [(t, s) for t, s in inbox.timed() if getattr(s, "cause", None) == cause][start:]


def first_health_signal(inbox: Inbox, start: int, predicate, timeout: float = 3.0, what: str = ""):
    return eventually(lambda: next(((t, s) for t, s in signals_after(inbox, "feed_health", start) if predicate(s)),
                                   None), timeout=timeout, what=what)


def assert_book_equals_exchange(rig, feed) -> None:
    book = book_converges(rig, feed)
    _, bids, asks = exchange_book(rig.exchange)
    assert book["bids"] == bids, "local bids differ from the exchange's book after recovery"
    assert book["asks"] == asks, "local asks differ from the exchange's book after recovery"
    assert len(bids) == 20 and max(bids) < min(asks)


def test_f7_feed_drop_disconnected_within_100ms_then_backoff_resync_and_clean_resume(make_rig):
    rig = make_rig()
    feed = rig.start_feed()
    rig.wait_status(feed, "LIVE")
    time.sleep(FAST_RECONNECT_STABLE)  # a stable connection: the first reconnect attempt is immediate
    before = len(rig.degradation.signals("feed_health"))
    snapshots_before = rig.details(feed)["book"]["snapshots"]
    dropped_at_wall = time.time()
    t0 = time.perf_counter()
    rig.exchange.set_fault("ws_drop", count=3)  # close every socket now, refuse the next 3 handshakes

    t_down, down = first_health_signal(rig.degradation, before, lambda s: s.active, what="DISCONNECTED signal")
    latency_ms = (t_down - t0) * 1000
    print(f"\nF7 drop -> DISCONNECTED signal at degradation: {latency_ms:.1f} ms")
    assert down.scope is Scope.SYMBOL and down.key == SYMBOL and down.effect is Effect.BLOCK_ENTRIES
    assert "disconnected" in down.reason, f"the entries block names the drop: {down.reason}"
    assert latency_ms < 100, f"F7: symbol blocked {latency_ms:.1f} ms after the drop (bound 100 ms)"

    details = rig.wait_status(feed, "LIVE", timeout=5.0)
    for route, link in details["connections"].items():  # both routes dropped; 3 refusals shared between them
        delays = [r["delay_s"] for r in link["reconnect"]["recent"] if r["at"] >= dropped_at_wall]
        assert delays and delays == [0.0, 0.05, 0.1, 0.2][:len(delays)], \
            f"F7: /{route} reconnects on its own backoff 0, base, 2x, 4x (jitter 0 injected): {delays}"
    assert details["reconnect"]["connect_failures"] == 3
    assert details["book"]["snapshots"] > snapshots_before, "F7: the book is rebuilt from a new snapshot"

    # resume only after clean data: RECOVERING first, LIVE only resume_after_clean later
    timeline = eventually(lambda: (tl := signals_after(rig.degradation, "feed_health", before)) and
                          not tl[-1][1].active and tl, timeout=1.0, what="LIVE signal at degradation")
    recovering = [t for t, s in timeline if s.active and "recovering" in s.reason]
    live = [t for t, s in timeline if not s.active]
    assert recovering and live, f"expected RECOVERING then LIVE, got {[s.reason for _, s in timeline]}"
    assert live[-1] - recovering[-1] >= FAST_HEALTH.resume_after_clean - 0.01, \
        "F7: entries reopened before resume_after_clean seconds of clean data"
    assert_book_equals_exchange(rig, feed)


FAST_RECONNECT_STABLE = 0.65  # > actor_rig.FAST_RECONNECT.stable_after


def test_f7_more_than_five_reconnect_failures_reduced_and_alert_then_cleared(make_rig):
    rig = make_rig()
    feed = rig.start_feed(reconnect=ReconnectConfig(base_delay=0.02, max_delay=0.1, jitter=0.0, reduced_after=5,
                                                    stable_after=0.4))
    rig.wait_status(feed, "LIVE")
    rig.exchange.set_fault("ws_drop", count=13)  # shared by the two connections: one of them fails > 5 times

    reduced = eventually(lambda: [s for s in rig.degradation.signals("reconnect_failures") if s.active],
                         timeout=5.0, what="reconnect_failures REDUCED")[0]
    assert reduced.effect is Effect.REDUCED and reduced.scope is Scope.NODE, \
        "F7: more than 5 reconnect failures puts the node in REDUCED"
    assert rig.details(feed)["reconnect"]["reduced"]
    rig.wait_status(feed, "LIVE", timeout=5.0)  # still reconnecting, forever, and it gets back
    cleared = eventually(lambda: [s for s in rig.degradation.signals("reconnect_failures") if not s.active],
                         timeout=3.0, what="REDUCED cleared after a stable connection")
    assert cleared and rig.details(feed)["reconnect"]["failures"] == 0


def test_f8_feed_stall_stale_then_disconnected_within_heartbeat_bound_then_recovers(make_rig):
    rig = make_rig()
    feed = rig.start_feed()
    rig.wait_status(feed, "LIVE")
    before = len(rig.degradation.signals("feed_health"))
    t0 = time.perf_counter()
    rig.exchange.set_fault("ws_stall", duration_s=1.0)  # no frames, no pongs, socket open

    t_stale, stale = first_health_signal(rig.degradation, before, lambda s: s.active and "stale" in s.reason,
                                         what="STALE signal")
    t_dead, dead = first_health_signal(rig.degradation, before, lambda s: s.active and (
        "heartbeat_timeout" in s.reason or "pong" in s.reason), what="DISCONNECTED (stall) signal")
    stale_ms, dead_ms = (t_stale - t0) * 1000, (t_dead - t0) * 1000
    print(f"\nF8 stall -> STALE {stale_ms:.0f} ms (stale_after {FAST_HEALTH.stale_after * 1000:.0f}), "
          f"DISCONNECTED {dead_ms:.0f} ms (heartbeat_timeout {FAST_HEALTH.heartbeat_timeout * 1000:.0f})")
    assert stale_ms <= (FAST_HEALTH.stale_after + 0.1) * 1000 + 50, "F10: STALE later than stale_after + 100 ms"
    assert dead_ms <= (FAST_HEALTH.heartbeat_timeout + 0.1) * 1000 + 50, \
        "F8: entries blocked later than heartbeat_timeout + 100 ms"
    assert dead_ms >= FAST_HEALTH.heartbeat_timeout * 1000 * 0.9, "stall declared before heartbeat_timeout"

    details = rig.wait_status(feed, "LIVE", timeout=6.0)
    assert details["counters"]["stalls"] + details["counters"]["pong_timeouts"] >= 1
    assert min(attempts(details).values()) >= 2, "F8: each stalled socket is dropped and reconnected"
    assert_book_equals_exchange(rig, feed)


def test_f9_sequence_gap_resyncs_book_from_snapshot(make_rig):
    rig = make_rig()
    feed = rig.start_feed()
    rig.wait_status(feed, "LIVE")
    before = len(rig.degradation.signals("feed_health"))
    snapshots = rig.details(feed)["book"]["snapshots"]
    rig.exchange.set_fault("ws_gap", count=2, symbol=SYMBOL)

    _, resync = first_health_signal(rig.degradation, before, lambda s: s.active, what="book resync signal")
    assert "order book resync" in resync.reason, f"F9: entries blocked while the book rebuilds: {resync.reason}"
    details = eventually(lambda: (d := rig.details(feed))["book"]["gaps"] >= 1 and d["status"] == "LIVE" and d,
                         timeout=3.0, what="gap detected and book LIVE again")
    assert details["book"]["snapshots"] > snapshots, "F9: the book is rebuilt from a REST snapshot"
    assert attempts(details) == {"public": 1, "market": 1}, "a gap resyncs the book; it does not reconnect"
    assert_book_equals_exchange(rig, feed)


def test_f12_corrupt_frames_dropped_counted_reduced_and_book_still_exact(make_rig):
    rig = make_rig()
    feed = rig.start_feed()
    rig.wait_status(feed, "LIVE")
    rig.exchange.set_fault("ws_corrupt", count=25, mode="json")

    reduced = eventually(lambda: [s for s in rig.degradation.signals("corrupt_rate") if s.active],
                         timeout=3.0, what="corrupt_rate REDUCED")[0]
    assert reduced.effect is Effect.REDUCED, "F12: corrupt rate > 5 % puts the node in REDUCED"
    details = eventually(lambda: (d := rig.details(feed))["counters"]["corrupt"] >= 25 and d, timeout=3.0,
                         what="25 corrupt frames counted")
    assert details["counters"]["corrupt"] == 25, "F12: every corrupt frame is dropped and counted once"
    assert attempts(details) == {"public": 1, "market": 1}, "corrupt frames do not kill a connection"
    rig.exchange.set_fault("ws_corrupt", count=3, mode="schema", stream="markPrice")
    eventually(lambda: rig.details(feed)["counters"]["corrupt"] >= 28, timeout=3.0, what="schema errors counted")
    rig.wait_status(feed, "LIVE", timeout=3.0)
    assert_book_equals_exchange(rig, feed)
    rig.exchange.resume_market()
    eventually(lambda: [s for s in rig.degradation.signals("corrupt_rate") if not s.active], timeout=5.0,
               what="REDUCED cleared once the corrupt rate is back under 5 %")


def test_f11_future_timestamps_rejected_until_clock_offset_known(make_rig):
    rig = make_rig()
    feed = rig.start_feed()
    rig.wait_status(feed, "LIVE")
    rig.exchange.set_fault("clock_skew", ms=6000)  # venue event times 6 s ahead of this host

    details = rig.wait_status(feed, "STALE", timeout=3.0)
    assert details["counters"]["future_rejected"] > 0, "F11: events > 5 s in the future are rejected"
    eventually(rig.degradation.last_feed_active, timeout=1.0, what="entries blocked while every event is rejected")
    assert rig.venue.server_time().ok  # what monitor:clock does: the measured offset now explains the skew
    rig.wait_status(feed, "LIVE", timeout=3.0)


def test_f13_abnormal_price_tells_circuit_breaker(make_rig):
    rig = make_rig()
    feed = rig.start_feed()
    rig.wait_status(feed, "LIVE")
    rig.exchange.set_fault("price_spike", pct=25.0, symbol=SYMBOL)

    abnormal = eventually(lambda: rig.breaker.messages(AbnormalPrice), timeout=3.0, what="AbnormalPrice")
    assert abnormal[0].symbol == SYMBOL and "20%" in abnormal[0].reason
    eventually(lambda: not rig.breaker.messages(PriceValidity)[-1].valid, timeout=3.0,
               what="PriceValidity(False) while the move is abnormal (the breaker keeps entries paused)")
    details = eventually(lambda: (d := rig.details(feed))["abnormal_price"] and d, timeout=1.0, what="flagged")
    assert details["status"] == "LIVE", "F13 keeps positions and the feed: only entries pause"


FAST_TIMINGS_QUIET = replace(FAST_TIMINGS, abnormal_quiet_s=0.3)  # marks come every 50 ms in FAST_MARKET


def _validity_after(inbox: Inbox, start: int, valid: bool) -> float | None:
    """perf time of the first PriceValidity(valid) after the first `start` messages of that kind."""
    return next((t for t, m in inbox.timed(PriceValidity)[start:] if m.valid is valid), None)


def test_f13_single_move_validates_once_the_move_is_over(make_rig):
    """One step move is one flagged event: prices at the new level are compared with the new level,
    so the data validates after the quiet period, inside the window; the breaker's 60 s pause is
    what holds entries, and it is never stretched by the data staying "invalid"."""
    window = 2.0
    rig = make_rig()
    feed = rig.start_feed(health=FeedHealthConfig(stale_after=0.3, heartbeat_timeout=0.5, resume_after_clean=0.3,
                                                  abnormal_window=window),
                          timings=FAST_TIMINGS_QUIET)
    rig.wait_status(feed, "LIVE")
    eventually(lambda: rig.breaker.messages(PriceValidity) and rig.breaker.messages(PriceValidity)[-1].valid,
               timeout=3.0, what="PriceValidity(True) while LIVE")
    before = len(rig.breaker.messages(PriceValidity))
    t0 = time.perf_counter()
    rig.exchange.set_fault("price_spike", pct=-25.0, symbol=SYMBOL)

    eventually(lambda: _validity_after(rig.breaker, before, False), timeout=2.0, what="PriceValidity(False)")
    valid_at = eventually(lambda: _validity_after(rig.breaker, before, True), timeout=3 * window,
                          what="PriceValidity(True) once the move has left the window")
    assert valid_at - t0 < window, \
        f"F13: the data validates once the move is over, inside the window ({valid_at - t0:.2f}s, window {window}s)"
    assert len(rig.breaker.messages(AbnormalPrice)) == 1, "one move, one AbnormalPrice"
    assert rig.details(feed)["status"] == "LIVE"


def test_f13_a_new_move_after_validation_pauses_again_although_the_tracker_alert_is_suppressed(make_rig):
    """The tracker alerts once per window; a second move right after the data validated must still
    reach the breaker (else entries would stay open through it)."""
    window = 2.0
    rig = make_rig()
    feed = rig.start_feed(health=FeedHealthConfig(stale_after=0.3, heartbeat_timeout=0.5, resume_after_clean=0.3,
                                                  abnormal_window=window),
                          timings=FAST_TIMINGS_QUIET)
    rig.wait_status(feed, "LIVE")
    rig.exchange.set_fault("price_spike", pct=-25.0, symbol=SYMBOL)
    eventually(lambda: len(rig.breaker.messages(AbnormalPrice)) == 1, timeout=2.0, what="first AbnormalPrice")
    before = len(rig.breaker.messages(PriceValidity))
    eventually(lambda: _validity_after(rig.breaker, before, True), timeout=3 * window, what="validated")
    assert rig.details(feed)["abnormal_price"], "precondition: the tracker still holds its once-a-window flag"
    rig.exchange.set_fault("price_spike", pct=-25.0, symbol=SYMBOL)

    second = eventually(lambda: rig.breaker.messages(AbnormalPrice)[1:], timeout=2.0, what="second AbnormalPrice")
    assert second[0].symbol == SYMBOL
    eventually(lambda: not rig.breaker.messages(PriceValidity)[-1].valid, timeout=1.0,
               what="PriceValidity(False) again during the second move")


def test_feed_status_details_and_config_defaults(make_rig):
    rig = make_rig()
    feed = rig.start_feed(health=FeedHealthConfig(stale_after=0.3, heartbeat_timeout=0.5, resume_after_clean=0.1))
    details = rig.wait_status(feed, "LIVE")
    assert details["data_age_ms"] is not None and details["data_age_ms"] < 300
    assert details["book"]["state"] == "LIVE" and details["connected"]
    assert set(details["counters"]) >= {"messages", "updates", "corrupt", "stalls", "disconnects"}
    feed.stop(timeout=5)
    # The newest signal may still be an earlier "recovering" one for a moment: wait for the stop's own.
    last = eventually(lambda: (s := rig.degradation.signals("feed_health")[-1]).active and "stopped" in s.reason and s,
                      timeout=5.0, what="a stopped feed leaves its symbol blocked (active signal naming 'stopped')")
    assert last.active


def test_f8_feed_silent_blocks_entries_at_the_real_gate_then_reopens(make_rig):
    """End to end with the real degradation actor: the gate the execution engine reads."""
    rig = make_rig()
    degradation = DegradationActor.start(rig.services, revalidate=(), tick_interval=0.02)
    rig.actors.append(degradation)
    entry = lambda: rig.services.gate().check("s1", SYMBOL, "ENTRY")  # noqa: E731
    feed = rig.start_feed()
    rig.wait_status(feed, "LIVE")
    eventually(lambda: entry().open, timeout=2.0, what="entries open once the feed is LIVE")
    t0 = time.perf_counter()
    rig.exchange.set_fault("ws_stall", duration_s=1.0)
    decision = eventually(lambda: (d := entry()) and not d.open and d, timeout=2.0, what="entries blocked")
    blocked_ms = (time.perf_counter() - t0) * 1000
    print(f"\nfeed silent -> entries blocked at the gate: {blocked_ms:.0f} ms "
          f"(stale_after {FAST_HEALTH.stale_after * 1000:.0f} ms, heartbeat_timeout "
          f"{FAST_HEALTH.heartbeat_timeout * 1000:.0f} ms)")
    assert blocked_ms <= (FAST_HEALTH.heartbeat_timeout + 0.1) * 1000 + 50, \
        "§6: feed silent -> entries blocked within heartbeat_timeout + 100 ms"
    assert any(f"symbol:{SYMBOL}" in r for r in decision.reasons), decision.reasons
    assert rig.services.gate().check("s1", SYMBOL, "EXIT").open, "exits stay allowed on a blind symbol"
    eventually(lambda: entry().open, timeout=5.0, what="entries reopen after recovery")


def test_feed_answers_report_health_with_every_cause(make_rig):
    rig = make_rig()
    feed = rig.start_feed()
    rig.wait_status(feed, "LIVE")
    before = len(rig.degradation.signals())
    feed.tell(ReportHealth())
    causes = eventually(lambda: {s.cause for s in rig.degradation.signals()[before:]} >= {
        "feed_health", "corrupt_rate", "reconnect_failures"} and rig.degradation.signals()[before:], timeout=1.0,
        what="re-reported causes")
    assert all(not s.active for s in causes), "a LIVE feed re-reports every cause as clear"
