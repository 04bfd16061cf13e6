"""F29 / F30, issue 9 items 2 and 3: the user-data stream, end to end against the simulator.

The simulator serves POST/PUT/DELETE /fapi/v1/listenKey and /private/ws/<listenKey>;
``UserDataStream`` keeps the key alive, survives expiry and disconnects with a new
key, and delivers typed events: fills, partial fills, expiries and late
executions reach the engine before any lookup could.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
import requests
from loguru import logger

from runtime.logging import add_json_sink
from runtime.simexchange import SimExchange
from runtime.venue import BinanceFuturesConnector
from runtime.venue import OutcomeKind as K
from runtime.venue.user_events import AccountUpdate, AlgoUpdate, OrderUpdate, parse_user_frame
from runtime.venue.user_stream import UserDataStream
from runtime.venue.ws import MalformedMessage
from tests.waiting import eventually


class Recorder:
    """The callbacks, recording what arrived (thread-safe enough: appends)."""

    def __init__(self) -> None:
        self.orders: list[OrderUpdate] = []
        self.algos: list[AlgoUpdate] = []
        self.accounts: list[AccountUpdate] = []
        self.reconnects = 0
        self.threads: set[str] = set()

    def on_order(self, update: OrderUpdate) -> None:
        self.threads.add(threading.current_thread().name)
        self.orders.append(update)

    def on_reconnect(self) -> None:
        self.reconnects += 1

    def of(self, client_id: str) -> list[OrderUpdate]:
        return [o for o in list(self.orders) if o.client_id == client_id]


@pytest.fixture
def stream_of(make_connector):
    made: list[UserDataStream] = []

    def make(exchange: SimExchange, recorder: Recorder, **kwargs) -> UserDataStream:
        stream = UserDataStream(make_connector(exchange), exchange.ws_url, on_order_update=recorder.on_order,
                                on_algo_update=recorder.algos.append, on_account_update=recorder.accounts.append,
                                on_reconnect=recorder.on_reconnect, backoff_s=(0.05, 0.1, 0.2), **kwargs)
        made.append(stream)
        stream.start()
        eventually(lambda: stream.connected, timeout=10, what="user-data stream connected")
        return stream

    yield make
    for stream in made:
        stream.stop()


def test_order_updates_arrive_typed_with_executed_qty(exchange: SimExchange, connector: BinanceFuturesConnector,
                                                       stream_of) -> None:
    recorder = Recorder()
    stream_of(exchange, recorder)
    assert connector.place_order("BTCUSDT", "BUY", "MARKET", "0.05", "uds-1").kind is K.FILLED
    updates = eventually(lambda: recorder.of("uds-1") if len(recorder.of("uds-1")) >= 2 else None, timeout=10)
    assert [(u.execution, u.status) for u in updates] == [("NEW", "NEW"), ("TRADE", "FILLED")]
    filled = updates[-1]
    assert (filled.executed_qty, filled.last_fill_qty, filled.orig_qty) == (Decimal("0.05"),) * 3
    assert filled.avg_price == filled.last_fill_price == Decimal("100000")
    assert filled.side == "BUY" and filled.order_type == "MARKET" and not filled.reduce_only
    assert filled.trade_time_ms > 0 and filled.event_time_ms > 0
    account = eventually(lambda: recorder.accounts, timeout=5)[-1]
    assert account.positions[0].amount == Decimal("0.05") and account.reason == "ORDER"
    assert recorder.threads == {"user-data-stream"}, "callbacks run on the stream's thread, never the caller's"


def test_f29_unknown_reply_then_late_execution_reaches_the_stream(exchange: SimExchange,
                                                                    connector: BinanceFuturesConnector,
                                                                    stream_of) -> None:
    recorder = Recorder()
    stream_of(exchange, recorder)
    exchange.set_fault("unknown_503", count=1, execute_after_s=1.0)
    assert connector.place_order("BTCUSDT", "SELL", "MARKET", "0.02", "uds-late").kind is K.UNKNOWN
    late = eventually(lambda: [u for u in recorder.of("uds-late") if u.status == "FILLED"], timeout=10,
                      what="the late execution of an order answered -1007")
    assert late[0].executed_qty == Decimal("0.02") and late[0].side == "SELL"


def test_f30_partial_fill_and_expiry_on_the_stream(exchange: SimExchange, connector: BinanceFuturesConnector,
                                                   stream_of) -> None:
    recorder = Recorder()
    stream_of(exchange, recorder)
    exchange.set_fault("market_expire", count=1, ratio=0.6, status="EXPIRED")
    connector.place_order("BTCUSDT", "BUY", "MARKET", "0.05", "uds-exp")
    final = eventually(lambda: [u for u in recorder.of("uds-exp") if u.status == "EXPIRED"], timeout=10)[0]
    assert final.execution == "EXPIRED" and final.executed_qty == Decimal("0.03"), \
        "an EXPIRED market order reports what executed"


def test_algo_updates_for_a_stop(exchange: SimExchange, connector: BinanceFuturesConnector, stream_of) -> None:
    recorder = Recorder()
    stream_of(exchange, recorder)
    connector.place_order("BTCUSDT", "BUY", "MARKET", "0.05", "uds-long")
    assert connector.place_stop("BTCUSDT", "SELL", "95000", "0.05", "uds-sl").ok
    exchange.set_price("BTCUSDT", 94_000)
    statuses = eventually(lambda: [a.status for a in recorder.algos if a.client_algo_id == "uds-sl"]
                          if any(a.status == "FINISHED" for a in recorder.algos) else None, timeout=10)
    assert statuses == ["NEW", "TRIGGERED", "FINISHED"]
    finished = recorder.algos[-1]
    assert finished.executed_qty == Decimal("0.05") and finished.actual_order_id and finished.reduce_only


def test_listen_key_kept_alive_while_running(make_exchange, stream_of) -> None:
    exchange = make_exchange(listen_key_ttl_s=1.0)
    recorder = Recorder()
    stream = stream_of(exchange, recorder, keepalive_s=0.25)
    eventually(lambda: stream.stats()["keepalives"] >= 8, timeout=15, interval=0.05,
               what="keepalives over more than two listenKey lifetimes")
    assert recorder.reconnects == 1 and stream.stats()["listen_key_expired"] == 0, \
        "a key kept alive with PUT never expires"


def test_listen_key_expired_reconnects_with_a_new_key(exchange: SimExchange, connector: BinanceFuturesConnector,
                                                      stream_of) -> None:
    recorder = Recorder()
    stream = stream_of(exchange, recorder)
    first_key = exchange.listen_keys.create()["listenKey"]
    assert exchange.expire_listen_key() == first_key
    eventually(lambda: recorder.reconnects >= 2 and stream.connected, timeout=10, what="reconnected")
    assert stream.stats()["listen_key_expired"] == 1
    assert exchange.listen_keys.create()["listenKey"] != first_key, "a new key after expiry"
    connector.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "uds-after")
    eventually(lambda: any(u.status == "FILLED" for u in recorder.of("uds-after")), timeout=10,
               what="events flow on the new key")


def test_dropped_socket_reconnects_and_calls_on_reconnect(exchange: SimExchange, stream_of) -> None:
    recorder = Recorder()
    stream = stream_of(exchange, recorder)
    exchange.set_fault("ws_drop", count=2, abrupt=True)
    eventually(lambda: recorder.reconnects >= 2 and stream.connected, timeout=15,
               what="reconnected after a drop and two refused handshakes")
    assert stream.stats()["connects"] == recorder.reconnects


def test_malformed_frames_are_dropped_counted_and_named(exchange: SimExchange,
                                                        connector: BinanceFuturesConnector, stream_of) -> None:
    recorder = Recorder()
    stream = stream_of(exchange, recorder)
    exchange.set_fault("ws_corrupt", count=1, mode="schema", stream=stream_key(exchange))
    connector.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "uds-bad")
    eventually(lambda: stream.stats()["malformed"] == 1, timeout=10)
    assert "ORDER_TRADE_UPDATE" in stream.stats()["last_malformed"]
    eventually(lambda: any(u.status == "FILLED" for u in recorder.of("uds-bad")), timeout=10,
               what="the stream goes on after a bad frame")


def test_stop_returns_promptly_and_closes_the_key(exchange: SimExchange, stream_of) -> None:
    stream = stream_of(exchange, Recorder())
    stream.stop(timeout_s=5)
    assert not stream.connected
    reply = requests.put(f"{exchange.rest_url}/fapi/v1/listenKey", headers={"X-MBX-APIKEY": exchange.api_key},
                         timeout=2)
    assert reply.json()["code"] == -1125, "stop() deleted the listenKey"


def test_listen_key_routes_need_the_api_key(exchange: SimExchange) -> None:
    url = f"{exchange.rest_url}/fapi/v1/listenKey"
    assert requests.post(url, timeout=2).json()["code"] == -2014
    assert requests.post(url, headers={"X-MBX-APIKEY": "nope"}, timeout=2).json()["code"] == -2015
    key = requests.post(url, headers={"X-MBX-APIKEY": exchange.api_key}, timeout=2).json()["listenKey"]
    again = requests.post(url, headers={"X-MBX-APIKEY": exchange.api_key}, timeout=2).json()["listenKey"]
    assert key == again and len(key) == 64, "POST with an active key returns it (one key per account)"


@pytest.mark.parametrize("frame,fragment", [
    ("not json", "not JSON"),
    ('{"e": "ORDER_TRADE_UPDATE", "E": 1}', "field 'o'"),
    ('{"e": "ORDER_TRADE_UPDATE", "E": 1, "o": {"s": "BTCUSDT", "c": "x", "i": 1, "S": "BUY", "o": "MARKET", '
     '"X": "FILLED", "x": "TRADE", "q": "1", "z": "oops", "ap": "1", "l": "1", "L": "1", "T": 1}}', "'z'"),
])
def test_parse_user_frame_names_what_is_wrong(frame: str, fragment: str) -> None:
    with pytest.raises(MalformedMessage, match=fragment.replace("(", r"\(")):
        parse_user_frame(frame)


def stream_key(exchange: SimExchange) -> str:
    """The active listenKey (ws_corrupt's ``stream`` filter matches the key as the stream name)."""
    return exchange.listen_keys.create()["listenKey"]


def test_private_route_takes_the_key_in_the_query_or_by_subscribe(exchange: SimExchange,
                                                                  connector: BinanceFuturesConnector) -> None:
    """ccxt connects to /private/ws?listenKey=<key>; Binance's SDK opens /private/stream and SUBSCRIBEs the key."""
    import json

    import websocket

    key = exchange.listen_keys.create()["listenKey"]
    by_query = websocket.create_connection(f"{exchange.ws_url}/private/ws?listenKey={key}", timeout=5)
    by_subscribe = websocket.create_connection(f"{exchange.ws_url}/private/stream", timeout=5)
    try:
        by_subscribe.send(json.dumps({"method": "SUBSCRIBE", "params": ["not-a-key"], "id": 1}))
        assert json.loads(by_subscribe.recv()) == {"result": None, "id": 1}, "a listenKey is a stream name"
        by_subscribe.send(json.dumps({"method": "SUBSCRIBE", "params": [key], "id": 2}))
        assert json.loads(by_subscribe.recv()) == {"result": None, "id": 2}
        connector.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "uds-q")
        assert json.loads(by_query.recv())["e"] == "ORDER_TRADE_UPDATE"
        frame = json.loads(by_subscribe.recv())
        assert frame["stream"] == key and frame["data"]["e"] == "ORDER_TRADE_UPDATE"
    finally:
        by_query.close()
        by_subscribe.close()


def test_issue9_private_socket_on_an_unknown_or_expired_key_is_accepted_and_silent(
        exchange: SimExchange, connector: BinanceFuturesConnector) -> None:
    """Binance sends listenKeyExpired only for a key valid on the connection; a socket opened on a key it
    does not know is accepted and never hears anything (no error, no close), even while orders fill."""
    import websocket

    old = exchange.listen_keys.create()["listenKey"]
    assert exchange.expire_listen_key() == old
    live = exchange.listen_keys.create()["listenKey"]
    sockets = [websocket.create_connection(f"{exchange.ws_url}/private/ws/{key}", timeout=5)
               for key in ("not-a-key", old, live)]
    try:
        assert connector.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "uds-silent").kind is K.FILLED
        assert "ORDER_TRADE_UPDATE" in sockets[2].recv(), "the live key's socket gets the fill"
        for dead in sockets[:2]:
            dead.settimeout(0.5)
            with pytest.raises(websocket.WebSocketTimeoutException):
                dead.recv()
            assert dead.connected, "the venue does not close a socket on a key it does not know"
    finally:
        for ws in sockets:
            ws.close()


class ForgetfulVenue(BinanceFuturesConnector):
    """A real connector; right after its first POST /listenKey the venue forgets that key (another
    process sharing the account DELETEd it, or it lapsed), before the socket is opened."""

    def __init__(self, exchange: SimExchange) -> None:
        super().__init__(exchange.rest_url, exchange.api_key, exchange.api_secret, timeout_s=2.0)
        self.exchange = exchange
        self.keys: list[str] = []

    def create_listen_key(self, **kwargs):  # noqa: ANN003, ANN201
        created = super().create_listen_key(**kwargs)
        self.keys.append(created.data)
        if len(self.keys) == 1:
            assert self.exchange.expire_listen_key() == created.data
        return created


def test_issue9_stream_on_a_key_the_venue_forgot_renews_it_reconnects_and_alerts(
        exchange: SimExchange, connector: BinanceFuturesConnector) -> None:
    recorder, lines = Recorder(), []
    sink = add_json_sink(lines.append, "INFO")
    venue = ForgetfulVenue(exchange)
    stream = UserDataStream(venue, exchange.ws_url, on_order_update=recorder.on_order,
                            on_reconnect=recorder.on_reconnect, backoff_s=(0.05, 0.1))
    stream.start()
    try:
        eventually(lambda: len(venue.keys) >= 2 and stream.connected, timeout=10,
                   what="a second listenKey and a connection on it")
        assert connector.place_order("BTCUSDT", "BUY", "MARKET", "0.01", "uds-renewed").kind is K.FILLED
        eventually(lambda: any(u.status == "FILLED" for u in recorder.of("uds-renewed")), timeout=10,
                   what="the fill on the stream after the renewal")
    finally:
        stream.stop()
        venue.close()
        logger.remove(sink)
    assert venue.keys[1] != venue.keys[0], "fills reach the engine on a NEW key, not a silent dead socket"
    assert stream.stats()["listen_key_invalid"] == 1
    assert recorder.reconnects == 1, "on_reconnect fires for the connection that delivers, not the dead one"
    alerts = [line for line in lines if '"event":"alert_listen_key_invalid"' in line]
    assert len(alerts) == 1 and '"level":"ERROR"' in alerts[0]
