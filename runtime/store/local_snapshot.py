"""The local snapshot of the last known runtimes: what a start without Redis arms stops from.

Redis is the runtime store, and the last known runtime of each strategy lives in the
process's memory (the runtime cache) while Redis is down. A process killed during an
outage took that memory with it (seed 4242, +1225 s): its successor, started while Redis
was still down, knew no position and armed no stop. This file outlives the process.

Format: one line, `<crc32 of body, 8 hex> <body JSON>\\n`, body =
`{"format": 1, "written_at", "runtimes": {id: <the runtime:{id} hash fields>},
"protective": {id: client id of the venue-side stop holding its position}}`.

Writing: a temporary file in the same directory, flushed and fsynced, renamed over the
old one, then the directory fsynced: a reader sees the old snapshot or the new one,
never a torn one. Reading never raises: a missing file is an empty snapshot; a file that
fails its checksum or its shape is set aside as `<file>.corrupt` (for the operator) and
reported as a problem naming the file; a runtime that fails its schema check
(`parse_runtime`) is reported and left out, the others are kept.

Pure file I/O: never touches Redis, the network or an actor.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from runtime.store._codec import dump_json
from runtime.store.errors import CorruptState
from runtime.store.runtime_state import CLIENT_ORDER_ID, Runtime, parse_runtime

FORMAT = 1
_CRC = re.compile(r"[0-9a-f]{8}")


@dataclass
class LastKnown:
    """Last known runtimes and venue-side stop holds, with what could not be read."""

    runtimes: dict[str, Runtime] = field(default_factory=dict)
    protective: dict[str, str] = field(default_factory=dict)  # strategy id -> protective stop client id
    problems: list[str] = field(default_factory=list)  # each names the file (and entry) and what was wrong
    written_at: float | None = None


def write_snapshot(path: Path, runtimes: Mapping[str, Runtime], protective: Mapping[str, str],
                   written_at: float) -> None:
    """Replace the snapshot atomically and durably. Raises OSError (the old file stays)."""
    # Encoded entry by entry: one json.dumps of 10,000 runtimes would hold the GIL for tens of
    # milliseconds in C, and a tick crossing a stop on another thread would wait that long.
    entries = ",".join(f"{json.dumps(sid)}:{dump_json(runtime.to_redis())}" for sid, runtime in runtimes.items())
    body = (f'{{"format":{FORMAT},"protective":{dump_json(dict(protective))},"runtimes":{{{entries}}},'
            f'"written_at":{json.dumps(written_at)}}}')
    encoded = body.encode()
    data = f"{zlib.crc32(encoded):08x} ".encode() + encoded + b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except OSError:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(temp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def read_snapshot(path: Path) -> LastKnown:
    """The snapshot at `path`; never raises (see the module docstring)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return LastKnown()
    except OSError as exc:
        return LastKnown(problems=[f"{path}: unreadable: {exc}"])
    body, problem = _checked_body(raw)
    if problem:
        return LastKnown(problems=[f"{path}: {problem}{_set_aside(path)}"])
    known = LastKnown(written_at=float(body["written_at"]))
    for strategy_id, fields in body["runtimes"].items():
        where = f"{path}: runtimes.{strategy_id}"
        try:
            known.runtimes[strategy_id] = parse_runtime(fields, where)
        except CorruptState as exc:
            known.problems.append(f"{where}: field {exc.field}: {exc.problem}")
    for strategy_id, client_id in body["protective"].items():
        if isinstance(client_id, str) and CLIENT_ORDER_ID.fullmatch(client_id):
            known.protective[strategy_id] = client_id
        else:
            known.problems.append(f"{path}: protective.{strategy_id}: not a client order id: {client_id!r}"[:300])
    return known


def _checked_body(raw: bytes) -> tuple[dict[str, Any], str]:
    """The body of a snapshot file, or the problem with it."""
    line = raw.rstrip(b"\n")
    crc_hex, sep, body = line.partition(b" ")
    if not sep or not _CRC.fullmatch(crc_hex.decode("ascii", "replace")):
        return {}, "no checksum prefix (not a runtime snapshot, or torn)"
    if zlib.crc32(body) != int(crc_hex, 16):
        return {}, "checksum mismatch (corrupted on disk)"
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError) as exc:
        return {}, f"not JSON: {exc}"
    if not isinstance(parsed, dict) or parsed.get("format") != FORMAT:
        return {}, f"not a format-{FORMAT} runtime snapshot"
    if not (isinstance(parsed.get("runtimes"), dict) and isinstance(parsed.get("protective"), dict)
            and isinstance(parsed.get("written_at"), (int, float)) and not isinstance(parsed["written_at"], bool)):
        return {}, "runtimes, protective or written_at missing or of the wrong type"
    if not all(isinstance(fields, dict) for fields in parsed["runtimes"].values()):
        return {}, "a runtime entry is not an object"
    return parsed, ""


def _set_aside(path: Path) -> str:
    """Keep a corrupt snapshot for the operator (the next write replaces the file)."""
    aside = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, aside)
    except OSError as exc:
        return f" (could not be set aside: {exc})"
    return f" (set aside as {aside})"
