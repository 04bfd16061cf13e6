"""Issue 9 item 2 / DESIGN §4: the WebSocket routes after Binance's base-URL split.

depth and bookTicker on ``/public``, markPrice, aggTrade and forceOrder on
``/market``, each in ``/ws/<streams>`` and ``/stream?streams=`` form. A root
(legacy) connection that asks for /market streams connects, and those streams
are silently withheld, as on Binance: a client that never moved gets depth and
no mark price, with no error.
"""

from __future__ import annotations

import json
import time

import pytest
import websocket

from runtime.simexchange import SimExchange


def frames(url: str, seconds: float) -> list[dict]:
    """Every frame one socket receives in ``seconds`` (bounded)."""
    ws = websocket.create_connection(url, timeout=0.1)
    got = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            try:
                got.append(json.loads(ws.recv()))
            except websocket.WebSocketTimeoutException:
                continue
    finally:
        ws.close()
    return got


def event_types(got: list[dict]) -> set[str]:
    return {(f["data"] if "stream" in f else f)["e"] for f in got}


def test_root_connection_gets_no_mark_price(exchange: SimExchange) -> None:
    got = frames(f"{exchange.ws_url}/stream?streams=btcusdt@depth@100ms/btcusdt@markPrice@1s/btcusdt@aggTrade",
                 0.6)
    kinds = event_types(got)
    assert "depthUpdate" in kinds, "the legacy root still serves /public streams"
    assert "markPriceUpdate" not in kinds and "aggTrade" not in kinds, \
        "a root connection asking for /market streams gets them silently withheld, as on Binance"


@pytest.mark.parametrize("path", ["/market/stream?streams=btcusdt@markPrice@1s/btcusdt@depth@100ms",
                                  "/market/ws/btcusdt@markPrice@1s/btcusdt@depth@100ms"])
def test_market_route_serves_mark_price_and_withholds_depth(exchange: SimExchange, path: str) -> None:
    kinds = event_types(frames(f"{exchange.ws_url}{path}", 0.6))
    assert kinds == {"markPriceUpdate"}, f"/market carries markPrice, never depth: {kinds}"


@pytest.mark.parametrize("path", ["/public/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker/btcusdt@markPrice",
                                  "/public/ws/btcusdt@depth@100ms/btcusdt@bookTicker/btcusdt@markPrice"])
def test_public_route_serves_depth_and_book_ticker_only(exchange: SimExchange, path: str) -> None:
    got = frames(f"{exchange.ws_url}{path}", 0.6)
    assert event_types(got) == {"depthUpdate", "bookTicker"}
    ticker = next((f["data"] if "stream" in f else f) for f in got
                  if (f["data"] if "stream" in f else f)["e"] == "bookTicker")
    assert float(ticker["b"]) < float(ticker["a"]) and float(ticker["B"]) > 0 and float(ticker["A"]) > 0
