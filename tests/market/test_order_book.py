"""F9 and DESIGN §4: the local order book follows Binance's sequencing rules."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.core.order_book import (
    BookState,
    DepthEvent,
    DepthSnapshot,
    EventResult,
    OrderBookSequencer,
)


def ev(U: int, u: int, pu: int, bids=(), asks=()) -> DepthEvent:
    return DepthEvent(U, u, pu, tuple(bids), tuple(asks))


def snap(last: int, bids=((100.0, 1.0),), asks=((101.0, 1.0),)) -> DepthSnapshot:
    return DepthSnapshot(last, tuple(bids), tuple(asks))


def live_book() -> OrderBookSequencer:
    seq = OrderBookSequencer("BTCUSDT")
    seq.on_event(ev(95, 105, 94, bids=[(100.0, 2.0)]))
    assert seq.apply_snapshot(snap(100)) is BookState.LIVE
    return seq


def test_f9_events_buffered_until_snapshot():
    seq = OrderBookSequencer("BTCUSDT")
    assert seq.on_event(ev(1, 2, 0)) is EventResult.BUFFERED
    assert seq.on_event(ev(3, 4, 2)) is EventResult.BUFFERED
    assert seq.state is BookState.SYNCING
    assert seq.buffered == 2
    assert seq.best_bid() is None, "no book may be read before a snapshot"


def test_f9_events_older_than_snapshot_are_dropped():
    seq = OrderBookSequencer("BTCUSDT")
    seq.on_event(ev(90, 95, 89, bids=[(100.0, 9.0)]))  # u < lastUpdateId: already in the snapshot
    seq.on_event(ev(96, 99, 95, bids=[(100.0, 8.0)]))
    seq.on_event(ev(99, 102, 99, asks=[(101.0, 3.0)]))  # bridges 100
    assert seq.apply_snapshot(snap(100)) is BookState.LIVE
    assert seq.counters.dropped == 2
    assert seq.best_bid() == (100.0, 1.0), "a dropped event's quantities must not be applied"
    assert seq.best_ask() == (101.0, 3.0)
    assert seq.last_update_id == 102


def test_f9_first_event_must_bridge_last_update_id():
    seq = OrderBookSequencer("BTCUSDT")
    seq.on_event(ev(100, 110, 99))  # U == lastUpdateId: allowed
    assert seq.apply_snapshot(snap(100)) is BookState.LIVE
    seq2 = OrderBookSequencer("BTCUSDT")
    seq2.on_event(ev(90, 100, 89))  # u == lastUpdateId: allowed
    assert seq2.apply_snapshot(snap(100)) is BookState.LIVE


def test_f9_snapshot_older_than_buffer_needs_resync():
    seq = OrderBookSequencer("BTCUSDT")
    seq.on_event(ev(101, 110, 100))  # U > lastUpdateId: updates 100..100 are missing
    assert seq.apply_snapshot(snap(99)) is BookState.NEEDS_RESYNC
    assert seq.last_gap is not None and "snapshot too old" in seq.last_gap.reason
    assert seq.buffered == 1, "the newer event is kept for the next snapshot"
    assert seq.apply_snapshot(snap(105)) is BookState.LIVE


def test_f9_waits_for_bridging_event_after_snapshot():
    seq = OrderBookSequencer("BTCUSDT")
    seq.on_event(ev(90, 95, 89))
    assert seq.apply_snapshot(snap(100)) is BookState.SYNCING
    assert seq.best_bid() is None
    assert seq.on_event(ev(96, 99, 95)) is EventResult.DROPPED
    assert seq.on_event(ev(100, 104, 99, bids=[(99.0, 4.0)])) is EventResult.APPLIED
    assert seq.state is BookState.LIVE
    assert seq.top(2)[0] == [(100.0, 1.0), (99.0, 4.0)]


def test_f9_sequence_gap_detected():
    seq = live_book()
    assert seq.on_event(ev(106, 110, 105)) is EventResult.APPLIED
    assert seq.on_event(ev(115, 120, 114)) is EventResult.GAP  # pu 114 != previous u 110
    assert seq.state is BookState.NEEDS_RESYNC
    assert seq.counters.gaps == 1
    assert seq.last_gap is not None and seq.last_gap.expected_pu == 110 and seq.last_gap.got_pu == 114


def test_f9_sequence_gap_resyncs_book():
    seq = live_book()
    seq.on_event(ev(115, 120, 114, bids=[(100.0, 5.0)]))
    assert seq.best_bid() is None and seq.depth() == ({}, {}), "a gapped book must be dropped"
    assert seq.on_event(ev(121, 125, 120, bids=[(98.0, 1.0)])) is EventResult.BUFFERED
    assert seq.apply_snapshot(snap(118, bids=[(100.0, 7.0)])) is BookState.LIVE
    assert seq.best_bid() == (100.0, 5.0)  # from the bridging event, not the snapshot
    assert seq.top(5)[0] == [(100.0, 5.0), (98.0, 1.0)]


def test_f9_gap_inside_buffer_found_during_replay():
    seq = OrderBookSequencer("BTCUSDT")
    seq.on_event(ev(95, 105, 94))
    seq.on_event(ev(106, 110, 105))
    seq.on_event(ev(120, 125, 119))  # gap after the bridge
    seq.on_event(ev(126, 130, 125))
    assert seq.apply_snapshot(snap(100)) is BookState.NEEDS_RESYNC
    assert seq.buffered == 2, "events from the gap on are kept for the next snapshot"
    assert seq.apply_snapshot(snap(122)) is BookState.LIVE
    assert seq.last_update_id == 130


def test_zero_quantity_removes_level_and_unknown_removal_is_normal():
    seq = live_book()
    seq.on_event(ev(106, 107, 105, bids=[(100.0, 0.0), (95.0, 0.0)], asks=[(102.0, 2.0)]))
    assert seq.state is BookState.LIVE
    assert seq.best_bid() is None
    assert seq.top(5) == ([], [(101.0, 1.0), (102.0, 2.0)])


def test_best_levels_mid_and_top_n():
    seq = OrderBookSequencer("ETHUSDT")
    seq.on_event(ev(10, 10, 9))
    seq.apply_snapshot(DepthSnapshot(10, ((99.0, 1.0), (98.0, 2.0), (97.0, 3.0)), ((101.0, 1.0), (103.0, 2.0))))
    assert seq.best_bid() == (99.0, 1.0)
    assert seq.best_ask() == (101.0, 1.0)
    assert seq.mid_price() == 100.0
    assert seq.top(2) == ([(99.0, 1.0), (98.0, 2.0)], [(101.0, 1.0), (103.0, 2.0)])
    assert not seq.crossed()
    seq.on_event(ev(11, 11, 10, bids=[(102.0, 1.0)]))
    assert seq.crossed()


def test_reset_forgets_buffer_and_book():
    seq = live_book()
    seq.reset()
    assert seq.state is BookState.SYNCING and seq.buffered == 0 and seq.best_bid() is None


def test_buffer_overflow_drops_oldest_and_is_caught_by_bridge_check():
    seq = OrderBookSequencer("BTCUSDT", max_buffer=2)
    seq.on_event(ev(95, 105, 94))  # the bridge, lost to overflow
    seq.on_event(ev(106, 110, 105))
    seq.on_event(ev(111, 115, 110))
    assert seq.counters.buffer_overflows == 1
    assert seq.apply_snapshot(snap(100)) is BookState.NEEDS_RESYNC


def test_parse_binance_payloads():
    event = DepthEvent.from_binance(
        {"e": "depthUpdate", "E": 1700000000123, "U": 157, "u": 160, "pu": 149,
         "b": [["0.0024", "10"]], "a": [["0.0026", "100"], ["0.0027", "0"]]}
    )
    assert (event.first_update_id, event.final_update_id, event.prev_final_update_id) == (157, 160, 149)
    assert event.bids == ((0.0024, 10.0),) and event.asks == ((0.0026, 100.0), (0.0027, 0.0))
    assert event.event_time_ms == 1700000000123
    snapshot = DepthSnapshot.from_binance({"lastUpdateId": 1027024, "bids": [["4.0", "431.0"]], "asks": []})
    assert snapshot.last_update_id == 1027024 and snapshot.bids == ((4.0, 431.0),)


@pytest.mark.parametrize(
    "msg",
    [
        {"U": 1, "u": 2, "b": []},  # no pu
        {"U": 1, "u": 2, "pu": 0, "b": [["x", "1"]]},
        {"U": 1, "u": 2, "pu": 0, "b": [["1.0", "-1"]]},
        {"U": 1, "u": 2, "pu": 0, "a": [["nan", "1"]]},
    ],
)
def test_f12_malformed_depth_message_raises(msg):
    with pytest.raises((KeyError, ValueError, TypeError, IndexError)):
        DepthEvent.from_binance(msg)


# -- property tests -------------------------------------------------------------

PRICES_BID = [float(p) for p in range(90, 100)]
PRICES_ASK = [float(p) for p in range(101, 111)]


@st.composite
def event_streams(draw, min_events: int = 1):
    """A true sequence of depth events with contiguous ids, and the reference book after each."""
    n = draw(st.integers(min_events, 15))
    events: list[DepthEvent] = []
    refs: list[tuple[dict, dict]] = []
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    prev_u = draw(st.integers(1, 1000))
    qty = st.sampled_from([0.0, 1.0, 2.0, 3.0, 5.0])
    for _ in range(n):
        span = draw(st.integers(1, 4))
        b = draw(st.dictionaries(st.sampled_from(PRICES_BID), qty, max_size=4))
        a = draw(st.dictionaries(st.sampled_from(PRICES_ASK), qty, max_size=4))
        U = prev_u + 1
        u = U + span - 1
        events.append(DepthEvent(U, u, prev_u, tuple(b.items()), tuple(a.items())))
        for book, changes in ((bids, b), (asks, a)):
            for price, q in changes.items():
                if q == 0:
                    book.pop(price, None)
                else:
                    book[price] = q
        refs.append((dict(bids), dict(asks)))
        prev_u = u
    return events, refs


@st.composite
def scenario(draw, tail: int = 0):
    """Events, references, the bridging index j (with ``tail`` events after it at least),
    a snapshot inside event j, and the index the stream starts at."""
    events, refs = draw(event_streams(1 + tail))
    j = draw(st.integers(0, len(events) - 1 - tail))  # the event the snapshot falls into
    last_id = draw(st.integers(events[j].first_update_id, events[j].final_update_id))
    # The snapshot is the book before event j, with the levels j touches at any
    # intermediate quantity: event j carries their final absolute values.
    snap_bids, snap_asks = (dict(refs[j - 1][0]), dict(refs[j - 1][1])) if j else ({}, {})
    inter = st.sampled_from([0.0, 4.0, 7.0])
    for book, side in ((snap_bids, events[j].bids), (snap_asks, events[j].asks)):
        for price, _ in side:
            q = draw(inter)
            if q:
                book[price] = q
            else:
                book.pop(price, None)
    snapshot = DepthSnapshot(last_id, tuple(snap_bids.items()), tuple(snap_asks.items()))
    start = draw(st.integers(0, j))  # the stream was opened before the snapshot was taken
    return events, refs, j, snapshot, start


def feed(seq: OrderBookSequencer, delivered, snapshot, before: int, on_applied=None):
    for event in delivered[:before]:
        seq.on_event(event)
    seq.apply_snapshot(snapshot)
    for event in delivered[before:]:
        result = seq.on_event(event)
        if on_applied is not None and result is EventResult.APPLIED:
            on_applied(event)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario(), st.data())
def test_f9_any_valid_stream_reproduces_reference_book(case, data):
    events, refs, j, snapshot, start = case
    delivered = events[start:]
    before = data.draw(st.integers(0, len(delivered)), label="events buffered before the snapshot")
    seq = OrderBookSequencer("BTCUSDT")
    index = {e.final_update_id: i for i, e in enumerate(events)}

    def check_live(event):
        assert seq.depth() == refs[index[event.final_update_id]], "a LIVE book must equal the reference"

    feed(seq, delivered, snapshot, before, check_live)
    assert seq.state is BookState.LIVE
    assert seq.depth() == refs[-1]
    assert seq.counters.gaps == 0
    bid_ref = max(refs[-1][0], default=None)
    assert (seq.best_bid() or (None,))[0] == bid_ref


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario(tail=1), st.data())
def test_f9_a_gap_is_always_detected(case, data):
    events, refs, j, snapshot, start = case
    # lose one event at or after the bridge that has a successor to expose it
    missing = data.draw(st.integers(j, len(events) - 2), label="missing event")
    delivered = [e for i, e in enumerate(events[start:], start) if i != missing]
    before = data.draw(st.integers(0, len(delivered)), label="events buffered before the snapshot")
    seq = OrderBookSequencer("BTCUSDT")
    index = {e.final_update_id: i for i, e in enumerate(events)}
    seen_live_after_gap = []

    def check(event):
        i = index[event.final_update_id]
        if i > missing:
            seen_live_after_gap.append(i)

    feed(seq, delivered, snapshot, before, check)
    assert seen_live_after_gap == [], "no event after a missing one may be applied to a LIVE book"
    assert seq.state is BookState.NEEDS_RESYNC
    assert seq.last_gap is not None
    assert seq.best_bid() is None and seq.best_ask() is None
