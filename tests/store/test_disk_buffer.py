"""The fsynced JSONL disk buffer on its own: durability, torn writes, ordered idempotent replay."""

import errno
import os

import pytest

from runtime.store import BufferWriteError, DiskBuffer, StoreUnavailable


class Target:
    """A replay target that remembers what it applied and dedupes by record id, like the journal."""

    def __init__(self, fail_after=None, during_apply=None):
        self.applied: list[tuple[str, dict]] = []
        self.seen: set[str] = set()
        self.fail_after = fail_after
        self.during_apply = during_apply

    def apply_buffered(self, record):
        if self.fail_after is not None and len(self.applied) >= self.fail_after:
            raise StoreUnavailable("test", "redis went away")
        if self.during_apply:
            self.during_apply(record)
        if record.record_id in self.seen:
            return "duplicate"
        self.seen.add(record.record_id)
        self.applied.append((record.kind, record.data))
        return "applied"


@pytest.fixture
def buffer(tmp_path):
    return DiskBuffer(tmp_path / "buffer.jsonl", clock=lambda: 1700000000.0)


def test_every_append_is_fsynced_before_it_returns(buffer, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    for n in range(3):
        buffer.append("journal_intent", {"n": n})
    assert len(synced) >= 3
    records, corrupt = buffer.read()
    assert [r.data["n"] for r in records] == [0, 1, 2] and corrupt == []
    assert all(r.at == 1700000000.0 and r.line == i + 1 for i, r in enumerate(records))


def test_torn_trailing_line_is_reported_with_file_and_line_and_the_rest_replayed(buffer):
    for n in range(3):
        buffer.append("journal_intent", {"n": n})
    with open(buffer.path, "ab") as fh:
        fh.write(b'1234abcd {"id": "torn", "ki')  # the process died mid-write

    _, corrupt = buffer.read()
    assert [str(c) for c in corrupt] == [f"{buffer.path}:4: torn write: last line has no newline"]

    target = Target()
    report = buffer.replay(target)
    assert [d["n"] for _, d in target.applied] == [0, 1, 2]
    assert report.applied == 3 and [c.line for c in report.corrupt] == [4]
    assert buffer.is_empty()
    assert b'"torn", "ki' in buffer.corrupt_path.read_bytes(), "skipped bytes are kept for the operator"


def test_a_corrupted_line_in_the_middle_is_skipped_without_losing_its_neighbours(buffer):
    for n in range(3):
        buffer.append("journal_intent", {"n": n})
    lines = buffer.path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"n":1', b'"n":7')  # bit rot: still JSON, checksum no longer matches
    buffer.path.write_bytes(b"\n".join(lines))

    target = Target()
    report = buffer.replay(target)

    assert [d["n"] for _, d in target.applied] == [0, 2]
    assert [(c.line, c.problem) for c in report.corrupt] == [(2, "checksum mismatch (torn or corrupted write)")]


def test_an_append_after_a_torn_line_does_not_merge_into_it(buffer):
    buffer.append("journal_intent", {"n": 0})
    with open(buffer.path, "ab") as fh:
        fh.write(b"deadbeef {\"half")
    buffer.append("journal_intent", {"n": 1})
    records, corrupt = buffer.read()
    assert [r.data["n"] for r in records] == [0, 1]
    assert [c.line for c in corrupt] == [2] and records[1].line == 3


def test_replay_stopped_by_redis_keeps_the_file_and_resumes_without_duplicates(buffer):
    for n in range(5):
        buffer.append("journal_intent", {"n": n})
    target = Target(fail_after=2)
    with pytest.raises(StoreUnavailable):
        buffer.replay(target)
    assert not buffer.is_empty()
    assert len(buffer.read()[0]) == 5

    target.fail_after = None
    report = buffer.replay(target)
    assert [d["n"] for _, d in target.applied] == [0, 1, 2, 3, 4]
    assert (report.applied, report.duplicates) == (3, 2)
    assert buffer.is_empty()


def test_records_appended_during_a_replay_are_replayed_too(buffer):
    buffer.append("journal_intent", {"n": 0})
    appended = []

    def exit_arrives(record):
        if not appended:
            appended.append(buffer.append("journal_outcome", {"n": 1}))

    target = Target(during_apply=exit_arrives)
    buffer.replay(target)
    assert [d["n"] for _, d in target.applied] == [0, 1]
    assert buffer.is_empty()


def test_disk_full_raises_and_leaves_no_half_record(buffer, monkeypatch):
    buffer.append("journal_intent", {"n": 0})
    size = buffer.path.stat().st_size
    real_write = os.write

    def half_then_enospc(fd, data):
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_enospc)
    with pytest.raises(BufferWriteError, match="No space left"):
        buffer.append("journal_intent", {"n": 1})
    monkeypatch.setattr(os, "write", real_write)

    assert buffer.path.stat().st_size == size
    buffer.append("journal_intent", {"n": 2})
    records, corrupt = buffer.read()
    assert [r.data["n"] for r in records] == [0, 2] and corrupt == []


def test_a_record_the_target_refuses_is_reported_and_skipped(buffer):
    buffer.append("journal_intent", {"n": 0})
    buffer.append("mystery", {"n": 1})
    buffer.append("journal_intent", {"n": 2})

    class Picky(Target):
        def apply_buffered(self, record):
            if record.kind == "mystery":
                raise ValueError("unknown buffer record kind 'mystery'")
            return super().apply_buffered(record)

    target = Picky()
    report = buffer.replay(target)
    assert [d["n"] for _, d in target.applied] == [0, 2]
    assert report.refused == 1 and report.corrupt[0].line == 2 and "mystery" in report.corrupt[0].problem
