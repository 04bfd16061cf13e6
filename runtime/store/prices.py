"""`price:{S}`: the last price of a symbol and when it was seen.

Used after a crash to re-check stop conditions against the last known price
(F19). Stored as a hash {price, ts}; loads are schema-checked.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from runtime.store._codec import decode_mapping, nonnegative_float
from runtime.store.errors import CorruptState, translated
from runtime.store.keys import Keys


@dataclass(frozen=True, slots=True)
class Price:
    symbol: str
    price: float
    ts: float  # epoch seconds of the tick


class Prices:
    def __init__(self, client: redis.Redis, keys: Keys, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._keys = keys
        self._clock = clock

    def set(self, symbol: str, price: float, ts: float | None = None) -> None:
        price = float(price)
        ts = float(self._clock() if ts is None else ts)
        if not (math.isfinite(price) and price > 0):
            raise ValueError(f"price must be finite and > 0, got {price!r}")
        if not (math.isfinite(ts) and ts >= 0):
            raise ValueError(f"ts must be finite and >= 0, got {ts!r}")
        key = self._keys.price(symbol)
        with translated("set_price", key):
            self._client.hset(key, mapping={"price": repr(price), "ts": repr(ts)})

    def get(self, symbol: str) -> Price | None:
        key = self._keys.price(symbol)
        with translated("last_price", key):
            raw = self._client.hgetall(key)
        return self.parse(symbol, raw)

    def parse(self, symbol: str, raw: dict[Any, Any]) -> Price | None:
        """The schema-checked price from `price:{symbol}`'s HGETALL reply; CorruptState if malformed."""
        key = self._keys.price(symbol)
        if not raw:
            return None
        values = decode_mapping(raw, key)
        for name in ("price", "ts"):
            if name not in values:
                raise CorruptState(key, name, "missing")
        extra = sorted(set(values) - {"price", "ts"})
        if extra:
            raise CorruptState(key, extra[0], "unexpected field")
        price = nonnegative_float(values["price"], key, "price")
        if price <= 0:
            raise CorruptState(key, "price", f"must be > 0, found {values['price']!r}")
        return Price(symbol, price, nonnegative_float(values["ts"], key, "ts"))
