"""The order journal `journal:{orders}`: every intent and outcome, append-only.

Nothing here deletes or trims the journal stream. Two small indexes are
updated by the same Lua script as the append, atomically:

- `journal:{orders}:open` (client_order_id -> entry id of its intent) holds the
  intents without a settling outcome; `unsettled()` reads it, so a cold start
  (F19) costs O(open orders), not O(journal).
- `journal:{orders}:records` (record_id -> entry id) makes every write
  idempotent: a write carries a record id chosen *before* the first attempt,
  so a write whose reply was lost, or a disk-buffer record replayed twice after
  a crash mid-replay, lands exactly once.

An outcome settles its intent when it is one of SETTLING_OUTCOMES (the venue's
answer is known, or we decided not to send) unless the caller says otherwise
with `final=`. Anything else (UNKNOWN, DUPLICATE, NOT_FOUND, RATE_LIMITED, a
name this module does not know) leaves the intent open: an unknown word can only cause an extra lookup
at the venue, never a duplicate order.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import redis

from runtime.store._codec import decode_mapping, dump_json, json_object, nonnegative_float, show, text
from runtime.store.errors import CorruptState, translated
from runtime.store.keys import Keys
from runtime.store.quarantine import quarantine_field
from runtime.store.runtime_state import CLIENT_ORDER_ID

SETTLING_OUTCOMES = frozenset({
    # the venue answered (runtime.venue.outcomes.OutcomeKind and Binance order statuses)
    "ACCEPTED", "FILLED", "PARTIALLY_FILLED", "REJECTED", "REJECTED_PERMANENT", "TOKEN_INVALID",
    "CANCELED", "EXPIRED",
    # we decided (actors.pipeline.Verdict): not sent, or given up for good
    "REFUSED", "SAFETY_ABORT", "ACCOUNT_PAUSED", "CANCELLED", "ABORTED",
})
_ENTRY_FIELDS = frozenset({"kind", "client_order_id", "outcome", "final", "fields", "at", "record_id", "source"})
_RECORD_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

# KEYS[1] journal, KEYS[2] open index, KEYS[3] records index.
# ARGV[1] record_id, ARGV[2] kind, ARGV[3] client_order_id, ARGV[4] final (1/0), ARGV[5..] entry fields.
_APPEND = """
local existing = redis.call('HGET', KEYS[3], ARGV[1])
if existing then return {0, existing} end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 5))
redis.call('HSET', KEYS[3], ARGV[1], id)
if ARGV[2] == 'intent' then
  redis.call('HSETNX', KEYS[2], ARGV[3], id)
elseif ARGV[4] == '1' then
  redis.call('HDEL', KEYS[2], ARGV[3])
end
return {1, id}
"""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    entry_id: str
    kind: Literal["intent", "outcome"]
    client_order_id: str
    outcome: str | None  # None for intents
    final: bool  # an outcome that settles its intent
    fields: dict[str, Any]
    at: float  # when it happened (not when it reached Redis)
    record_id: str
    source: Literal["redis", "buffer"]  # "buffer": replayed from the local disk buffer


@dataclass(frozen=True, slots=True)
class Appended:
    entry_id: str
    duplicate: bool  # the record id was already journaled; nothing was added


def new_record_id() -> str:
    return uuid.uuid4().hex


def _entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class Journal:
    def __init__(self, client: redis.Redis, keys: Keys, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._keys = keys
        self._clock = clock
        self._append = client.register_script(_APPEND)

    def intent(
        self, client_order_id: str, fields: Mapping[str, Any], *, record_id: str | None = None,
        at: float | None = None, source: str = "redis",
    ) -> Appended:
        return self._write("intent", client_order_id, None, False, fields, record_id, at, source)

    def outcome(
        self, client_order_id: str, outcome: str, fields: Mapping[str, Any] | None = None, *,
        final: bool | None = None, record_id: str | None = None, at: float | None = None, source: str = "redis",
    ) -> Appended:
        args = self.outcome_args(client_order_id, outcome, fields, final=final, record_id=record_id, at=at,
                                 source=source)
        return self._append_args("outcome", args)

    def outcome_args(
        self, client_order_id: str, outcome: str, fields: Mapping[str, Any] | None = None, *,
        final: bool | None = None, record_id: str | None = None, at: float | None = None, source: str = "redis",
    ) -> list[str]:
        """The checked append arguments of an outcome (for scripts that write it with more)."""
        name = str(getattr(outcome, "value", outcome)).upper()
        if not name:
            raise ValueError("outcome must be a non-empty name")
        settles = name in SETTLING_OUTCOMES if final is None else bool(final)
        return self.entry_args("outcome", client_order_id, name, settles, fields or {}, record_id, at, source)

    def unsettled(self) -> list[JournalEntry]:
        """Intents with no settling outcome yet, in journal order (F19 cold start)."""
        open_key, journal_key = self._keys.journal_open, self._keys.journal_orders
        with translated("journal_unsettled", open_key):
            index = self._client.hgetall(open_key)
        pointers = [(text(k, open_key, "client_order_id"), text(v, open_key, show(k))) for k, v in index.items()]
        if not pointers:
            return []
        with translated("journal_unsettled", journal_key):
            pipe = self._client.pipeline(transaction=False)
            for _, entry_id in pointers:
                pipe.xrange(journal_key, entry_id, entry_id)
            replies = pipe.execute()
        found = []
        for (client_order_id, entry_id), reply in zip(pointers, replies):
            # A bad index entry is set aside (F31): one dangling pointer never blocks a cold start.
            if not reply:
                quarantine_field(self._client, open_key, client_order_id, entry_id,
                                 f"points at journal entry {entry_id}, which does not exist")
                continue
            try:
                entry = self._parse(reply[0][0], reply[0][1])
            except CorruptState as exc:
                quarantine_field(self._client, open_key, client_order_id, entry_id,
                                 f"points at a malformed entry: {exc}")
                continue
            if entry.kind != "intent" or entry.client_order_id != client_order_id:
                quarantine_field(self._client, open_key, client_order_id, entry_id,
                                 f"points at {entry_id}, which is not its intent")
                continue
            found.append(entry)
        return sorted(found, key=lambda e: _entry_key(e.entry_id))

    def is_unsettled(self, client_order_id: str) -> bool:
        """Has this intent no settling outcome yet? (one HEXISTS on the open index)"""
        key = self._keys.journal_open
        with translated("journal_is_unsettled", key):
            return bool(self._client.hexists(key, client_order_id))

    def entries(self, start: str = "-", end: str = "+", page: int = 1000) -> list[JournalEntry]:
        """Journal entries from `start` to `end` (inclusive), oldest first."""
        key = self._keys.journal_orders
        out: list[JournalEntry] = []
        cursor = start
        while True:
            with translated("journal_entries", key):
                batch = self._client.xrange(key, cursor, end, count=page)
            out += [self._parse(eid, fields) for eid, fields in batch]
            if len(batch) < page:
                return out
            cursor = "(" + text(batch[-1][0], key, "entry id")

    def since(self, since: float | None, lookback: int = 10_000, page: int = 1000) -> list[JournalEntry]:
        """Entries that reached the journal at or after `since` (epoch seconds; None: all), oldest
        first, plus the earlier intents of orders that have an outcome in that window (an order sent
        before `since` and filled after it), looked for in at most `lookback` older entries: what
        `GET /history` folds into orders (stream ids are milliseconds)."""
        if not since:
            return self.entries()
        start = f"{int(since * 1000)}-0"
        window = self.entries(start=start, page=page)
        have = {e.client_order_id for e in window if e.kind == "intent"}
        missing = {e.client_order_id for e in window if e.kind == "outcome"} - have
        earlier: list[JournalEntry] = []
        cursor, key = "(" + start, self._keys.journal_orders
        while missing and lookback > 0:
            with translated("journal_entries", key):
                batch = self._client.xrevrange(key, cursor, "-", count=min(page, lookback))
            for eid, fields in batch:
                entry = self._parse(eid, fields)
                if entry.kind == "intent" and entry.client_order_id in missing:
                    missing.discard(entry.client_order_id)
                    earlier.append(entry)
            if len(batch) < min(page, lookback):
                break
            lookback -= len(batch)
            cursor = "(" + text(batch[-1][0], key, "entry id")
        return earlier[::-1] + window

    # -- internals ---------------------------------------------------------
    def _write(
        self, kind: str, client_order_id: str, outcome: str | None, settles: bool, fields: Mapping[str, Any],
        record_id: str | None, at: float | None, source: str,
    ) -> Appended:
        return self._append_args(kind, self.entry_args(kind, client_order_id, outcome, settles, fields, record_id,
                                                       at, source))

    def _append_args(self, kind: str, args: list[str]) -> Appended:
        keys = [self._keys.journal_orders, self._keys.journal_open, self._keys.journal_records]
        with translated(f"journal_{kind}", self._keys.journal_orders):
            added, entry_id = self._append(keys=keys, args=args)
        return Appended(text(entry_id, keys[0], "entry id"), duplicate=added == 0)

    def entry_args(
        self, kind: str, client_order_id: str, outcome: str | None, settles: bool, fields: Mapping[str, Any],
        record_id: str | None, at: float | None, source: str,
    ) -> list[str]:
        """Checked arguments of the append script: record id, kind, client id, final, then the entry."""
        if not isinstance(client_order_id, str) or not CLIENT_ORDER_ID.fullmatch(client_order_id):
            raise ValueError(f"client order id {client_order_id!r} does not match [.A-Za-z0-9:/_-]{{1,36}}")
        record_id = record_id or new_record_id()
        if not _RECORD_ID.fullmatch(record_id):
            raise ValueError(f"record id {record_id!r} does not match [A-Za-z0-9._:-]{{1,64}}")
        if source not in ("redis", "buffer"):
            raise ValueError(f"source must be 'redis' or 'buffer', got {source!r}")
        try:
            body = dump_json(dict(fields))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"journal fields are not JSON-serialisable: {exc}") from exc
        entry = {
            "kind": kind, "client_order_id": client_order_id, "outcome": outcome or "",
            "final": "1" if settles else "0", "fields": body,
            "at": repr(float(self._clock() if at is None else at)), "record_id": record_id, "source": source,
        }
        args: list[str] = [record_id, kind, client_order_id, entry["final"]]
        for name, value in entry.items():
            args += [name, value]
        return args

    def _parse(self, raw_id: Any, raw_fields: Any) -> JournalEntry:
        key = self._keys.journal_orders
        entry_id = text(raw_id, key, "entry id")
        values = decode_mapping(raw_fields, key)

        def where(name: str) -> str:
            return f"{name} (entry {entry_id})"

        if set(values) != _ENTRY_FIELDS:
            missing, extra = sorted(_ENTRY_FIELDS - set(values)), sorted(set(values) - _ENTRY_FIELDS)
            raise CorruptState(key, where("fields"), f"missing {missing}, unexpected {extra}")
        kind = values["kind"]
        if kind not in ("intent", "outcome"):
            raise CorruptState(key, where("kind"), f"{show(kind)} is not intent or outcome")
        if not CLIENT_ORDER_ID.fullmatch(values["client_order_id"]):
            raise CorruptState(key, where("client_order_id"), f"not a client order id: {show(values['client_order_id'])}")
        outcome = values["outcome"]
        if (kind == "outcome") != bool(outcome):
            raise CorruptState(key, where("outcome"), f"{show(outcome)} does not fit kind {kind}")
        if values["final"] not in ("0", "1"):
            raise CorruptState(key, where("final"), f"expected 0 or 1, found {show(values['final'])}")
        if not _RECORD_ID.fullmatch(values["record_id"]):
            raise CorruptState(key, where("record_id"), f"not a record id: {show(values['record_id'])}")
        if values["source"] not in ("redis", "buffer"):
            raise CorruptState(key, where("source"), f"expected redis or buffer, found {show(values['source'])}")
        return JournalEntry(
            entry_id=entry_id,
            kind=kind,  # type: ignore[arg-type]
            client_order_id=values["client_order_id"],
            outcome=outcome or None,
            final=values["final"] == "1",
            fields=json_object(values["fields"], key, where("fields")),
            at=nonnegative_float(values["at"], key, where("at")),
            record_id=values["record_id"],
            source=values["source"],  # type: ignore[arg-type]
        )
