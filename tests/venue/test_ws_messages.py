"""Stream names and URLs (frames are decoded by the feed: tests/market/test_feed_frames.py)."""

from __future__ import annotations

import pytest

from runtime.venue.ws import combined_stream_url, depth_stream, market_streams


def test_combined_stream_url_uses_lowercase_symbols_and_binance_suffixes() -> None:
    assert market_streams("BTCUSDT") == ["btcusdt@depth@100ms", "btcusdt@markPrice@1s", "btcusdt@aggTrade",
                                         "btcusdt@forceOrder"]
    url = combined_stream_url("ws://127.0.0.1:9/", [depth_stream("BTCUSDT"), "btcusdt@markPrice@1s"])
    assert url == "ws://127.0.0.1:9/stream?streams=btcusdt@depth@100ms/btcusdt@markPrice@1s"
    with pytest.raises(ValueError):
        depth_stream("BTCUSDT", 42)
    with pytest.raises(ValueError):
        combined_stream_url("ws://x", [])
