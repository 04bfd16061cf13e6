"""The order queue: two Redis Streams read through one consumer group.

`queue:{orders}:stop` carries stop-loss and other risk-reducing exits,
`queue:{orders}` everything else. One XREADGROUP blocks on both (they share a
hash tag) and a batch always lists stop entries first, so a stop never waits
behind entries. An entry stays in the group's pending list until `ack`; a
consumer that dies leaves its entries pending, and `reclaim(min_idle_ms)`
(XAUTOCLAIM) hands them to a live consumer (§8: a dead node's queued orders are
reclaimed). `ack` also deletes the entry (the journal, not the queue, is the
record), so the streams do not grow without bound.

An entry that fails its schema check is moved to `queue:{orders}:dead` with the
problem, logged, and acked, so one poison entry cannot wedge the consumer.

Reads may block only up to the client's socket timeout minus a margin: the
store's clients fail fast by design (see connection.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis

from runtime.logging import log_event
from runtime.store._codec import dump_json, json_object, show, text
from runtime.store.connection import socket_timeout_of
from runtime.store.errors import CorruptState, translated
from runtime.store.keys import Keys


_BLOCK_MARGIN_MS = 100


class Priority(StrEnum):
    STOP = "stop"  # stop-loss, flatten: risk-reducing exits, consumed first
    NORMAL = "normal"


@dataclass(frozen=True, slots=True)
class QueuedOrder:
    """One delivered queue entry. Ack it once handled."""

    entry_id: str
    priority: Priority
    intent: dict[str, Any]
    stream: str


class OrderQueue:
    def __init__(self, client: redis.Redis, keys: Keys, group: str = "execution") -> None:
        self._client = client
        self._keys = keys
        self.group = group
        self._streams = {Priority.STOP: keys.queue_stop, Priority.NORMAL: keys.queue_orders}
        self._group_ready = False
        timeout = socket_timeout_of(client)
        self.max_block_ms = None if timeout is None else max(0, int(timeout * 1000) - _BLOCK_MARGIN_MS)

    def stream(self, priority: Priority) -> str:
        return self._streams[Priority(priority)]

    def ensure_group(self) -> None:
        """Create the consumer group on both streams (idempotent; from the start of each)."""
        for key in self._streams.values():
            with translated("queue_create_group", key):
                try:
                    self._client.xgroup_create(key, self.group, id="0", mkstream=True)
                except redis.ResponseError as exc:
                    if not str(exc).startswith("BUSYGROUP"):
                        raise
        self._group_ready = True

    def enqueue(self, intent: Mapping[str, Any], priority: Priority = Priority.NORMAL) -> str:
        """Append an order intent; returns its entry id."""
        if not isinstance(intent, Mapping):
            raise TypeError(f"intent must be a mapping, got {type(intent).__name__}")
        key = self.stream(priority)
        try:
            body = dump_json(dict(intent))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"intent is not JSON-serialisable: {exc}") from exc
        with translated("enqueue", key):
            entry_id = self._client.xadd(key, {"intent": body})
        return text(entry_id, key, "entry id")

    def read(self, consumer: str, count: int = 10, block_ms: int | None = None) -> list[QueuedOrder]:
        """New entries for `consumer`: up to `count` per priority, stop entries first.

        `block_ms` > 0 waits that long for the first entry (bounded by
        `max_block_ms`); None or 0 returns at once.
        """
        if count <= 0:
            raise ValueError(f"count must be positive, got {count}")
        if block_ms and self.max_block_ms is not None and block_ms > self.max_block_ms:
            raise ValueError(
                f"block_ms={block_ms} exceeds {self.max_block_ms} ms (socket timeout minus margin); "
                "poll in a loop instead"
            )
        streams = {self._streams[Priority.STOP]: ">", self._streams[Priority.NORMAL]: ">"}
        reply = self._with_group(
            "queue_read",
            lambda: self._client.xreadgroup(self.group, consumer, streams, count=count, block=block_ms or None),
        )
        batches: dict[str, list[tuple[Any, Any]]] = {}
        for stream_name, entries in (reply.items() if isinstance(reply, dict) else reply or []):
            batches[text(stream_name, "queue", "stream name")] = entries
        orders: list[QueuedOrder] = []
        for priority in (Priority.STOP, Priority.NORMAL):
            key = self._streams[priority]
            orders += self._decode(key, priority, batches.get(key, []))
        return orders

    def ack(self, order: QueuedOrder) -> bool:
        """Acknowledge and delete a handled entry; False if it was not pending."""
        return self.ack_entry(order.stream, order.entry_id)

    def ack_entry(self, stream: str, entry_id: str) -> bool:
        with translated("queue_ack", stream):
            pipe = self._client.pipeline(transaction=True)
            pipe.xack(stream, self.group, entry_id)
            pipe.xdel(stream, entry_id)
            acked, _deleted = pipe.execute()
        return acked == 1

    def reclaim(self, consumer: str, min_idle_ms: int, count: int = 100) -> list[QueuedOrder]:
        """Take over entries pending longer than `min_idle_ms` (a dead consumer's), stop first."""
        claimed: list[QueuedOrder] = []
        for priority in (Priority.STOP, Priority.NORMAL):
            key = self._streams[priority]
            cursor: Any = "0-0"
            while len(claimed) < count:
                reply = self._with_group(
                    "queue_reclaim",
                    lambda: self._client.xautoclaim(
                        key, self.group, consumer, min_idle_time=min_idle_ms, start_id=cursor,
                        count=count - len(claimed),
                    ),
                    key,
                )
                cursor, entries = reply[0], reply[1]
                live = [(eid, fields) for eid, fields in entries if fields is not None]
                for eid, fields in entries:
                    if fields is None:  # deleted while pending (Redis < 7 reports these)
                        self._drop(key, eid)
                claimed += self._decode(key, priority, live)
                if text(cursor, key, "cursor") == "0-0":
                    break
        return claimed

    def pending(self) -> int:
        """Entries delivered but not yet acked, both priorities."""
        total = 0
        for key in self._streams.values():
            summary = self._with_group("queue_pending", lambda k=key: self._client.xpending(k, self.group), key)
            total += int(summary["pending"])
        return total

    def dead_letters(self) -> list[dict[str, str]]:
        """Entries that failed their schema check, oldest first."""
        key = self._keys.queue_dead
        with translated("queue_dead_letters", key):
            entries = self._client.xrange(key)
        return [{text(k, key, "field"): text(v, key, "value") for k, v in fields.items()} for _, fields in entries]

    # -- internals ---------------------------------------------------------
    def _with_group(self, operation: str, call: Any, key: str | None = None) -> Any:
        if not self._group_ready:
            self.ensure_group()
        with translated(operation, key):
            try:
                return call()
            except redis.ResponseError as exc:
                if not str(exc).startswith("NOGROUP"):
                    raise
        # The group vanished (Redis lost its data): recreate it and try once more.
        self.ensure_group()
        with translated(operation, key):
            return call()

    def _decode(self, key: str, priority: Priority, entries: list[tuple[Any, Any]]) -> list[QueuedOrder]:
        orders = []
        for raw_id, fields in entries:
            entry_id = text(raw_id, key, "entry id")
            try:
                orders.append(QueuedOrder(entry_id, priority, self._intent(key, entry_id, fields), key))
            except CorruptState as corrupt:
                self._dead_letter(key, entry_id, fields, corrupt)
        return orders

    @staticmethod
    def _intent(key: str, entry_id: str, fields: Any) -> dict[str, Any]:
        field = f"intent (entry {entry_id})"
        if not isinstance(fields, dict) or set(fields) != {b"intent"}:
            names = sorted(show(k) for k in fields) if isinstance(fields, dict) else fields
            raise CorruptState(key, field, f"expected exactly one field 'intent', found {names}")
        return json_object(text(fields[b"intent"], key, field), key, field)

    def _dead_letter(self, key: str, entry_id: str, fields: Any, corrupt: CorruptState) -> None:
        raw = {k: v for k, v in fields.items()} if isinstance(fields, dict) else {}
        letter = {"source": key, "entry_id": entry_id, "problem": str(corrupt),
                  "raw": json.dumps({repr(k): repr(v) for k, v in raw.items()})}
        with translated("queue_dead_letter", self._keys.queue_dead):
            pipe = self._client.pipeline(transaction=True)
            pipe.xadd(self._keys.queue_dead, letter)
            pipe.xack(key, self.group, entry_id)
            pipe.xdel(key, entry_id)
            pipe.execute()
        log_event("store", "queue_entry_corrupt",
                  details={"key": key, "entry_id": entry_id, "field": corrupt.field, "problem": corrupt.problem},
                  action_taken=f"moved to {self._keys.queue_dead}", level="ERROR")

    def _drop(self, key: str, entry_id: Any) -> None:
        with translated("queue_drop", key):
            self._client.xack(key, self.group, entry_id)
