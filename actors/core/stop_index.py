"""Per-symbol index of armed stop-loss levels (DESIGN §2).

Stop-losses must not depend on a strategy actor being alive, and a tick must
not cost O(strategies): the state-builder keeps one ``StopIndex`` per symbol
and asks it, on every price, which stops that price crossed.

- A LONG position's stop triggers when price <= level; a SHORT's when
  price >= level.
- Each side is one list kept sorted so the crossed stops are always a suffix:
  longs by ``(level, seq)``, shorts by ``(-level, seq)``. ``triggered(price)``
  is one ``bisect`` per side plus popping the suffix: O(log n + k) for n armed
  stops and k hits, and a tick that crosses nothing costs O(log n).
- Arming a strategy again replaces its previous stop. Only the execution
  engine arms and disarms (from fills it settled), so no strategy incarnation
  can move a stop and there is nothing to fence here.
- F10 ("no orders on blind data") is the state builder's: a price from a stale
  feed never reaches ``triggered``.

Pure and single-threaded: the owning actor calls it from its own thread.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass
from enum import Enum


class StopSide(str, Enum):
    """The side of the *position* the stop protects."""

    LONG = "LONG"  # stop sells; fires when price <= level
    SHORT = "SHORT"  # stop buys; fires when price >= level


@dataclass(frozen=True)
class StopEntry:
    strategy_id: str
    side: StopSide
    level: float
    qty: float


@dataclass(frozen=True)
class StopHit:
    """A stop crossed by ``price``; it is no longer armed."""

    strategy_id: str
    side: StopSide
    level: float
    qty: float
    price: float


class StopIndex:
    """Armed stops of one symbol."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self._seq = itertools.count()
        self._long: list[tuple[float, int]] = []  # (level, seq), ascending
        self._short: list[tuple[float, int]] = []  # (-level, seq), ascending
        self._by_seq: dict[int, StopEntry] = {}
        self._by_strategy: dict[str, tuple[int, StopEntry]] = {}

    def __len__(self) -> int:
        return len(self._by_strategy)

    def __contains__(self, strategy_id: object) -> bool:
        return strategy_id in self._by_strategy

    def armed(self, strategy_id: str) -> StopEntry | None:
        found = self._by_strategy.get(strategy_id)
        return None if found is None else found[1]

    def entries(self) -> list[StopEntry]:
        """Every armed stop (for snapshots and the status tree)."""
        return [entry for _, entry in self._by_strategy.values()]

    def arm(self, strategy_id: str, side: StopSide | str, level: float, qty: float) -> None:
        """Arm (or move) ``strategy_id``'s stop."""
        side = StopSide(side)
        if not (math.isfinite(level) and level > 0):
            raise ValueError(f"stop level must be a positive finite price, got {level!r}")
        if not (math.isfinite(qty) and qty > 0):
            raise ValueError(f"stop qty must be positive, got {qty!r}")
        self.disarm(strategy_id)
        seq = next(self._seq)
        entry = StopEntry(strategy_id, side, float(level), float(qty))
        key = (entry.level, seq) if side is StopSide.LONG else (-entry.level, seq)
        bisect.insort(self._long if side is StopSide.LONG else self._short, key)
        self._by_seq[seq] = entry
        self._by_strategy[strategy_id] = (seq, entry)

    def disarm(self, strategy_id: str) -> StopEntry | None:
        """Remove ``strategy_id``'s stop; returns it, or None if none was armed."""
        found = self._by_strategy.pop(strategy_id, None)
        if found is None:
            return None
        seq, entry = found
        del self._by_seq[seq]
        side = self._long if entry.side is StopSide.LONG else self._short
        key = (entry.level, seq) if entry.side is StopSide.LONG else (-entry.level, seq)
        del side[bisect.bisect_left(side, key)]
        return entry

    def triggered(self, price: float) -> list[StopHit]:
        """Pop every stop ``price`` crosses, most-crossed side order: longs from the
        highest level down, then shorts from the lowest level up.
        """
        if price != price or price <= 0:  # NaN or nonsense: never fire on it
            raise ValueError(f"invalid price {price!r}")
        hits: list[StopHit] = []
        # seq is never negative, so (x, -1) sorts before every key with level x.
        self._pop_suffix(self._long, bisect.bisect_left(self._long, (price, -1)), price, hits)
        self._pop_suffix(self._short, bisect.bisect_left(self._short, (-price, -1)), price, hits)
        return hits

    def _pop_suffix(self, side: list[tuple[float, int]], start: int, price: float, hits: list[StopHit]) -> None:
        if start >= len(side):
            return
        crossed = side[start:]
        del side[start:]
        for _, seq in reversed(crossed):
            entry = self._by_seq.pop(seq)
            del self._by_strategy[entry.strategy_id]
            hits.append(StopHit(entry.strategy_id, entry.side, entry.level, entry.qty, price))


__all__ = ["StopEntry", "StopHit", "StopIndex", "StopSide"]
