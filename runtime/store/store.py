"""`Store`: the one object the rest of Warden uses to talk to Redis.

It composes the parts (keys, fencing, locks, queue, journal, prices,
documents, health probe, disk buffer) behind flat methods, with two promises:

- Redis down is an exception, fast: every call raises `StoreUnavailable`
  within one socket timeout (0.5 s by default; a killed local server is
  detected in well under a millisecond). `available()` never raises.
- A value loaded from Redis is schema-checked: malformed data raises
  `CorruptState(key, field, problem)`.

Two more promises for F27/F31:

- Once monitor:store has seen Redis fail (`mark_down`), every facade call
  raises `StoreUnavailable` at once, without touching the network, until the
  probe finds it up again (`mark_up`): a hung Redis (SIGSTOP, a blackholed
  host) costs each caller nothing instead of a socket timeout per call.
- A key of the wrong Redis type, or a cache entry that fails its check, is
  quarantined (renamed aside, see quarantine.py) and the call is made once more
  on a fresh key: one bad value degrades one key, never the component.

The `*_or_buffer` methods are for records that must survive a Redis outage
(F18: risk-reducing exits still run). They write to Redis, or, when Redis is
down, to the fsynced local disk buffer; while the buffer holds anything they
keep appending there so order is never broken, until `replay_buffer()` has
drained it. Whoever watches Redis health (monitor:store) must call
`replay_buffer()` when Redis returns, before reopening the gate. Until then a
runtime in Redis may be older than one in the buffer, so runtime reads raise
`StoreUnavailable` while the buffer holds records (seed 295: an exit read a
runtime from before its own buffered fill and sold again); exits run from the
last known runtime meanwhile, as in the outage.

Thread-safety: redis-py clients and their pools are thread-safe, and so is
the disk buffer; a Store may be shared by actors.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import redis

from runtime.logging import log_event
from runtime.store.connection import DEFAULT_SOCKET_TIMEOUT_S, connect, decodes_responses
from runtime.store.disk_buffer import BufferedRecord, DiskBuffer, ReplayReport
from runtime.store.documents import Document, Documents
from runtime.store.embedded import Endpoint
from runtime.store.errors import CorruptState, LockBusy, StoreUnavailable, reply_code, translated
from runtime.store.fencing import Generations, RuntimeRecords
from runtime.store.health import DEFAULT_PROBE_TIMEOUT_S, Health, HealthProbe
from runtime.store.journal import Journal, JournalEntry, new_record_id
from runtime.store.keys import Keys
from runtime.store.locks import Lock, Locks
from runtime.store.order_path import OrderPath
from runtime.store.prices import Price, Prices
from runtime.store.quarantine import quarantine_if_still_bad, quarantine_key
from runtime.store.queue import OrderQueue, Priority, QueuedOrder
from runtime.store.runtime_state import Runtime, parse_runtime


# Kinds of disk-buffer records, and what replay does with each.
BUFFER_JOURNAL_INTENT = "journal_intent"
BUFFER_JOURNAL_OUTCOME = "journal_outcome"
BUFFER_RUNTIME = "runtime"
BUFFER_QUEUE_ACK = "queue_ack"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Recorded:
    """Where a must-not-lose record went."""

    where: Literal["redis", "buffer"]
    record_id: str
    entry_id: str | None = None  # the journal entry id, when it went to Redis


class Store:
    def __init__(
        self,
        client_or_url: redis.Redis | str | Endpoint,
        namespace: str = "warden",
        *,
        buffer_path: str | Path | None = None,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT_S,
        probe_timeout_s: float = DEFAULT_PROBE_TIMEOUT_S,
        consumer_group: str = "execution",
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`client_or_url`: a url (redis://, rediss://, unix://), an Endpoint (url +
        password from the environment), or a ready redis-py client (used as given;
        it must not decode responses). `buffer_path`: the disk buffer's JSONL file;
        without it the `*_or_buffer` methods raise StoreUnavailable like the rest.
        """
        if isinstance(client_or_url, redis.Redis):
            if decodes_responses(client_or_url):
                raise ValueError("Store needs a client with decode_responses=False (it validates raw bytes)")
            self.client, self._owns_client = client_or_url, False
        elif isinstance(client_or_url, Endpoint):
            self.client, self._owns_client = client_or_url.client(socket_timeout=socket_timeout), True
        else:
            self.client, self._owns_client = connect(client_or_url, socket_timeout=socket_timeout), True
        self.keys = Keys(namespace)
        self._clock = clock
        self.runtime = RuntimeRecords(self.client, self.keys)
        self.locks = Locks(self.client)
        self.queue = OrderQueue(self.client, self.keys, consumer_group)
        self.journal = Journal(self.client, self.keys, clock)
        self.order_path = OrderPath(self.client, self.keys, self.journal)
        self.prices = Prices(self.client, self.keys, clock)
        self.documents = Documents(self.client, self.keys, clock)
        self.probe = HealthProbe(self.client, probe_timeout_s, clock)
        self.buffer = DiskBuffer(buffer_path, clock) if buffer_path is not None else None
        self._down_reason: str | None = None  # set by monitor:store while Redis is known down
        self._down_lock = threading.Lock()

    # -- health ---------------------------------------------------------------
    def health(self) -> Health:
        """One PING: up/down and latency. Never raises."""
        return self.probe.probe()

    def available(self) -> bool:
        return self.health().up

    def mark_down(self, reason: str) -> None:
        """Redis is known down or hung: fail every call at once until `mark_up` (F27)."""
        with self._down_lock:
            self._down_reason = reason

    def mark_up(self) -> None:
        with self._down_lock:
            self._down_reason = None

    @property
    def marked_down(self) -> str | None:
        return self._down_reason

    def _up(self, operation: str) -> None:
        reason = self._down_reason
        if reason is not None:
            raise StoreUnavailable(operation, f"Redis marked down by the health probe ({reason})")

    def _repairing(self, expected: Mapping[str, tuple[str, ...]], call: Callable[[], T]) -> T:
        """`call()`; when it meets a key of the wrong Redis type among `expected` (key -> allowed
        types), quarantine every such key and call once more (F31). The retry runs even when
        nothing was moved here: another writer may have repaired the key in between."""
        try:
            return call()
        except (CorruptState, redis.ResponseError) as exc:
            if isinstance(exc, CorruptState) and exc.field != "type":
                raise
            if isinstance(exc, redis.ResponseError) and not reply_code(exc).startswith("WRONGTYPE"):
                raise
            for key, allowed in expected.items():
                quarantine_key(self.client, key, f"expected {' or '.join(allowed)}: {exc}", wrong_unless=allowed)
        return call()

    def close(self) -> None:
        self.probe.close()
        if self._owns_client:
            self.client.close()

    # -- runtime and fencing ------------------------------------------------
    def next_generation(self) -> int:
        return self.runtime.next_generation()

    def generations(self) -> Generations:
        """A generation source for supervisors, monotonic across processes; raises StoreUnavailable."""
        return Generations(self.runtime.reserve_generations)

    def _current(self, operation: str) -> None:
        """Runtimes in Redis are current: it is up and the disk buffer holds nothing newer."""
        self._up(operation)
        if self.buffer_pending():
            raise StoreUnavailable(operation, "disk buffer not replayed into Redis yet: its runtimes are older")

    def load_runtime(self, strategy_id: str) -> Runtime | None:
        """Raises CorruptState when `runtime:{id}` is malformed (F14: abort that strategy)."""
        self._current("load_runtime")
        return self.runtime.load(strategy_id)

    def load_runtimes(self, strategy_ids: Sequence[str]) -> dict[str, Runtime | None | CorruptState]:
        """`load_runtime` for many, pipelined: each id maps to its record, None, or its CorruptState."""
        self._current("load_runtimes")
        return self.runtime.load_many(strategy_ids)

    def write_runtime(self, strategy_id: str, runtime: Runtime) -> None:
        """Raises StaleGeneration when a newer generation has written (§1 Fencing)."""
        self._up("write_runtime")
        self.runtime.write(strategy_id, runtime)

    def replace_corrupt_runtime(self, strategy_id: str, runtime: Runtime, problem: str) -> str | None:
        """Quarantine a malformed `runtime:{id}` and write `runtime` in its place (F31: an exit made
        from the last known runtime must be recorded). Returns where the bad record went; None when
        another writer repaired it after it was read (it is kept, and the write is fenced as usual:
        StaleGeneration when that writer is newer)."""
        self._up("replace_corrupt_runtime")
        key = self.keys.runtime(strategy_id)
        aside = quarantine_if_still_bad(self.client, key, problem, lambda raw: parse_runtime(raw, key) if raw else None)
        self.runtime.write(strategy_id, runtime)
        return aside

    def fence(self, strategy_id: str, generation: int) -> bool:
        """Raise the stored generation so older incarnations' writes are refused."""
        return self.runtime.fence(strategy_id, generation)

    def fence_all(self, strategy_ids: Sequence[str], generation: int) -> dict[str, bool | CorruptState]:
        """`fence` for many, pipelined: each id maps to whether it was raised, or its CorruptState."""
        return self.runtime.fence_many(strategy_ids, generation)

    # -- locks ------------------------------------------------------------------
    def acquire_lock(self, strategy_id: str, ttl_ms: int, *, generation: int = 0) -> Lock | None:
        """None if held; with a process `generation`, a lock of an earlier process is taken over."""
        self._up("acquire_lock")
        return self.locks.acquire(self.keys.lock_state(strategy_id), ttl_ms, generation=generation)

    def lock_and_load(self, strategy_id: str, ttl_ms: int, *, generation: int = 0
                      ) -> tuple[Lock | None, Runtime | CorruptState | None]:
        """The lock (None if held) and the runtime (or the CorruptState it failed with) in one script."""
        self._current("lock_and_load")
        lock, loaded = self.order_path.lock_and_load(strategy_id, ttl_ms, generation)
        return self._noted(strategy_id, lock, loaded)

    def _noted(self, strategy_id: str, lock: Lock | None, loaded: Runtime | CorruptState | str | None
               ) -> tuple[Lock | None, Runtime | CorruptState | None]:
        """Remember why a lock could not be taken when its holder was no owner (F31)."""
        key = self.keys.lock_state(strategy_id)
        if lock is None and isinstance(loaded, str):
            self.locks.stale[key] = loaded
            return None, None
        self.locks.stale.pop(key, None)
        return lock, loaded

    def lock_load_and_journal(
        self, strategy_id: str, ttl_ms: int, *, generation: int, expected: Runtime | None, client_order_id: str,
        fields: Mapping[str, Any], pending: Runtime,
    ) -> tuple[Lock | None, Runtime | CorruptState | None, str | None]:
        """The order path in one round trip (DESIGN §6): `lock_and_load`, and, when the stored
        runtime is still `expected` (None: still no record), the intent journaled and `pending` written by the same script
        (the third value is then the journal entry id, else None). Never while the disk buffer
        holds records: StoreUnavailable then, as `lock_and_load`."""
        self._current("lock_and_load")
        lock, loaded, entry_id = self.order_path.lock_load_and_journal(
            strategy_id, ttl_ms, generation, expected, client_order_id, fields, pending)
        return (*self._noted(strategy_id, lock, loaded), entry_id)

    def journal_and_mark_pending(self, client_order_id: str, fields: Mapping[str, Any], strategy_id: str,
                                 runtime: Runtime) -> str:
        """The order path's second round trip, when the first could not journal: journal the intent
        and write the pending runtime atomically. Never while the disk buffer holds records (order
        is kept there)."""
        self._up("journal_and_mark_pending")
        return self.order_path.journal_and_mark_pending(client_order_id, fields, strategy_id, runtime)

    def load_order_scripts(self) -> None:
        """Load the order path's Lua scripts (the engine does at start; Redis forgets them on restart,
        then the first call loads them again itself)."""
        self._up("load_scripts")
        self.order_path.load_scripts()

    def release_lock(self, lock: Lock) -> bool:
        return self.locks.release(lock)

    def extend_lock(self, lock: Lock, ttl_ms: int | None = None) -> bool:
        return self.locks.extend(lock, ttl_ms)

    def lock_problem(self, strategy_id: str) -> str | None:
        """Why the last failed acquire of this strategy's lock met no real owner (F31), if it did."""
        return self.locks.stale.get(self.keys.lock_state(strategy_id))

    def lock_holder(self, strategy_id: str) -> str | None:
        return self.locks.holder(self.keys.lock_state(strategy_id))

    @contextmanager
    def locked(self, strategy_id: str, ttl_ms: int) -> Iterator[Lock]:
        """Hold the strategy's lock for the block; LockBusy if someone else holds it."""
        lock = self.acquire_lock(strategy_id, ttl_ms)
        if lock is None:
            raise LockBusy(self.keys.lock_state(strategy_id))
        try:
            yield lock
        finally:
            try:
                if not self.release_lock(lock):
                    log_event("store", "lock_lost", details={"key": lock.key, "ttl_ms": lock.ttl_ms},
                              action_taken="none; the lock had expired or changed hands", level="WARNING")
            except StoreUnavailable:
                log_event("store", "lock_release_failed", details={"key": lock.key},
                          action_taken=f"lock expires by itself within {lock.ttl_ms} ms", level="WARNING")

    # -- order queue ------------------------------------------------------------
    def _queue_types(self) -> dict[str, tuple[str, ...]]:
        return {self.keys.queue_stop: ("stream",), self.keys.queue_orders: ("stream",)}

    def enqueue(self, intent: Mapping[str, Any], priority: Priority = Priority.NORMAL) -> str:
        self._up("enqueue")
        return self._repairing(self._queue_types(), lambda: self.queue.enqueue(intent, priority))

    def read(self, consumer: str, count: int = 10, block_ms: int | None = None) -> list[QueuedOrder]:
        self._up("queue_read")
        return self._repairing(self._queue_types(), lambda: self.queue.read(consumer, count, block_ms))

    def ack(self, order: QueuedOrder) -> bool:
        self._up("queue_ack")
        return self.queue.ack(order)

    def reclaim(self, consumer: str, min_idle_ms: int, count: int = 100) -> list[QueuedOrder]:
        self._up("queue_reclaim")
        return self._repairing(self._queue_types(), lambda: self.queue.reclaim(consumer, min_idle_ms, count))

    # -- journal ----------------------------------------------------------------
    def _journal_types(self) -> dict[str, tuple[str, ...]]:
        k = self.keys
        return {k.journal_orders: ("stream",), k.journal_open: ("hash",), k.journal_records: ("hash",)}

    def journal_intent(self, client_order_id: str, fields: Mapping[str, Any], *, record_id: str | None = None) -> str:
        """Journal an order intent before it is sent; returns the entry id."""
        self._up("journal_intent")
        record_id = record_id or new_record_id()  # one id for both tries: the write stays idempotent
        return self._repairing(self._journal_types(),
                               lambda: self.journal.intent(client_order_id, fields, record_id=record_id)).entry_id

    def journal_outcome(
        self, client_order_id: str, outcome: str, fields: Mapping[str, Any] | None = None, *,
        final: bool | None = None, record_id: str | None = None,
    ) -> str:
        self._up("journal_outcome")
        record_id = record_id or new_record_id()
        return self._repairing(self._journal_types(), lambda: self.journal.outcome(
            client_order_id, outcome, fields, final=final, record_id=record_id)).entry_id

    def unsettled(self) -> list[JournalEntry]:
        """Intents without a settling outcome, oldest first (F19 cold start)."""
        self._up("journal_unsettled")
        return self._repairing(self._journal_types(), self.journal.unsettled)

    def is_unsettled(self, client_order_id: str) -> bool:
        """True while the intent has no settling outcome in the journal."""
        return self.journal.is_unsettled(client_order_id)

    def entries(self) -> list[JournalEntry]:
        """The whole journal, oldest first."""
        self._up("journal_entries")
        return self.journal.entries()

    # -- must-not-lose writes: Redis, or the disk buffer ------------------------
    def journal_intent_or_buffer(self, client_order_id: str, fields: Mapping[str, Any]) -> Recorded:
        record_id = new_record_id()
        return self._redis_or_buffer(
            [(BUFFER_JOURNAL_INTENT, {"client_order_id": client_order_id, "fields": dict(fields)}, record_id)],
            lambda: self.journal_intent(client_order_id, fields, record_id=record_id),
        )

    def journal_outcome_or_buffer(
        self, client_order_id: str, outcome: str, fields: Mapping[str, Any] | None = None, *,
        final: bool | None = None,
    ) -> Recorded:
        record_id = new_record_id()
        outcome = str(getattr(outcome, "value", outcome))
        data = {"client_order_id": client_order_id, "outcome": outcome, "fields": dict(fields or {}), "final": final}
        return self._redis_or_buffer(
            [(BUFFER_JOURNAL_OUTCOME, data, record_id)],
            lambda: self.journal_outcome(client_order_id, outcome, fields, final=final, record_id=record_id),
        )

    def write_runtime_or_buffer(self, strategy_id: str, runtime: Runtime) -> Recorded:
        """Fenced runtime write, or buffered; a buffered write is still fenced at replay."""
        self.keys.runtime(strategy_id)  # validate now, not at replay
        data = {"strategy_id": strategy_id, "runtime": runtime.to_redis()}

        def write() -> None:
            self.write_runtime(strategy_id, runtime)

        return self._redis_or_buffer([(BUFFER_RUNTIME, data, new_record_id())], write)

    def record_outcome_or_buffer(
        self, strategy_id: str, runtime: Runtime | None, client_order_id: str | None, outcome: str,
        fields: Mapping[str, Any] | None = None, *, final: bool | None = None, acks: Sequence[QueuedOrder] = (),
    ) -> Recorded:
        """The outcome write of an order, one round trip: the runtime (fenced; None leaves it), the
        journal outcome (None: no client id, nothing to journal) and the ack of the queue entries
        the intent came from (issue 10 case 6). With Redis down, all of it goes to the disk buffer
        in that order (the acks replayed after the outcome), never part of it."""
        record_id = new_record_id()
        outcome = str(getattr(outcome, "value", outcome))
        buffered: list[tuple[str, dict[str, Any], str]] = []
        if runtime is not None:
            self.keys.runtime(strategy_id)  # validate now, not at replay
            buffered.append((BUFFER_RUNTIME, {"strategy_id": strategy_id, "runtime": runtime.to_redis()},
                             new_record_id()))
        entry = None
        if client_order_id is not None:
            entry = self.journal.outcome_args(client_order_id, outcome, fields, final=final, record_id=record_id)
            buffered.append((BUFFER_JOURNAL_OUTCOME, {"client_order_id": client_order_id, "outcome": outcome,
                                                      "fields": dict(fields or {}), "final": final}, record_id))
        for queued in acks:
            buffered.append((BUFFER_QUEUE_ACK, {"stream": queued.stream, "entry_id": queued.entry_id},
                             new_record_id()))
        pairs = [(queued.stream, queued.entry_id) for queued in acks]

        def write() -> str:
            self._up("record_outcome")
            return self._repairing({**self._journal_types(), **self._queue_types()},
                                   lambda: self.order_path.record_outcome(strategy_id, runtime, entry, pairs,
                                                                          self.queue.group))

        return self._redis_or_buffer(buffered, write, record_id)

    def buffer_pending(self) -> bool:
        """True while the disk buffer holds records not yet replayed."""
        return self.buffer is not None and not self.buffer.is_empty()

    def replay_buffer(self) -> ReplayReport:
        """Replay the disk buffer to Redis in order, idempotently, then truncate it."""
        if self.buffer is None:
            return ReplayReport()
        return self.buffer.replay(self)

    def apply_buffered(self, record: BufferedRecord) -> str:
        """Apply one disk-buffer record (called by the replay): "applied" or "duplicate"."""
        data = record.data
        if record.kind == BUFFER_JOURNAL_INTENT:
            appended = self.journal.intent(
                data["client_order_id"], data["fields"], record_id=record.record_id, at=record.at, source="buffer")
        elif record.kind == BUFFER_JOURNAL_OUTCOME:
            appended = self.journal.outcome(
                data["client_order_id"], data["outcome"], data["fields"], final=data["final"],
                record_id=record.record_id, at=record.at, source="buffer")
        elif record.kind == BUFFER_QUEUE_ACK:
            return "applied" if self.queue.ack_entry(data["stream"], data["entry_id"]) else "duplicate"
        elif record.kind == BUFFER_RUNTIME:
            where = f"{self.buffer.path if self.buffer else 'buffer'}:{record.line}"
            self.runtime.write(data["strategy_id"], parse_runtime(data["runtime"], where))
            return "applied"
        else:
            raise ValueError(f"unknown buffer record kind {record.kind!r}")
        return "duplicate" if appended.duplicate else "applied"

    def _redis_or_buffer(self, records: Sequence[tuple[str, dict[str, Any], str]], write: Callable[[], Any],
                         record_id: str | None = None) -> Recorded:
        """`write()` to Redis, or, when Redis is down (or the buffer still holds older records),
        append `records` (kind, data, record id) to the disk buffer, in order, all of them.
        Returned as `record_id` (default: the first record's)."""
        record_id = record_id or records[0][2]
        if self.buffer is not None and not self.buffer.is_empty():
            # Older records wait in the buffer: these go behind them, never ahead.
            for kind, data, rid in records:
                self.buffer.append(kind, data, rid)
            return Recorded("buffer", record_id)
        try:
            result = write()
        except StoreUnavailable as exc:
            if self.buffer is None:
                raise
            for kind, data, rid in records:
                self.buffer.append(kind, data, rid)
            log_event("store", "store_write_buffered",
                      details={"kind": "+".join(kind for kind, _, _ in records), "record_id": record_id,
                               "cause": str(exc)},
                      action_taken=f"appended to {self.buffer.path}", level="WARNING")
            return Recorded("buffer", record_id)
        return Recorded("redis", record_id, result if isinstance(result, str) and result else None)

    # -- prices, strategies, snapshots --------------------------------------------
    def set_price(self, symbol: str, price: float, ts: float | None = None) -> None:
        self._up("set_price")
        self._repairing({self.keys.price(symbol): ("hash",)}, lambda: self.prices.set(symbol, price, ts))

    def last_price(self, symbol: str) -> Price | None:
        """The last price seen; None when there is none, or when it was malformed (then quarantined:
        a cache is never worth a failed start, F31)."""
        self._up("last_price")
        try:
            return self.prices.get(symbol)
        except CorruptState as exc:
            quarantine_if_still_bad(self.client, exc.key, str(exc), lambda raw: self.prices.parse(symbol, raw))
            return None

    def put_strategy(self, strategy_id: str, definition: Mapping[str, Any]) -> None:
        self._up("put_strategy")
        symbol = definition.get("symbol")
        expected = {self.keys.strategy(strategy_id): ("hash",)}
        if isinstance(symbol, str):
            expected[self.keys.symbol_strategies(symbol)] = ("set",)
        self._repairing(expected, lambda: self.documents.put_strategy(strategy_id, definition))

    def put_strategies(self, definitions: Mapping[str, Mapping[str, Any]], chunk: int = 1000) -> None:
        """`put_strategy` for many: one round trip per `chunk` definitions; a chunk that meets a
        key of the wrong type is put one by one, which quarantines and repairs that key (F31)."""
        self._up("put_strategies")
        items = list(definitions.items())
        for first in range(0, len(items), chunk):
            part = dict(items[first:first + chunk])
            try:
                self.documents.put_strategies(part)
            except redis.ResponseError:
                for strategy_id, definition in part.items():
                    self.put_strategy(strategy_id, definition)

    def load_strategy(self, strategy_id: str) -> dict[str, Any] | None:
        return self.documents.load_strategy(strategy_id)

    def strategies_for_symbol(self, symbol: str) -> frozenset[str]:
        return self._repairing({self.keys.symbol_strategies(symbol): ("set",)},
                               lambda: self.documents.strategies_for_symbol(symbol))

    def put_snapshot(self, symbol: str, data: Mapping[str, Any], ts: float | None = None) -> None:
        self.documents.put_snapshot(symbol, data, ts)

    def load_snapshot(self, symbol: str) -> Document | None:
        return self.documents.load_snapshot(symbol)
