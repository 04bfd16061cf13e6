"""WebSocket streams of the simulated exchange, followed by a real client (websocket-client).

The central property: a client following Binance's local-order-book procedure
ends with exactly the exchange's book, through moving prices, sequence gaps
(F9) and corrupt frames (F12). Drops (F7) and stalls (F8) behave as a feed
must be able to detect.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import websocket

from actors.core.order_book import DepthEvent
from actors.feed_frames import AggTrade, ForceOrder, FrameDecoder, MarkPriceUpdate
from runtime.simexchange import SimExchange
from runtime.venue import BinanceFuturesConnector
from runtime.venue.ws import combined_stream_url, market_streams, routed_stream_urls
from tests.venue.depth_client import DepthFollower, LocalBook, exchange_book


@pytest.fixture
def moving(make_exchange: Callable[..., SimExchange]) -> SimExchange:
    """Prices walk fast enough to move the ladder every few ticks."""
    return make_exchange(volatility=0.002, seed=11)


@pytest.fixture
def follower(moving: SimExchange, make_connector) -> DepthFollower:
    client = DepthFollower(moving.ws_url, make_connector(moving), "BTCUSDT")
    yield client
    client.close()


def applied_at_least(n: int) -> Callable[[LocalBook], bool]:
    """Done once the synced book has moved through ``n`` distinct update ids."""
    seen: set[int | None] = set()

    def done(book: LocalBook) -> bool:
        if book.synced:
            seen.add(book.last_update_id)
        return len(seen) >= n

    return done


def converge(exchange: SimExchange, follower: DepthFollower) -> None:
    """Freeze the market, catch up with the last event, compare books."""
    exchange.pause_market()
    target = exchange.book_snapshot("BTCUSDT")["lastUpdateId"]
    reached = follower.run_until(lambda b: b.synced and b.last_update_id == target, timeout_s=3.0)
    assert reached, f"client stuck at u={follower.book.last_update_id}, exchange at {target}"
    bids, asks = exchange_book(exchange.book_snapshot("BTCUSDT"))
    assert follower.book.bids == bids, "local bids differ from the exchange's book"
    assert follower.book.asks == asks, "local asks differ from the exchange's book"


def test_local_book_following_the_depth_stream_equals_the_exchange_book(moving: SimExchange,
                                                                        follower: DepthFollower) -> None:
    start_price = moving.price("BTCUSDT")
    assert follower.run_until(applied_at_least(25), timeout_s=5.0), "never synced with the stream"
    assert moving.price("BTCUSDT") != start_price, "the price did not move: the ladder never re-centred"
    converge(moving, follower)
    assert follower.book.gaps == 0 and follower.book.snapshots == 1 and follower.malformed == []
    assert len(follower.book.bids) == 20 and max(follower.book.bids) < min(follower.book.asks)


def test_f9_sequence_gap_is_detected_and_the_book_rebuilt_from_a_snapshot(moving: SimExchange,
                                                                          follower: DepthFollower) -> None:
    assert follower.run_until(applied_at_least(5), timeout_s=5.0)
    moving.set_fault("ws_gap", count=2, symbol="BTCUSDT")
    assert follower.run_until(lambda b: b.gaps >= 1 and b.synced, timeout_s=5.0), "gap never detected"
    assert follower.book.snapshots >= 2, "a gap must trigger a new snapshot"
    converge(moving, follower)


@pytest.mark.parametrize("mode,fragment", [("json", "not JSON"), ("schema", "missing required field `pu`")])
def test_f12_corrupt_frames_are_named_and_the_book_still_converges(moving: SimExchange, follower: DepthFollower,
                                                                   mode: str, fragment: str) -> None:
    assert follower.run_until(applied_at_least(5), timeout_s=5.0)
    moving.set_fault("ws_corrupt", count=2, mode=mode)
    caught = follower.run_until(lambda b: len(follower.malformed) >= 2 and b.gaps >= 1 and b.synced, timeout_s=5.0)
    assert caught, "a dropped corrupt frame leaves a gap that pu must catch"
    assert all(fragment in message for message in follower.malformed), follower.malformed
    converge(moving, follower)


def test_f7_drop_closes_sockets_and_refuses_reconnects_for_count(exchange: SimExchange) -> None:
    url = combined_stream_url(exchange.ws_url, ["btcusdt@depth@100ms"])
    ws = websocket.create_connection(url, timeout=2)
    try:
        assert json.loads(ws.recv())["stream"] == "btcusdt@depth@100ms"
        exchange.set_fault("ws_drop", count=1)
        with pytest.raises(websocket.WebSocketConnectionClosedException):
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                ws.recv()
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(url, timeout=2)
        assert refused.value.status_code == 503
        again = websocket.create_connection(url, timeout=2)  # count=1 used up: reconnect allowed
        assert json.loads(again.recv())["data"]["e"] == "depthUpdate"
        again.close()
    finally:
        ws.close()


def test_f7_abrupt_drop_without_count_lets_clients_back_at_once(exchange: SimExchange) -> None:
    url = combined_stream_url(exchange.ws_url, ["btcusdt@depth@100ms"])
    ws = websocket.create_connection(url, timeout=2)
    ws.recv()
    exchange.set_fault("ws_drop", count=0, abrupt=True)
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            ws.recv()
    ws.close()
    back = websocket.create_connection(url, timeout=2)
    back.recv()
    back.close()


def test_f8_stall_keeps_the_socket_open_without_data_or_pong(exchange: SimExchange) -> None:
    ws = websocket.create_connection(combined_stream_url(exchange.ws_url, ["btcusdt@depth@100ms"]), timeout=0.3)
    try:
        ws.recv()
        exchange.set_fault("ws_stall")
        time.sleep(0.1)  # let the stall watcher pause reading
        drained, deadline = False, time.monotonic() + 2
        while not drained and time.monotonic() < deadline:  # drain frames already in flight
            try:
                ws.recv()
            except websocket.WebSocketTimeoutException:
                drained = True
        assert drained, "frames kept flowing during a stall"
        ws.ping("are-you-there")
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv_data(control_frame=True)  # no data, no pong
        assert ws.connected, "a stall is not a close"
        exchange.set_fault("ws_stall", on=False)
        opcodes = set()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not {websocket.ABNF.OPCODE_PONG, websocket.ABNF.OPCODE_TEXT} <= opcodes:
            try:
                opcodes.add(ws.recv_data(control_frame=True)[0])
            except websocket.WebSocketTimeoutException:
                continue
        assert websocket.ABNF.OPCODE_PONG in opcodes, "the pong arrives once the stall ends"
        assert websocket.ABNF.OPCODE_TEXT in opcodes, "data resumes once the stall ends"
    finally:
        ws.close()


def test_mark_price_agg_trade_and_force_order_streams(exchange: SimExchange,
                                                      connector: BinanceFuturesConnector) -> None:
    urls = routed_stream_urls(exchange.ws_url, market_streams("BTCUSDT"))
    assert set(urls) == {"/public", "/market"}
    sockets = [(websocket.create_connection(url, timeout=0.1), FrameDecoder("BTCUSDT", route.strip("/")))
               for route, url in urls.items()]
    try:
        time.sleep(0.05)
        connector.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "trade-1")
        exchange.emit_liquidation("BTCUSDT", "SELL", 0.5)
        seen: dict[type, object] = {}
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and len(seen) < 4:
            for ws, decoder in sockets:
                try:
                    raw = ws.recv()
                except websocket.WebSocketTimeoutException:
                    continue
                assert json.loads(raw)["stream"] in market_streams("BTCUSDT")
                event = decoder.decode(raw)  # the feed's own decoder: raises CorruptFrame on a bad frame
                seen[type(event)] = event
    finally:
        for ws, _ in sockets:
            ws.close()
    assert set(seen) == {DepthEvent, MarkPriceUpdate, AggTrade, ForceOrder}, seen.keys()
    mark = seen[MarkPriceUpdate]
    assert mark.mark_price == float(exchange.price("BTCUSDT")) and mark.event_time > 0
    assert seen[AggTrade].price == float(exchange.price("BTCUSDT"))
    assert seen[ForceOrder].order.side == "SELL" and seen[ForceOrder].order.quantity == 0.5


def next_reply(ws: websocket.WebSocket, match: Callable[[dict], bool], timeout_s: float = 2.0) -> dict:
    """The first frame matching ``match`` (events in between are skipped), within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        frame = json.loads(ws.recv())
        if match(frame):
            return frame
    raise AssertionError("no matching reply in time")


@pytest.mark.parametrize("path,fragment", [
    ("/market", "unknown path '/market'"),
    ("/feed/ws/btcusdt@depth", "unknown path '/feed/ws/btcusdt@depth'"),
])
def test_invalid_path_refused_at_handshake_naming_it(exchange: SimExchange, path: str, fragment: str) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"{exchange.ws_url}{path}", timeout=2)
    assert refused.value.status_code == 400
    assert fragment in (refused.value.resp_body or b"").decode()


@pytest.mark.parametrize("path", ["/public/ws/0", "/stream?streams=btcusdt@kline_1m", "/public/ws/BTCUSDT@depth",
                                  "/market/stream?streams=dogeusdt@markPrice"])
def test_unserved_stream_names_connect_and_send_nothing(exchange: SimExchange, path: str) -> None:
    """As on Binance: any name is accepted in the URL (ccxt connects to /public/ws/0), none is sent for it."""
    ws = websocket.create_connection(f"{exchange.ws_url}{path}", timeout=0.3)
    try:
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv()
    finally:
        ws.close()


def test_live_subscribe_on_a_raw_stream(exchange: SimExchange) -> None:
    ws = websocket.create_connection(f"{exchange.ws_url}/market/ws", timeout=2)
    try:
        ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@markPrice@1s"], "id": 7}))
        assert json.loads(ws.recv()) == {"result": None, "id": 7}
        assert json.loads(ws.recv())["e"] == "markPriceUpdate", "raw streams carry the bare event"
        ws.send("not json")
        reply = next_reply(ws, lambda r: "error" in r and r["id"] is None)
        assert "Invalid JSON" in reply["error"]["msg"]
    finally:
        ws.close()


@pytest.mark.parametrize("name", ["ethusdt@bogus", "dogeusdt@markPrice@1s", "ETHUSDT@markPrice@1s", "ethusdt"])
def test_issue9_live_subscribe_to_an_unserved_stream_is_acknowledged_and_sends_nothing(exchange: SimExchange,
                                                                                       name: str) -> None:
    """Binance acknowledges every SUBSCRIBE, unknown symbol or stream type included, and never sends a
    frame for it: a client learns nothing from the reply, so the simulator tells it nothing either."""
    ws = websocket.create_connection(f"{exchange.ws_url}/market/stream", timeout=2)
    try:
        ws.send(json.dumps({"method": "SUBSCRIBE", "params": [name], "id": 8}))
        assert json.loads(ws.recv()) == {"result": None, "id": 8}, "an unserved name is acknowledged like any other"
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 9}))
        assert json.loads(ws.recv()) == {"result": [name], "id": 9}
        ws.settimeout(0.5)
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv()  # marks tick every 50 ms here: a served name would have sent one by now
    finally:
        ws.close()
