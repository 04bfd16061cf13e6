"""Quarantine: a bad value is renamed aside, never deleted (F31).

A key whose value fails its type or schema check would otherwise fail every
later read or write of it: a price cache, an index, a queue stream, the journal
stream, a runtime record. `quarantine_key(client, key, problem)` renames it to
`<key>:quarantine:<epoch ms>-<random hex>` (same hash tag, so it stays on the
key's cluster slot; unique, so two quarantines never collide), so the component
starts from a fresh key while an engineer can still read what was there. Every
quarantine is logged at ERROR with both key names and the Redis type found.

With `wrong_unless=` (the types the key may hold) the type check and the rename
are one Lua script: a second writer that repaired the key in between (a fresh,
valid journal stream) is never renamed aside, which would lose its records.

A hash field (an index entry) is quarantined the same way into
`<key>:quarantine` (field -> original value), then deleted from the index.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import redis

from runtime.logging import log_event
from runtime.store.errors import translated

# KEYS[1] the key, KEYS[2] its quarantine name; ARGV the types it may hold (none given: any type
# is quarantined). Returns {moved (1/0), type found}; a taken quarantine name is an error.
_QUARANTINE = """
local found = redis.call('TYPE', KEYS[1])['ok']
if found == 'none' then return {0, found} end
for i = 1, #ARGV do
  if ARGV[i] == found then return {0, found} end
end
if redis.call('RENAMENX', KEYS[1], KEYS[2]) == 0 then
  return redis.error_reply('ERR quarantine name already taken: ' .. KEYS[2])
end
return {1, found}
"""


def quarantine_name(key: str) -> str:
    """A fresh, unique name for a quarantined copy of `key` (oldest sorts first by its ms stamp)."""
    return f"{key}:quarantine:{int(time.time() * 1000)}-{uuid.uuid4().hex[:12]}"


def quarantine_key(client: redis.Redis, key: str, problem: str, *, wrong_unless: Sequence[str] = ()) -> str | None:
    """Rename `key` aside in one atomic step; returns the new name, or None when nothing was moved:
    the key is gone, or (with `wrong_unless`) it holds one of those types by now."""
    aside = quarantine_name(key)
    with translated("quarantine", key):
        moved, found = client.eval(_QUARANTINE, 2, key, aside, *wrong_unless)
    found_text = found.decode() if isinstance(found, bytes) else str(found)
    if not moved:
        log_event("store", "store_quarantine_not_needed", details={"key": key, "type_found": found_text,
                                                                   "problem": problem},
                  action_taken="nothing moved: the key is gone or was repaired by another writer", level="DEBUG")
        return None
    log_event("store", "store_value_quarantined",
              details={"key": key, "moved_to": aside, "type_found": found_text, "problem": problem},
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
