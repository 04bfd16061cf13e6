"""Issue 9 item 7 / DESIGN §4: third-party Binance clients work against the simulator unchanged.

ccxt's ``binanceusdm`` / ccxt.pro and Binance's own SDK
(``binance-sdk-derivatives-trading-usds-futures``) are configured only with the
simulator's URLs, exactly as one would point them at a testnet, and must
round-trip a MARKET order, a query, a cancel of a LIMIT order, an algo stop,
positions and a local order book. When one does not, the simulator is fixed,
never the client.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import ccxt
import ccxt.pro as ccxt_pro
import pytest
from binance_common import configuration as binance_common
from binance_sdk_derivatives_trading_usds_futures import derivatives_trading_usds_futures as usds

from actors.core.order_book import DepthEvent
from runtime.simexchange import SimExchange
from tests.venue.depth_client import LocalBook

SYMBOL = "BTC/USDT:USDT"


def point_ccxt_at(client, exchange: SimExchange):  # noqa: ANN001, ANN201 - ccxt's own types
    """What a user does for a testnet: sandbox mode, then the venue's URLs (the simulator's here)."""
    client.set_sandbox_mode(True)
    api = client.urls["api"]
    for name, url in list(api.items()):
        if isinstance(url, str) and name.startswith("fapi"):
            api[name] = url.replace("https://testnet.binancefuture.com", exchange.rest_url)
    if "ws" in api:
        api["ws"]["linear"] = f"{exchange.ws_url}/ws"
    return client


def book_matches(local_bids, local_asks, exchange: SimExchange, levels: int = 20) -> bool:
    """The local book's best ``levels`` per side equal the exchange's book."""
    snap = exchange.book_snapshot("BTCUSDT", levels)
    want = ([(Decimal(p), Decimal(q)) for p, q in snap["bids"]], [(Decimal(p), Decimal(q)) for p, q in snap["asks"]])
    have = ([(Decimal(str(p)), Decimal(str(q))) for p, q in local_bids[:levels]],
            [(Decimal(str(p)), Decimal(str(q))) for p, q in local_asks[:levels]])
    return have == want


def test_ccxt_binanceusdm_trades_queries_cancels_stops_and_reads_positions(exchange: SimExchange) -> None:
    client = point_ccxt_at(ccxt.binanceusdm({"apiKey": exchange.api_key, "secret": exchange.api_secret}), exchange)
    markets = client.load_markets()
    assert SYMBOL in markets and markets[SYMBOL]["precision"]["amount"] == 0.001, "load_markets finds the swaps"
    bought = client.create_order(SYMBOL, "market", "buy", 0.01)
    assert bought["status"] == "closed" and bought["filled"] == 0.01
    assert client.fetch_order(bought["id"], SYMBOL)["status"] == "closed"
    resting = client.create_order(SYMBOL, "limit", "buy", 0.01, 97_000)
    assert resting["status"] == "open"
    assert client.cancel_order(resting["id"], SYMBOL)["status"] == "canceled"
    stop = client.create_order(SYMBOL, "market", "sell", 0.01, None, {"stopLossPrice": 95_000, "reduceOnly": True})
    assert stop["triggerPrice"] == 95_000 and exchange.state()["open_algo_orders"] == 1, "an algo stop is held"
    [position] = client.fetch_positions([SYMBOL])
    assert (position["contracts"], position["side"]) == (0.01, "long")
    assert client.fetch_balance()["USDT"]["total"] == 100_000
    exchange.set_price("BTCUSDT", 94_000)
    assert [p for p in client.fetch_positions([SYMBOL]) if p["contracts"]] == [], "the stop closed the long"


def test_ccxt_pro_keeps_a_local_order_book(exchange: SimExchange) -> None:
    async def watch() -> bool:
        client = point_ccxt_at(ccxt_pro.binanceusdm({"apiKey": exchange.api_key, "secret": exchange.api_secret}),
                               exchange)
        try:
            book = None
            for _ in range(5):
                book = await asyncio.wait_for(client.watch_order_book(SYMBOL), 10)
            exchange.pause_market()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if book_matches(book["bids"], book["asks"], exchange):
                    return True
                await asyncio.sleep(0.05)
            return False
        finally:
            await client.close()

    assert asyncio.run(watch()), "ccxt.pro's local book equals the exchange's (snapshot + diffs on /public)"


@pytest.fixture
def sdk(exchange: SimExchange):  # noqa: ANN201 - the SDK's own type
    return usds.DerivativesTradingUsdsFutures(
        config_rest_api=binance_common.ConfigurationRestAPI(api_key=exchange.api_key, api_secret=exchange.api_secret,
                                                             base_path=exchange.rest_url),
        config_ws_streams=binance_common.ConfigurationWebSocketStreams(stream_url=exchange.ws_url))


def test_binance_sdk_trades_queries_cancels_stops_and_reads_positions(exchange: SimExchange, sdk) -> None:
    rest = sdk.rest_api
    assert {s.symbol for s in rest.exchange_information().data().symbols} == {"BTCUSDT", "ETHUSDT"}
    bought = rest.new_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01,
                            new_order_resp_type="RESULT").data()
    assert (bought.status, bought.executed_qty) == ("FILLED", "0.010")
    assert rest.query_order(symbol="BTCUSDT", orig_client_order_id=bought.client_order_id).data().status == "FILLED"
    resting = rest.new_order(symbol="BTCUSDT", side="BUY", type="LIMIT", quantity=0.01, price=97_000,
                             time_in_force="GTC").data()
    assert rest.cancel_order(symbol="BTCUSDT", order_id=resting.order_id).data().status == "CANCELED"
    stop = rest.new_algo_order(algo_type="CONDITIONAL", symbol="BTCUSDT", side="SELL", type="STOP_MARKET",
                               quantity=0.01, trigger_price=95_000, reduce_only="true").data()
    assert rest.query_algo_order(client_algo_id=stop.client_algo_id).data().algo_status == "NEW"
    [position] = rest.position_information_v3(symbol="BTCUSDT").data()
    assert position.position_amt == "0.010"
    assert Decimal(rest.account_information_v3().data().total_wallet_balance) == 100_000
    assert Decimal(rest.futures_account_balance_v3().data()[0].balance) == 100_000
    exchange.set_price("BTCUSDT", 94_000)
    assert rest.query_algo_order(client_algo_id=stop.client_algo_id).data().algo_status == "FINISHED"
    assert rest.position_information_v3(symbol="BTCUSDT").data() == [], "flat: v3 lists open positions only"


def test_binance_sdk_streams_keep_a_local_order_book_and_the_user_stream(exchange: SimExchange, sdk) -> None:
    async def run() -> tuple[bool, list]:
        events: list[DepthEvent] = []
        user: list = []
        connection = await sdk.websocket_streams.create_connection()
        try:
            depth = await connection.diff_book_depth_streams(symbol="btcusdt", update_speed="100ms")
            depth.on("message", lambda d: events.append(DepthEvent(
                d.U, d.u, d.pu, tuple((float(p), float(q)) for p, q in d.b),
                tuple((float(p), float(q)) for p, q in d.a), d.E)))
            key = sdk.rest_api.start_user_data_stream().data().listen_key
            stream = await connection.user_data(key)
            stream.on("message", user.append)
            await wait_async(lambda: len(events) >= 3)
            snap = sdk.rest_api.order_book(symbol="BTCUSDT", limit=1000).data()
            book = LocalBook()
            book.load_snapshot(snap.last_update_id, snap.bids, snap.asks)
            seen = 0
            sdk.rest_api.new_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)
            exchange.pause_market()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                for event in events[seen:]:
                    book.feed(event)
                seen = len(events)
                bids = sorted(book.bids.items(), reverse=True)
                asks = sorted(book.asks.items())
                if book.synced and book_matches(bids, asks, exchange) and user:
                    return True, user
                await asyncio.sleep(0.05)
            return False, user
        finally:
            await connection.close_connection(close_session=True)

    matched, user = asyncio.run(run())
    assert matched, "the SDK's diff-depth stream plus its REST snapshot rebuild the exchange's book"
    assert user, "the SDK's user-data stream on /private delivers the order's events"


async def wait_async(condition, timeout: float = 10.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
