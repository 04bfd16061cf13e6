"""Seed 4242 I3: the local snapshot of the last known runtimes, and its merge with the disk buffer.

A start without Redis arms stops from what these return; a corrupt file is a clear problem
naming the file, never an exception (the daemon then starts as it did without the file).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import replace
from pathlib import Path

from actors.cold_stops import load_last_known
from runtime.store.disk_buffer import DiskBuffer
from runtime.store.local_snapshot import read_snapshot, write_snapshot
from runtime.store.runtime_state import Position, Runtime
from runtime.store.store import BUFFER_JOURNAL_INTENT, BUFFER_JOURNAL_OUTCOME, BUFFER_RUNTIME

LONG = Runtime(position=Position.BOUGHT, quantity=0.01, entry_price=100_000.0, stop_loss=99_000.0, entry_seq=3,
               generation=7, updated_at=1000.0, last_orders=("s1:e3",))


def test_seed4242_snapshot_round_trip_keeps_every_field(tmp_path: Path) -> None:
    path = tmp_path / "buffer" / "runtimes.json"
    write_snapshot(path, {"s1": LONG, "s2": Runtime()}, {"s1": "s1:p3"}, 1234.5)
    known = read_snapshot(path)
    assert known.runtimes == {"s1": LONG, "s2": Runtime()}, "position, quantity, entry seq, stop, generation kept"
    assert known.protective == {"s1": "s1:p3"} and known.written_at == 1234.5 and known.problems == []
    assert [p.name for p in path.parent.iterdir()] == ["runtimes.json"], "no temporary file left behind"


def test_seed4242_missing_snapshot_is_empty_not_an_error(tmp_path: Path) -> None:
    known = read_snapshot(tmp_path / "runtimes.json")
    assert known.runtimes == {} and known.problems == []


def test_seed4242_corrupt_snapshot_is_a_problem_naming_the_file_and_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "runtimes.json"
    write_snapshot(path, {"s1": LONG}, {}, 1.0)
    data = bytearray(path.read_bytes())
    data[40] ^= 0x01  # one flipped bit
    path.write_bytes(bytes(data))
    known = read_snapshot(path)
    assert known.runtimes == {} and len(known.problems) == 1, known
    assert str(path) in known.problems[0] and "checksum mismatch" in known.problems[0], known.problems
    assert (tmp_path / "runtimes.json.corrupt").read_bytes() == bytes(data), "kept for the operator"
    assert not path.exists(), "the next write starts a fresh snapshot"

    path.write_bytes(b"\x00\xff garbage")
    assert "no checksum prefix" in read_snapshot(path).problems[0]


def test_seed4242_one_bad_runtime_is_left_out_the_others_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "runtimes.json"
    bad = {**LONG.to_redis(), "quantity": "-1"}
    body = json.dumps({"format": 1, "written_at": 1.0, "runtimes": {"s1": LONG.to_redis(), "s2": bad},
                       "protective": {"s1": "not a client id!"}})
    path.write_bytes(f"{zlib.crc32(body.encode()):08x} {body}\n".encode())
    known = read_snapshot(path)
    assert known.runtimes == {"s1": LONG}
    assert any(f"{path}: runtimes.s2: field quantity" in p for p in known.problems), known.problems
    assert known.protective == {} and any("protective.s1" in p for p in known.problems), known.problems


def test_seed4242_buffered_runtimes_newer_than_the_snapshot_win(tmp_path: Path) -> None:
    path = tmp_path / "runtimes.json"
    older = Runtime(position=Position.BOUGHT, quantity=0.02, stop_loss=98_000.0, entry_seq=1, generation=7,
                    updated_at=900.0)
    write_snapshot(path, {"s1": LONG, "s2": older, "s3": LONG}, {}, 1000.0)
    buffer = DiskBuffer(tmp_path / "orders.jsonl")
    pending = replace(LONG, pending_order="s1:x3", pending_purpose="stop_loss", updated_at=1001.0)
    exited = Runtime(position=Position.EXITED_BY_SL, entry_seq=3, generation=7, updated_at=1002.0)
    stale = Runtime(position=Position.NONE, generation=6, updated_at=5000.0)  # an older process's write
    buffer.append(BUFFER_RUNTIME, {"strategy_id": "s1", "runtime": pending.to_redis()})
    buffer.append(BUFFER_RUNTIME, {"strategy_id": "s1", "runtime": exited.to_redis()})
    buffer.append(BUFFER_RUNTIME, {"strategy_id": "s3", "runtime": stale.to_redis()})
    buffer.append(BUFFER_RUNTIME, {"strategy_id": "s4", "runtime": {"position": "bogus"}})
    records, corrupt = buffer.read()
    known = load_last_known(path, records, buffer.path)
    assert corrupt == []
    assert known.runtimes["s1"] == exited, "the buffer's last write is the last known runtime"
    assert known.runtimes["s2"] == older, "a strategy the buffer never wrote keeps the snapshot's"
    assert known.runtimes["s3"] == LONG, "an older generation never replaces a newer one"
    assert "s4" not in known.runtimes and any(f"{buffer.path}:4" in p for p in known.problems), known.problems


def test_seed4242_buffered_protective_stops_hold_until_a_final_outcome(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "orders.jsonl")
    for strategy_id in ("s1", "s2"):
        buffer.append(BUFFER_JOURNAL_INTENT, {"client_order_id": f"{strategy_id}:p3",
                                              "fields": {"strategy_id": strategy_id, "purpose": "protective_stop"}})
    buffer.append(BUFFER_JOURNAL_OUTCOME, {"client_order_id": "s2:p3", "outcome": "CANCELED", "fields": {},
                                           "final": True})
    buffer.append(BUFFER_JOURNAL_OUTCOME, {"client_order_id": "s1:p3", "outcome": "ACCEPTED", "fields": {},
                                           "final": False})
    records, _ = buffer.read()
    known = load_last_known(tmp_path / "runtimes.json", records, buffer.path)
    assert known.protective == {"s1": "s1:p3"}, "a live venue-side stop holds its position: no local stop beside it"


def test_seed4242_a_corrupt_snapshot_still_merges_the_buffer(tmp_path: Path) -> None:
    path = tmp_path / "runtimes.json"
    path.write_text("{not json", encoding="utf-8")
    buffer = DiskBuffer(tmp_path / "orders.jsonl")
    buffer.append(BUFFER_RUNTIME, {"strategy_id": "s1", "runtime": LONG.to_redis()})
    records, _ = buffer.read()
    known = load_last_known(path, records, buffer.path)
    assert known.runtimes == {"s1": LONG} and str(path) in known.problems[0], known
