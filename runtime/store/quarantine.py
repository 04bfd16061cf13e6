"""Quarantine: a bad value is renamed aside, never deleted (F31).

A key whose value fails its type or schema check would otherwise fail every
later read or write of it: a price cache, an index, a queue stream, the journal
stream, a runtime record. `quarantine(client, key, problem)` renames it to
`<key>:quarantine:<epoch ms>` (same hash tag, so it stays on the key's cluster
slot), so the component starts from a fresh key while an engineer can still
read what was there. The rename is RENAMENX: it never overwrites an earlier
quarantined copy. Every quarantine is logged at ERROR with both key names.

A hash field (an index entry) is quarantined the same way into
`<key>:quarantine` (field -> original value), then deleted from the index.
"""

from __future__ import annotations

import time

import redis

from runtime.logging import log_event
from runtime.store.errors import translated


def quarantine_key(client: redis.Redis, key: str, problem: str) -> str | None:
    """Rename `key` aside; returns the new name, None when the key was already gone."""
    stamp = int(time.time() * 1000)
    with translated("quarantine", key):
        for attempt in range(100):
            aside = f"{key}:quarantine:{stamp + attempt}"
            try:
                if client.renamenx(key, aside):
                    break
            except redis.ResponseError as exc:
                if "no such key" in str(exc).lower():
                    return None
                raise
        else:  # pragma: no cover - 100 quarantines of one key within the same millisecond
            raise RuntimeError(f"cannot find a free quarantine name for {key}")
    log_event("store", "store_value_quarantined", details={"key": key, "moved_to": aside, "problem": problem},
              action_taken=f"renamed to {aside} (kept for an engineer); a fresh {key} is used from now",
              level="ERROR")
    return aside


def quarantine_field(client: redis.Redis, key: str, field: str, problem: str) -> None:
    """Move one field of the hash `key` into `<key>:quarantine`, then delete it from `key`."""
    aside = f"{key}:quarantine"
    with translated("quarantine", key):
        value = client.hget(key, field)
        pipe = client.pipeline(transaction=True)
        if value is not None:
            pipe.hset(aside, field, value)
        pipe.hdel(key, field)
        pipe.execute()
    log_event("store", "store_value_quarantined", details={"key": key, "field": field, "moved_to": aside,
                                                           "problem": problem},
              action_taken=f"entry moved to {aside} (kept for an engineer); the rest is used", level="ERROR")
