"""The typed frame decoder (F12): Binance USD-M combined-stream frames in, one event or a
``CorruptFrame`` naming what was wrong out; events off their route are corrupt too."""

from __future__ import annotations

import json
from typing import Any

import pytest

from actors.core.order_book import DepthEvent
from actors.feed_frames import AggTrade, BookTicker, CorruptFrame, ForceOrder, FrameDecoder, MarkPriceUpdate

DEPTH = {"e": "depthUpdate", "E": 1764540000123, "T": 1764540000120, "s": "BTCUSDT", "U": 157, "u": 160, "pu": 149,
         "b": [["100000.1", "0.500"], ["100000.0", "0"]], "a": [["100000.2", "1.25"]]}
MARK = {"e": "markPriceUpdate", "E": 1764540000000, "s": "BTCUSDT", "p": "100000.50", "i": "99990.10",
        "P": "99995.0", "r": "-0.00010000", "T": 1764547200000}
TRADE = {"e": "aggTrade", "E": 1764540000001, "a": 5933014, "s": "BTCUSDT", "p": "100001.0", "q": "0.010",
         "f": 100, "l": 105, "T": 1764540000000, "m": True}
LIQUIDATION = {"e": "forceOrder", "E": 1764540000002, "o": {"s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC",
                                                             "q": "0.014", "p": "99000.1", "ap": "99100.0",
                                                             "X": "FILLED", "l": "0.014", "z": "0.014",
                                                             "T": 1764540000002}}
TICKER = {"e": "bookTicker", "u": 400900217, "E": 1764540000003, "T": 1764540000002, "s": "BTCUSDT",
          "b": "100000.1", "B": "31.21", "a": "100000.2", "A": "40.66"}


def frame(stream: str, data: dict[str, Any]) -> bytes:
    return json.dumps({"stream": stream, "data": data}).encode()


def corrupt(decoder: FrameDecoder, raw: bytes | str) -> str:
    with pytest.raises(CorruptFrame) as info:
        decoder.decode(raw)
    return str(info.value)


public = FrameDecoder("BTCUSDT", "public")
market = FrameDecoder("BTCUSDT", "market")


def test_depth_update_decodes_to_the_sequencers_event_with_float_levels():
    event = public.decode(frame("btcusdt@depth@100ms", DEPTH))
    assert event == DepthEvent(157, 160, 149, ((100000.1, 0.5), (100000.0, 0.0)), ((100000.2, 1.25),), 1764540000123)


def test_market_route_events_decode_with_floats():
    mark = market.decode(frame("btcusdt@markPrice@1s", MARK))
    assert isinstance(mark, MarkPriceUpdate)
    assert (mark.mark_price, mark.index_price, mark.funding_rate, mark.event_time) == \
        (100000.5, 99990.1, -0.0001, 1764540000000)
    trade = market.decode(frame("btcusdt@aggTrade", TRADE))
    assert isinstance(trade, AggTrade) and (trade.price, trade.quantity) == (100001.0, 0.01)
    liquidation = market.decode(frame("btcusdt@forceOrder", LIQUIDATION))
    assert isinstance(liquidation, ForceOrder) and liquidation.symbol == "BTCUSDT"
    assert (liquidation.order.side, liquidation.order.price, liquidation.order.status) == ("SELL", 99000.1, "FILLED")


def test_book_ticker_decodes_on_the_public_route():
    ticker = public.decode(frame("btcusdt@bookTicker", TICKER))
    assert isinstance(ticker, BookTicker) and (ticker.bid_price, ticker.ask_qty) == (100000.1, 40.66)


def test_str_frames_decode_like_bytes():
    assert public.decode(frame("btcusdt@depth@100ms", DEPTH).decode()) == public.decode(frame("btcusdt@depth@100ms",
                                                                                               DEPTH))


@pytest.mark.parametrize(("raw", "named"), [
    (b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUp', "not JSON"),
    (b"\xff\xfe{}", "not JSON"),
    (b"[1, 2]", "Expected `object`, got `array`"),
    (frame("btcusdt@depth@100ms", {k: v for k, v in DEPTH.items() if k != "pu"}), "missing required field `pu`"),
    (frame("btcusdt@depth@100ms", {**DEPTH, "b": [["abc", "1"]]}), "`$.data.b[0][0]`"),
    (frame("btcusdt@depth@100ms", {**DEPTH, "b": [["-1", "1"]]}), "`$.data.b[0][0]`"),
    (frame("btcusdt@depth@100ms", {**DEPTH, "a": [["nan", "1"]]}), "`$.data.a[0][0]`"),
    (frame("btcusdt@depth@100ms", {**DEPTH, "a": [["100", "inf"]]}), "`$.data.a[0][1]`"),
    (frame("btcusdt@depth@100ms", {**DEPTH, "a": [["100", "-0.5"]]}), "`$.data.a[0][1]`"),
    (frame("btcusdt@depth@100ms", {**DEPTH, "U": 161}), "U=161 > u=160"),
    (frame("btcusdt@depth@100ms", {**DEPTH, "e": "depthUpdat"}), "Invalid value 'depthUpdat' - at `$.data.e`"),
    (json.dumps({"data": DEPTH}).encode(), "missing required field `stream`"),
])
def test_f12_corrupt_depth_frames_name_what_was_wrong(raw, named):
    assert named in corrupt(public, raw)


@pytest.mark.parametrize(("data", "named"), [
    ({k: v for k, v in MARK.items() if k != "p"}, "missing required field `p`"),
    ({**MARK, "p": "0"}, "`$.data.p`"),
    ({**MARK, "r": "inf"}, "`$.data.r`"),
    ({**MARK, "E": "soon"}, "`$.data.E`"),
])
def test_f12_corrupt_mark_frames_name_the_field(data, named):
    assert named in corrupt(market, frame("btcusdt@markPrice@1s", data))


def test_f12_a_frame_of_another_symbol_is_corrupt():
    assert "stream 'ethusdt@aggTrade' on the BTCUSDT feed" in corrupt(market, frame("ethusdt@aggTrade", TRADE))
    assert "symbol 'ETHUSDT'" in corrupt(market, frame("btcusdt@aggTrade", {**TRADE, "s": "ETHUSDT"}))
    assert "symbol 'ETHUSDT'" in corrupt(market, frame("btcusdt@forceOrder", {
        **LIQUIDATION, "o": {**LIQUIDATION["o"], "s": "ETHUSDT"}}))


def test_an_event_off_its_route_is_corrupt():
    """DESIGN §4: depth is served on /public, mark price on /market; anything else is not this connection's."""
    assert "MarkPriceUpdate on the /public connection" in corrupt(public, frame("btcusdt@markPrice@1s", MARK))
    assert "DepthUpdate on the /market connection" in corrupt(market, frame("btcusdt@depth@100ms", DEPTH))


def test_unknown_route_is_refused():
    with pytest.raises(ValueError, match="unknown WebSocket route 'private'"):
        FrameDecoder("BTCUSDT", "private")
