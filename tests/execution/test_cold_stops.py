"""Seed 4242 I3: stops armed at a start without Redis from the last known runtimes on local disk,
each long confirmed against the venue's position (the simulated exchange over HTTP)."""

from __future__ import annotations

from pathlib import Path

from actors.cold_stops import SnapshotWriter, arm_from_last_known
from actors.pipeline import RuntimeCache
from actors.protection import ProtectiveStops
from runtime.store.local_snapshot import read_snapshot, write_snapshot
from runtime.store.runtime_state import Position, Runtime
from runtime.store.store import BUFFER_JOURNAL_INTENT
from tests.waiting import eventually


def long(quantity: float, stop_loss: float | None) -> Runtime:
    return Runtime(position=Position.BOUGHT, quantity=quantity, entry_price=100_000.0, stop_loss=stop_loss,
                   entry_seq=1, generation=5, updated_at=1000.0)


def test_seed4242_stops_armed_from_the_snapshot_never_for_more_than_the_venue_holds(make_trading, tmp_path: Path
                                                                                     ) -> None:
    trading = make_trading(start=False)
    services = trading.services
    assert services.venue.place_order("BTCUSDT", "BUY", "MARKET", 0.015, "seed-long").ok
    assert services.venue.place_stop("BTCUSDT", "SELL", 90_000.0, 0.005, "s2:p1").ok
    services.snapshot_path = tmp_path / "runtimes.json"
    write_snapshot(services.snapshot_path, {"s1": long(0.01, 95_000.0), "s2": long(0.005, 90_000.0),
                                            "s3": long(0.02, 94_000.0), "gone": long(1.0, 90_000.0)},
                   {"s1": "s1:p1"}, 1.0)  # s1's venue-side stop is gone (cancelled by an operator)
    services.store.buffer.append(BUFFER_JOURNAL_INTENT, {"client_order_id": "s2:p1", "fields": {
        "strategy_id": "s2", "purpose": "protective_stop"}})

    assert arm_from_last_known(services) == ["s1", "s3"], "each configured long with a stop level is armed"
    assert services.stops.armed("BTCUSDT", "s1").qty == 0.01, "never more than the strategy's own quantity"
    assert services.stops.armed("BTCUSDT", "s3").qty == 0.015, "never more than the venue holds"
    assert services.runtime_cache.get("s3").quantity == 0.015, "exits run from the confirmed quantity"
    assert services.runtime_cache.get("s2").position is Position.BOUGHT and services.stops.armed("BTCUSDT", "s2") \
        is None and services.protective.held() == {"s2": "s2:p1"}, \
        "s2's venue-side stop is live: no local stop beside it; s1's is gone: its local stop protects it"
    assert services.runtime_cache.get("gone") is None, "a strategy no longer configured is left out"

    services.stops.disarm("BTCUSDT", "s1")
    assert arm_from_last_known(services) == [], "runtimes the process already holds are never replaced"
    assert services.stops.armed("BTCUSDT", "s1") is None


def test_seed4242_a_long_the_venue_does_not_hold_is_not_armed(make_trading, tmp_path: Path) -> None:
    trading = make_trading(start=False)
    services = trading.services
    services.snapshot_path = tmp_path / "runtimes.json"
    write_snapshot(services.snapshot_path, {"s1": long(0.01, 95_000.0)}, {}, 1.0)
    assert arm_from_last_known(services) == []
    assert services.stops.count() == 0 and services.runtime_cache.get("s1") == long(0.01, 95_000.0)


def test_seed4242_a_corrupt_snapshot_arms_nothing_and_raises_nothing(make_trading, tmp_path: Path) -> None:
    trading = make_trading(start=False)
    services = trading.services
    services.snapshot_path = tmp_path / "runtimes.json"
    services.snapshot_path.write_bytes(b"deadbeef {\"torn")
    assert arm_from_last_known(services) == [] and services.stops.count() == 0
    assert (tmp_path / "runtimes.json.corrupt").exists()


def test_seed4242_the_snapshot_is_written_only_once_the_last_known_state_is_loaded_and_when_it_changed(
        tmp_path: Path) -> None:
    cache, protective = RuntimeCache(), ProtectiveStops()
    path = tmp_path / "runtimes.json"
    write_snapshot(path, {"s1": long(0.01, 95_000.0)}, {}, 1.0)
    writer = SnapshotWriter(path, cache, protective)
    assert not writer.write_if_changed() and read_snapshot(path).runtimes, \
        "an empty cache (Redis down, nothing loaded yet) never replaces the snapshot a start needs"
    cache.put("s1", long(0.01, 95_000.0))
    writer.enable()
    assert writer.write_if_changed() and not writer.write_if_changed(), "written once per change"
    protective.hold("s1", "s1:p1")
    assert writer.write_if_changed() and read_snapshot(path).protective == {"s1": "s1:p1"}


def test_seed4242_the_writer_thread_follows_the_cache_and_writes_last_at_its_stop(tmp_path: Path) -> None:
    cache, protective = RuntimeCache(), ProtectiveStops()
    writer = SnapshotWriter(tmp_path / "runtimes.json", cache, protective, interval_s=0.01)
    writer.enable()
    writer.start()
    try:
        cache.put("s1", long(0.01, 95_000.0))
        eventually(lambda: "s1" in read_snapshot(writer.path).runtimes, timeout=10, what="s1 in the snapshot")
    finally:
        protective.hold("s1", "s1:p1")  # placed by a graceful stop, after the tree stopped
        writer.stop()
    assert read_snapshot(writer.path).protective == {"s1": "s1:p1"}, "the stop's last write has the holds"
