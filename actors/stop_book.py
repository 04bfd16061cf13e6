"""StopBook: the per-symbol stop indexes, shared by the engine and the state builder.

The engine arms a stop when an entry fills and disarms it when the position closes;
the state builder asks `triggered(symbol, price)` on every fresh tick. It is a plain
object behind one lock per symbol, not an actor, so a tick never waits on another
actor's inbox and a crashed or hung strategy keeps its stop armed.
"""

from __future__ import annotations

import threading

from actors.core.stop_index import StopEntry, StopHit, StopIndex, StopSide


class StopBook:
    def __init__(self, symbols: list[str] | tuple[str, ...] = ()) -> None:
        self._indexes: dict[str, StopIndex] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._create_lock = threading.Lock()
        for symbol in symbols:
            self._index(symbol)

    def _index(self, symbol: str) -> tuple[StopIndex, threading.Lock]:
        index = self._indexes.get(symbol)
        if index is None:
            with self._create_lock:
                index = self._indexes.get(symbol)
                if index is None:
                    self._locks[symbol] = threading.Lock()
                    index = self._indexes[symbol] = StopIndex(symbol)
        return index, self._locks[symbol]

    def arm(self, symbol: str, strategy_id: str, level: float, qty: float, side: StopSide = StopSide.LONG) -> None:
        index, lock = self._index(symbol)
        with lock:
            index.arm(strategy_id, side, level, qty)

    def disarm(self, symbol: str, strategy_id: str) -> StopEntry | None:
        index, lock = self._index(symbol)
        with lock:
            return index.disarm(strategy_id)

    def armed(self, symbol: str, strategy_id: str) -> StopEntry | None:
        index, lock = self._index(symbol)
        with lock:
            return index.armed(strategy_id)

    def triggered(self, symbol: str, price: float) -> list[StopHit]:
        """Pop the stops `price` crosses. Popped stops are the caller's to execute."""
        index, lock = self._index(symbol)
        with lock:
            return index.triggered(price)

    def rearm(self, symbol: str, hit: StopHit) -> None:
        """Put back a stop whose exit could not be sent (e.g. the store lock was busy)."""
        self.arm(symbol, hit.strategy_id, hit.level, hit.qty, StopSide(hit.side))

    def count(self, symbol: str | None = None) -> int:
        if symbol is not None:
            index, lock = self._index(symbol)
            with lock:
                return len(index)
        return sum(self.count(s) for s in list(self._indexes))
