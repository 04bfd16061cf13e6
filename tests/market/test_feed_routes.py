"""The feed on Binance's split WebSocket routes (DESIGN §4, issue 9 item 3), over real sockets.

Each ``feed:<S>`` holds one ``/public`` connection (depth) and one ``/market`` connection (mark
price, trades, liquidations). A TCP proxy in front of the simulator (``route_proxy``) breaks
one route at a time, to show that each connection fails, is detected and reconnects on its
own, that the symbol's health is the worst of the two, and that the other connection (and
the book, when /market fails) is left alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from actors.messages import BookTop, PriceUpdate
from tests.market.actor_rig import (  # noqa: F401 - fixtures
    FAST_HEALTH,
    Rig,
    book_converges,
    exchange,
    exchange_book,
    make_rig,
    start_recorder,
    venue,
)
from tests.market.route_proxy import RouteProxy
from tests.market.test_actor_feed import first_health_signal
from tests.waiting import eventually


@pytest.fixture
def proxy(exchange) -> Iterator[RouteProxy]:
    proxy = RouteProxy(urlsplit(exchange.ws_url).port)
    yield proxy
    proxy.stop()


def connection(rig: Rig, feed, route: str) -> dict:
    return rig.details(feed)["connections"][route]


def start_via_proxy(rig: Rig, proxy: RouteProxy):
    feed = rig.start_feed(ws_url=proxy.url)
    rig.wait_status(feed, "LIVE")
    return feed


def test_feed_follows_depth_on_public_and_prices_on_market(make_rig, proxy):
    rig = make_rig()
    builder = start_recorder(rig.services, "state-builder")
    try:
        start_via_proxy(rig, proxy)

        assert sorted(proxy.paths) == [
            "/market/stream?streams=btcusdt@markPrice@1s/btcusdt@aggTrade/btcusdt@forceOrder",
            "/public/stream?streams=btcusdt@depth@100ms"], \
            f"one /public (depth) and one /market (prices) connection, nothing on the root: {proxy.paths}"
        marks = eventually(lambda: [m for m in builder.messages(PriceUpdate) if m.kind == "mark" and m.fresh],
                           what="fresh mark prices")
        assert marks[-1].price > 0 and builder.messages(BookTop), \
            "mark prices come over /market, the book over /public"
    finally:
        builder.ref.stop(timeout=5)


def test_f7_market_drop_alone_blinds_the_symbol_and_reconnects_only_market(make_rig, proxy):
    rig = make_rig()
    feed = start_via_proxy(rig, proxy)
    public_before, snapshots = connection(rig, feed, "public"), rig.details(feed)["book"]["snapshots"]
    before = len(rig.degradation.signals("feed_health"))
    t0 = time.perf_counter()
    assert proxy.sever("market") == 1

    t_down, down = first_health_signal(rig.degradation, before, lambda s: s.active, what="DISCONNECTED signal")
    latency_ms = (t_down - t0) * 1000
    print(f"\nF7 /market drop -> symbol blocked at degradation: {latency_ms:.1f} ms")
    assert down.reason.startswith("market: disconnected"), \
        f"F7: a /market-only drop blocks the symbol's entries and names the route: {down.reason}"
    assert latency_ms < 100, f"F7: symbol blocked {latency_ms:.1f} ms after the drop (bound 100 ms)"

    details = rig.wait_status(feed, "LIVE", timeout=5.0)
    market, public = details["connections"]["market"], details["connections"]["public"]
    assert market["reconnect"]["attempts"] == 2 and market["counters"]["disconnects"] == 1
    assert (public["conn"], public["counters"]["disconnects"]) == (public_before["conn"], 0), \
        "the /public connection is left alone"
    assert details["book"]["snapshots"] == snapshots and details["book"]["gaps"] == 0, \
        "a /market drop does not rebuild the book"


def test_f7_public_drop_alone_resyncs_the_book_and_leaves_market_connected(make_rig, proxy):
    rig = make_rig()
    feed = start_via_proxy(rig, proxy)
    market_before, snapshots = connection(rig, feed, "market"), rig.details(feed)["book"]["snapshots"]
    before = len(rig.degradation.signals("feed_health"))
    assert proxy.sever("public") == 1

    _, down = first_health_signal(rig.degradation, before, lambda s: s.active, what="DISCONNECTED signal")
    assert down.reason.startswith("public: disconnected"), f"F7: entries blocked by the /public drop: {down.reason}"
    details = rig.wait_status(feed, "LIVE", timeout=5.0)
    assert details["book"]["snapshots"] > snapshots, "F7/F9: the book is rebuilt from a new snapshot"
    market = details["connections"]["market"]
    assert (market["conn"], market["counters"]["disconnects"]) == (market_before["conn"], 0), \
        "the /market connection is left alone"
    book = book_converges(rig, feed)
    _, bids, asks = exchange_book(rig.exchange)
    assert (book["bids"], book["asks"]) == (bids, asks), "the rebuilt book equals the exchange's"


def test_f7_each_connection_backs_off_on_its_own_schedule(make_rig, proxy):
    rig = make_rig()
    feed = start_via_proxy(rig, proxy)
    time.sleep(0.65)  # > FAST_RECONNECT.stable_after: the first reconnect attempt is immediate
    dropped_at_wall = time.time()
    proxy.refuse("market", 3)
    proxy.sever("market")

    details = eventually(lambda: (d := rig.details(feed))["status"] == "LIVE"
                         and d["connections"]["market"]["reconnect"]["connect_failures"] == 3 and d,
                         timeout=5.0, what="/market refused 3 times, then LIVE again")
    market = details["connections"]["market"]["reconnect"]
    delays = [r["delay_s"] for r in market["recent"] if r["at"] >= dropped_at_wall]
    assert delays == [0.0, 0.05, 0.1, 0.2], f"F7: /market backs off 0, base, 2x, 4x (jitter 0): {delays}"
    assert market["connect_failures"] == 3
    public = details["connections"]["public"]["reconnect"]
    assert (public["attempts"], public["connect_failures"]) == (1, 0), "the /public schedule never moved"
    assert [r["reason"] for r in public["recent"]] == ["start"]


def test_f8_market_stall_alone_is_detected_and_only_market_reconnects(make_rig, proxy):
    """A /market socket that stays open but goes silent: mark price stale, then declared dead."""
    rig = make_rig()
    feed = start_via_proxy(rig, proxy)
    public_conn = connection(rig, feed, "public")["conn"]
    before = len(rig.degradation.signals("feed_health"))
    t0 = time.perf_counter()
    assert proxy.freeze("market") == 1

    t_stale, stale = first_health_signal(rig.degradation, before, lambda s: s.active, what="blocking signal")
    assert stale.reason.startswith("market: stale"), f"F10: stale mark price blocks entries first: {stale.reason}"
    t_dead, dead = first_health_signal(rig.degradation, before, lambda s: s.active and (
        "heartbeat_timeout" in s.reason or "pong" in s.reason), what="stall declared")
    stale_ms, dead_ms = (t_stale - t0) * 1000, (t_dead - t0) * 1000
    print(f"\nF8 /market stall -> STALE {stale_ms:.0f} ms, DISCONNECTED {dead_ms:.0f} ms")
    assert dead_ms <= (FAST_HEALTH.heartbeat_timeout + 0.1) * 1000 + 50, \
        "F8: a silent /market connection is declared dead within heartbeat_timeout + 100 ms"
    assert dead.reason.startswith("market: ")

    details = rig.wait_status(feed, "LIVE", timeout=5.0)
    assert details["connections"]["market"]["reconnect"]["attempts"] >= 2
    assert details["connections"]["public"]["conn"] == public_conn, "the /public connection is left alone"


def test_health_is_the_worst_of_the_two_connections(make_rig, proxy):
    rig = make_rig()
    feed = start_via_proxy(rig, proxy)
    proxy.freeze("public")  # depth silent: /public goes STALE while /market stays LIVE

    details = rig.wait_status(feed, "STALE", timeout=2.0)
    assert details["connections"]["market"]["status"] == "LIVE"
    assert details["connections"]["public"]["status"] == "STALE"
    assert details["reasons"][0].startswith("public: stale"), details["reasons"]
    eventually(rig.degradation.last_feed_active, timeout=1.0, what="entries blocked by the worse connection")
    rig.wait_status(feed, "LIVE", timeout=5.0)


def test_f10_f12_every_mark_corrupt_and_no_trades_leaves_the_symbol_stale(make_rig):
    """Depth alone is no price: with every /market frame corrupt (and no trades in this market) the
    symbol is STALE, although the book is LIVE; it comes back once marks decode again."""
    rig = make_rig()
    feed = rig.start_feed()
    rig.wait_status(feed, "LIVE")
    rig.exchange.set_fault("ws_corrupt", duration_s=1.0, mode="schema", stream="markPrice")

    details = rig.wait_status(feed, "STALE", timeout=2.0)
    assert details["connections"]["market"]["status"] == "STALE", "F10: no valid price on /market"
    assert details["connections"]["public"]["status"] == "LIVE" and details["book"]["state"] == "LIVE"
    assert details["counters"]["corrupt"] > 0, "F12: the corrupt marks are dropped and counted"
    rig.wait_status(feed, "LIVE", timeout=5.0)
