"""DESIGN §2 stop index: crossed stops in O(log n + k), independent of strategy actors."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core.stop_index import StopHit, StopIndex, StopSide

LONG, SHORT = StopSide.LONG, StopSide.SHORT


def ids(hits: list[StopHit]) -> list[str]:
    return [h.strategy_id for h in hits]


def test_long_stop_triggers_at_or_below_level():
    index = StopIndex("BTCUSDT")
    index.arm("s1", LONG, 95.0, 0.5)
    assert index.triggered(95.01) == []
    hits = index.triggered(95.0)
    assert hits == [StopHit("s1", LONG, 95.0, 0.5, 95.0)]
    assert "s1" not in index and len(index) == 0


def test_short_stop_triggers_at_or_above_level():
    index = StopIndex("BTCUSDT")
    index.arm("s2", SHORT, 105.0, 1.0)
    assert index.triggered(104.99) == []
    hits = index.triggered(110.0)
    assert ids(hits) == ["s2"] and hits[0].price == 110.0


def test_hits_are_popped_once():
    index = StopIndex("BTCUSDT")
    index.arm("s1", LONG, 95.0, 1.0)
    assert ids(index.triggered(90.0)) == ["s1"]
    assert index.triggered(80.0) == [], "a fired stop must not fire twice"


def test_gap_through_many_levels_fires_all_crossed_in_order():
    index = StopIndex("BTCUSDT")
    for i, level in enumerate([90.0, 95.0, 97.0, 99.0]):
        index.arm(f"l{i}", LONG, level, 1.0)
    for i, level in enumerate([101.0, 103.0]):
        index.arm(f"h{i}", SHORT, level, 1.0)
    assert ids(index.triggered(96.0)) == ["l3", "l2"], "longs from the highest level down"
    assert ids(index.triggered(104.0)) == ["h0", "h1"], "shorts from the lowest level up"
    assert sorted(e.strategy_id for e in index.entries()) == ["l0", "l1"]


def test_both_sides_can_fire_on_one_price():
    index = StopIndex("BTCUSDT")
    index.arm("long", LONG, 100.0, 1.0)
    index.arm("short", SHORT, 90.0, 1.0)
    assert sorted(ids(index.triggered(95.0))) == ["long", "short"]


def test_rearming_replaces_the_old_level():
    index = StopIndex("BTCUSDT")
    index.arm("s1", LONG, 95.0, 1.0)
    index.arm("s1", LONG, 90.0, 2.0)
    assert len(index) == 1
    assert index.triggered(94.0) == [], "the old level must be gone"
    assert [(h.level, h.qty) for h in index.triggered(89.0)] == [(90.0, 2.0)]


def test_rearming_can_flip_side():
    index = StopIndex("BTCUSDT")
    index.arm("s1", LONG, 95.0, 1.0)
    index.arm("s1", SHORT, 105.0, 1.0)
    assert index.triggered(90.0) == []
    assert ids(index.triggered(106.0)) == ["s1"]


def test_disarm_removes_the_stop():
    index = StopIndex("BTCUSDT")
    index.arm("s1", LONG, 95.0, 1.0)
    index.arm("s2", LONG, 95.0, 1.0)
    removed = index.disarm("s1")
    assert removed is not None and removed.level == 95.0
    assert index.disarm("s1") is None
    assert ids(index.triggered(90.0)) == ["s2"]


@pytest.mark.parametrize("price", [float("nan"), 0.0, -1.0])
def test_invalid_price_never_fires(price):
    index = StopIndex("BTCUSDT")
    index.arm("s1", LONG, 95.0, 1.0)
    with pytest.raises(ValueError):
        index.triggered(price)
    assert "s1" in index


@pytest.mark.parametrize("level,qty", [(float("nan"), 1.0), (0.0, 1.0), (math.inf, 1.0), (95.0, 0.0)])
def test_invalid_stop_refused(level, qty):
    with pytest.raises(ValueError):
        StopIndex("BTCUSDT").arm("s1", LONG, level, qty)


# -- against a naive O(n) reference ----------------------------------------------


class NaiveStops:
    def __init__(self) -> None:
        self.stops: dict[str, tuple[StopSide, float]] = {}

    def triggered(self, price: float) -> set[str]:
        hit = {
            sid for sid, (side, level) in self.stops.items()
            if (side is LONG and price <= level) or (side is SHORT and price >= level)
        }
        for sid in hit:
            del self.stops[sid]
        return hit


prices = st.integers(80, 120).map(float)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("arm"), st.sampled_from("abcdefgh"), st.sampled_from([LONG, SHORT]), prices),
        st.tuples(st.just("disarm"), st.sampled_from("abcdefgh")),
        st.tuples(st.just("tick"), prices),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_stop_index_matches_naive_reference(operations):
    index, naive = StopIndex("BTCUSDT"), NaiveStops()
    for op in operations:
        if op[0] == "arm":
            _, sid, side, level = op
            index.arm(sid, side, level, 1.0)
            naive.stops[sid] = (side, level)
        elif op[0] == "disarm":
            index.disarm(op[1])
            naive.stops.pop(op[1], None)
        else:
            hits = index.triggered(op[1])
            assert len(hits) == len(set(ids(hits))), "a stop fires at most once"
            assert set(ids(hits)) == naive.triggered(op[1])
        assert {e.strategy_id: (e.side, e.level) for e in index.entries()} == naive.stops
        assert len(index) == len(naive.stops)


# -- cost per tick ------------------------------------------------------------------


class CountingPrice(float):
    """A price that counts every comparison made with it (the work a tick does)."""

    count = 0

    def _c(self, other, op):
        CountingPrice.count += 1
        return getattr(float(self), op)(float(other))

    def __lt__(self, o): return self._c(o, "__lt__")
    def __le__(self, o): return self._c(o, "__le__")
    def __gt__(self, o): return self._c(o, "__gt__")
    def __ge__(self, o): return self._c(o, "__ge__")
    def __eq__(self, o): return self._c(o, "__eq__")
    def __ne__(self, o): return self._c(o, "__ne__")
    def __neg__(self): return CountingPrice(-float(self))
    __hash__ = float.__hash__


def comparisons_per_tick(n: int, ticks: int = 50) -> float:
    index = StopIndex("BTCUSDT")
    for i in range(n):  # longs below 50, shorts above 150: a tick at 100 crosses nothing
        index.arm(f"l{i}", LONG, 1.0 + 49.0 * i / n, 1.0)
        index.arm(f"s{i}", SHORT, 150.0 + 49.0 * i / n, 1.0)
    CountingPrice.count = 0
    for t in range(ticks):
        assert index.triggered(CountingPrice(99.0 + t / ticks)) == []
    return CountingPrice.count / ticks


def test_tick_cost_10000_stops_close_to_100():
    small, large = comparisons_per_tick(100), comparisons_per_tick(10_000)
    assert small > 0, "the counter must see the work"
    # log2(10,000) / log2(100) = 2: a logarithmic tick doubles at most (plus rounding of
    # the probe count); a linear one would grow 100x.
    assert large <= 2.25 * small, f"tick cost grew {large / small:.2f}x from 100 to 10,000 stops per side"
    assert large < 100, f"{large} comparisons per tick is not logarithmic in 20,000 stops"


def test_tick_cost_with_hits_is_log_n_plus_k():
    index = StopIndex("BTCUSDT")
    for i in range(10_000):
        index.arm(f"l{i}", LONG, 1.0 + i * 0.01, 1.0)  # levels 1.00 .. 100.99
    CountingPrice.count = 0
    hits = index.triggered(CountingPrice(100.905))  # crosses the top 9 levels
    assert len(hits) == 9
    assert CountingPrice.count < 100
