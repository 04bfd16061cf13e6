"""Cost of decoding one market-data frame on the feed's socket thread (issue 9 item 6).

The reader thread shares the GIL with the stop path, so what it spends per frame is
taken from ticks. Measures ``FrameDecoder.decode`` (msgspec Structs, validated) on a
20x20 ``depthUpdate`` and a ``markPriceUpdate``, beside plain ``json.loads`` of the same
depth frame for scale. Best of 5 rounds, microseconds per frame.
"""

from __future__ import annotations

import json
import timeit
from typing import Any, Callable

from actors.feed_frames import FrameDecoder

ROUNDS = 5


def depth_frame(levels: int = 20) -> bytes:
    bids = [[f"{100_000 - i * 0.1:.1f}", f"{0.001 * (i + 1):.3f}"] for i in range(levels)]
    asks = [[f"{100_000.1 + i * 0.1:.1f}", f"{0.002 * (i + 1):.3f}"] for i in range(levels)]
    return json.dumps({"stream": "btcusdt@depth@100ms", "data": {
        "e": "depthUpdate", "E": 1_764_540_000_000, "T": 1_764_540_000_000, "s": "BTCUSDT", "U": 1000, "u": 1010,
        "pu": 999, "b": bids, "a": asks}}).encode()


def mark_frame() -> bytes:
    return json.dumps({"stream": "btcusdt@markPrice@1s", "data": {
        "e": "markPriceUpdate", "E": 1_764_540_000_000, "s": "BTCUSDT", "p": "100000.10", "i": "99990.00",
        "P": "99995.00", "r": "0.00010000", "T": 1_764_547_200_000}}).encode()


def per_call_us(fn: Callable[[], Any], number: int = 20_000) -> float:
    return round(min(timeit.repeat(fn, number=number, repeat=ROUNDS)) / number * 1e6, 2)


def run() -> dict[str, Any]:
    depth, mark = depth_frame(), mark_frame()
    public, market = FrameDecoder("BTCUSDT", "public"), FrameDecoder("BTCUSDT", "market")
    return {
        "depth_20x20_us": per_call_us(lambda: public.decode(depth)),
        "mark_price_us": per_call_us(lambda: market.decode(mark)),
        "json_loads_depth_20x20_us": per_call_us(lambda: json.loads(depth)),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
