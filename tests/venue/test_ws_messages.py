"""Stream names, URLs and strict frame parsing (F12: a corrupt frame gets an error naming the problem)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from runtime.venue.ws import (
    DepthUpdate,
    MalformedMessage,
    combined_stream_url,
    depth_stream,
    market_streams,
    parse_depth_update,
    parse_event,
    parse_stream_message,
)

DEPTH = {"e": "depthUpdate", "E": 10, "T": 9, "s": "BTCUSDT", "U": 5, "u": 7, "pu": 4,
         "b": [["100.0", "1.5"]], "a": [["100.1", "0"]]}


def test_combined_stream_url_uses_lowercase_symbols_and_binance_suffixes() -> None:
    assert market_streams("BTCUSDT") == ["btcusdt@depth@100ms", "btcusdt@markPrice@1s", "btcusdt@aggTrade",
                                         "btcusdt@forceOrder"]
    url = combined_stream_url("ws://127.0.0.1:9/", [depth_stream("BTCUSDT"), "btcusdt@markPrice@1s"])
    assert url == "ws://127.0.0.1:9/stream?streams=btcusdt@depth@100ms/btcusdt@markPrice@1s"
    with pytest.raises(ValueError):
        depth_stream("BTCUSDT", 42)
    with pytest.raises(ValueError):
        combined_stream_url("ws://x", [])


def test_depth_update_parsed_into_sequencing_fields() -> None:
    event = parse_event(parse_stream_message(json.dumps({"stream": "btcusdt@depth@100ms", "data": DEPTH})).data)
    assert isinstance(event, DepthUpdate)
    assert (event.first_update_id, event.final_update_id, event.prev_final_update_id) == (5, 7, 4)
    assert event.bids == ((Decimal("100.0"), Decimal("1.5")),) and event.asks[0][1] == 0


@pytest.mark.parametrize("raw,fragment", [
    ('{"stream": "x", "data": {', "not JSON"),
    ("[1]", "not an object"),
    ('{"data": {}}', "missing field 'stream'"),
    (b"\xff", "not UTF-8"),
])
def test_f12_malformed_frames_raise_naming_the_problem(raw: str | bytes, fragment: str) -> None:
    with pytest.raises(MalformedMessage, match=fragment):
        parse_stream_message(raw)


@pytest.mark.parametrize("broken,fragment", [
    ({k: v for k, v in DEPTH.items() if k != "pu"}, "depthUpdate: missing field 'pu'"),
    ({**DEPTH, "u": "seven"}, "field 'u' is not an integer"),
    ({**DEPTH, "b": [["abc", "1"]]}, "depthUpdate b[0]: not numbers"),
    ({**DEPTH, "a": "nope"}, "expected a list"),
])
def test_f12_depth_event_schema_errors_name_the_field(broken: dict, fragment: str) -> None:
    with pytest.raises(MalformedMessage, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        parse_depth_update(broken)


def test_unknown_event_type_is_malformed() -> None:
    with pytest.raises(MalformedMessage, match="unknown event type"):
        parse_event({"e": "kline"})
