"""The local disk buffer: what must reach Redis, kept on disk while Redis is down.

While Redis is unreachable, risk-reducing exits still run (F18) and their
records (journal intents/outcomes, runtime writes) are appended here, one JSON
line each, flushed and fsynced before `append` returns. When Redis is back,
`replay(target)` hands them to `target.apply_buffered(record)` in file order
and truncates the file once every record is through.

Line format: `<crc32 of body, 8 hex> <body JSON>\\n`, body =
`{"id", "kind", "at", "data"}`. The checksum catches torn and bit-flipped
lines; a line that fails it (or does not parse) is reported as `file:line`,
copied to `<file>.corrupt` for the operator, and skipped: the records around it
are still replayed.

Idempotence: every record has a unique id, and the target applies a record id
at most once (journal writes dedupe on it in Redis), so a replay that dies half
way (Redis killed again, process crash) is simply run again.

Thread-safety: appends and the final truncate share one lock; a replay applies
records *outside* that lock, so exits keep being buffered while it runs, and
records appended during a replay are replayed by the same call. One replay
runs at a time. One process owns a buffer file.

Never holds the lock across network I/O; never drops a record silently.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from runtime.logging import log_event
from runtime.store._codec import dump_json
from runtime.store.errors import BufferWriteError, CorruptState, StaleGeneration, StoreUnavailable

_CRC = re.compile(rb"[0-9a-f]{8}")


@dataclass(frozen=True, slots=True)
class BufferedRecord:
    record_id: str
    kind: str
    data: dict[str, Any]
    at: float  # epoch seconds when it was buffered (the event's time)
    line: int = 0  # 1-based line in the buffer file; 0 until read back


@dataclass(frozen=True, slots=True)
class CorruptLine:
    path: str
    line: int
    problem: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.problem}"


@dataclass(slots=True)
class ReplayReport:
    applied: int = 0  # written to Redis by this replay
    duplicates: int = 0  # already in Redis (an earlier, interrupted replay)
    refused: int = 0  # the target refused them for good (stale generation, invalid record)
    corrupt: list[CorruptLine] = field(default_factory=list)  # skipped lines, also refused records

    @property
    def seen(self) -> int:
        return self.applied + self.duplicates + self.refused


class ReplayTarget(Protocol):
    def apply_buffered(self, record: BufferedRecord) -> str:
        """Apply one record; return "applied" or "duplicate". Raise StoreUnavailable to stop."""
        ...


class DiskBuffer:
    def __init__(self, path: str | os.PathLike[str], clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.corrupt_path = self.path.with_name(self.path.name + ".corrupt")
        self._clock = clock
        self._lock = threading.Lock()  # appends vs. reading the tail and truncating
        self._replay_lock = threading.Lock()  # one replay at a time: offsets assume no truncate behind them

    # -- writing ------------------------------------------------------------
    def append(self, kind: str, data: dict[str, Any], record_id: str | None = None) -> BufferedRecord:
        """Persist one record (flush + fsync) and return it; BufferWriteError if the disk refuses."""
        record = BufferedRecord(record_id or uuid.uuid4().hex, kind, dict(data), float(self._clock()))
        body = dump_json({"id": record.record_id, "kind": record.kind, "at": record.at, "data": record.data})
        line = f"{zlib.crc32(body.encode()):08x} {body}\n".encode()
        with self._lock:
            created = not self.path.exists()
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            except OSError as exc:
                raise BufferWriteError(str(self.path), exc) from exc
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # close a torn last line so it cannot swallow this record
                try:
                    _write_all(fd, line)
                    os.fsync(fd)
                except OSError as exc:
                    _quietly(os.ftruncate, fd, size)  # no half record left behind
                    raise BufferWriteError(str(self.path), exc) from exc
            finally:
                os.close(fd)
            if created:
                _fsync_dir(self.path.parent)
        return record

    # -- reading ------------------------------------------------------------
    def is_empty(self) -> bool:
        try:
            return self.path.stat().st_size == 0
        except FileNotFoundError:
            return True

    def read(self) -> tuple[list[BufferedRecord], list[CorruptLine]]:
        """Every record in file order, and every line that failed its check."""
        with self._lock:
            data = self._read_from(0)
        complete, torn = _split_torn(data)
        records, corrupt, line_no = self._parse(complete, 0)
        bad = [line for line, _ in corrupt]
        if torn:
            bad.append(self._torn(line_no + 1))
        return records, bad

    # -- replay ---------------------------------------------------------------
    def replay(self, target: ReplayTarget) -> ReplayReport:
        """Apply every record in order, then truncate. StoreUnavailable propagates, file intact."""
        with self._replay_lock:
            return self._replay(target)

    def _replay(self, target: ReplayTarget) -> ReplayReport:
        report = ReplayReport()
        offset, line_no = 0, 0
        while True:
            with self._lock:
                complete, torn = _split_torn(self._read_from(offset))
                if not complete:
                    # Nothing left but (maybe) a torn last line, and no append can start now.
                    if torn:
                        self._skip(self._torn(line_no + 1), torn, report)
                    self._truncate()
                    break
            records, corrupt, line_no = self._parse(complete, line_no)
            for bad, raw in corrupt:
                self._skip(bad, raw, report)
            for record in records:
                self._apply(target, record, report)
            offset += len(complete)
        if report.seen or report.corrupt:
            log_event("store", "disk_buffer_replayed",
                      details={"path": str(self.path), "applied": report.applied, "duplicates": report.duplicates,
                               "refused": report.refused, "corrupt": [str(c) for c in report.corrupt]},
                      action_taken="buffer truncated")
        return report

    # -- internals ----------------------------------------------------------
    def _apply(self, target: ReplayTarget, record: BufferedRecord, report: ReplayReport) -> None:
        try:
            verdict = target.apply_buffered(record)
        except StoreUnavailable:
            log_event("store", "disk_buffer_replay_interrupted",
                      details={"path": str(self.path), "line": record.line, "applied": report.applied},
                      action_taken="buffer kept; replay again when Redis is back", level="WARNING")
            raise
        except (StaleGeneration, CorruptState, ValueError, TypeError, KeyError, AttributeError) as exc:
            report.refused += 1
            bad = CorruptLine(str(self.path), record.line, f"record {record.record_id} refused: {exc}")
            body = dump_json({"id": record.record_id, "kind": record.kind, "at": record.at, "data": record.data})
            self._skip(bad, body.encode(), report)
            return
        if verdict == "duplicate":
            report.duplicates += 1
        else:
            report.applied += 1

    def _read_from(self, offset: int) -> bytes:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(offset)
                return fh.read()
        except FileNotFoundError:
            return b""

    def _truncate(self) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY)
        except FileNotFoundError:
            return
        try:
            os.ftruncate(fd, 0)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _parse(
        self, chunk: bytes, line_no: int
    ) -> tuple[list[BufferedRecord], list[tuple[CorruptLine, bytes]], int]:
        """Records and bad lines (with their bytes) of complete lines; the first is line_no + 1."""
        records: list[BufferedRecord] = []
        corrupt: list[tuple[CorruptLine, bytes]] = []
        for raw in chunk.split(b"\n")[:-1]:
            line_no += 1
            if not raw:
                continue  # a blank line carries nothing
            parsed = _parse_line(raw, line_no)
            if isinstance(parsed, str):
                corrupt.append((CorruptLine(str(self.path), line_no, parsed), raw))
            else:
                records.append(parsed)
        return records, corrupt, line_no

    def _torn(self, line_no: int) -> CorruptLine:
        return CorruptLine(str(self.path), line_no, "torn write: last line has no newline")

    def _skip(self, bad: CorruptLine, raw: bytes, report: ReplayReport) -> None:
        """Report a line or record that cannot be replayed, and keep its bytes for the operator."""
        report.corrupt.append(bad)
        log_event("store", "disk_buffer_line_skipped", details={"where": str(bad)},
                  action_taken="skipped; kept in " + str(self.corrupt_path), level="ERROR")
        self._keep_corrupt(bad, raw)

    def _keep_corrupt(self, bad: CorruptLine, raw: bytes) -> None:
        """Save what could not be replayed next to the buffer, for the operator."""
        try:
            with open(self.corrupt_path, "ab") as fh:
                fh.write(f"# {bad}\n".encode() + raw.rstrip(b"\n") + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            log_event("store", "disk_buffer_corrupt_not_saved", details={"where": str(bad), "error": str(exc)},
                      action_taken="none", level="ERROR")


def _parse_line(raw: bytes, line_no: int) -> BufferedRecord | str:
    """A record, or the problem with the line."""
    crc_hex, sep, body = raw.partition(b" ")
    if not sep or not _CRC.fullmatch(crc_hex):
        return "no checksum prefix"
    if zlib.crc32(body) != int(crc_hex, 16):
        return "checksum mismatch (torn or corrupted write)"
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as exc:
        return f"not JSON: {exc}"
    if not isinstance(obj, dict) or set(obj) != {"id", "kind", "at", "data"}:
        return "not a buffer record"
    if not (isinstance(obj["id"], str) and isinstance(obj["kind"], str) and isinstance(obj["data"], dict)
            and isinstance(obj["at"], (int, float)) and not isinstance(obj["at"], bool)
            and math.isfinite(obj["at"])):
        return "buffer record fields of the wrong type"
    return BufferedRecord(obj["id"], obj["kind"], obj["data"], float(obj["at"]), line_no)


def _split_torn(data: bytes) -> tuple[bytes, bytes]:
    """(complete lines including their newlines, trailing bytes without a newline)."""
    cut = data.rfind(b"\n") + 1
    return data[:cut], data[cut:]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        _quietly(os.fsync, fd)
    finally:
        os.close(fd)


def _quietly(fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except OSError:
        pass
