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

A value that fails a schema check (a runtime record, a price) is renamed aside only if
it still fails it, re-read under WATCH (`quarantine_if_still_bad`): a record repaired
by another writer after it was read is never moved.

A hash field (an index entry) is moved into `<key>:quarantine` (field -> original
value) by one script, only while it still holds the value judged bad.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import redis

from runtime.logging import log_event
from runtime.store.errors import CorruptState, translated

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

# KEYS[1] the hash, KEYS[2] its quarantine hash. ARGV[1] field, ARGV[2] the value judged bad,
# ARGV[3] a unique field name used when ARGV[1] is already taken in KEYS[2].
# Returns the field it was kept under, or nil when the field no longer holds ARGV[2].
_QUARANTINE_FIELD = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return nil end
local spot = ARGV[1]
if redis.call('HSETNX', KEYS[2], spot, ARGV[2]) == 0 then
  spot = ARGV[3]
  redis.call('HSET', KEYS[2], spot, ARGV[2])
end
redis.call('HDEL', KEYS[1], ARGV[1])
return spot
"""

_WATCH_TRIES = 100  # bounded: each retry means another writer changed the key meanwhile


def quarantine_name(key: str) -> str:
    """A fresh, unique name for a quarantined copy of `key` (oldest sorts first by its ms stamp)."""
    return f"{key}:quarantine:{int(time.time() * 1000)}-{uuid.uuid4().hex[:12]}"


def quarantine_key(client: redis.Redis, key: str, problem: str, *, wrong_unless: Sequence[str] = ()) -> str | None:
    """Rename `key` aside in one atomic step; returns the new name, or None when nothing was moved:
    the key is gone, or (with `wrong_unless`) it holds one of those types by now."""
    aside = quarantine_name(key)
    with translated("quarantine", key):
        moved, found = client.eval(_QUARANTINE, 2, key, aside, *wrong_unless)
    return _logged(key, aside if moved else None, _text(found), problem)


def quarantine_if_still_bad(client: redis.Redis, key: str, problem: str,
                            check: Callable[[dict[Any, Any]], object]) -> str | None:
    """Rename the hash `key` aside only if it still fails `check` (raises CorruptState on its
    HGETALL reply), atomically: WATCH, re-read, re-check, MULTI/RENAMENX/EXEC. A record another
    writer repaired after the caller read it is never moved aside. Returns the new name or None."""
    aside = quarantine_name(key)
    with translated("quarantine", key), client.pipeline(transaction=True) as pipe:
        for _ in range(_WATCH_TRIES):
            try:
                pipe.watch(key)
                found = _text(pipe.type(key))
                if found == "none" or (found == "hash" and _passes(check, pipe.hgetall(key))):
                    pipe.unwatch()
                    return _logged(key, None, found, problem)
                pipe.multi()
                pipe.renamenx(key, aside)
                if not pipe.execute()[0]:
                    raise RuntimeError(f"quarantine name already taken: {aside}")
                return _logged(key, aside, found, problem)
            except redis.WatchError:
                continue  # another writer changed the key: judge it again
    raise RuntimeError(f"{key} changed {_WATCH_TRIES} times while being quarantined; left in place")


def _passes(check: Callable[[dict[Any, Any]], object], raw: dict[Any, Any]) -> bool:
    try:
        check(raw)
    except CorruptState:
        return False
    return True


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _logged(key: str, aside: str | None, found: str, problem: str) -> str | None:
    if aside is None:
        log_event("store", "store_quarantine_not_needed", details={"key": key, "type_found": found, "problem": problem},
                  action_taken="nothing moved: the key is gone or was repaired by another writer", level="DEBUG")
        return None
    log_event("store", "store_value_quarantined",
              details={"key": key, "moved_to": aside, "type_found": found, "problem": problem},
              action_taken=f"renamed to {aside} (kept for an engineer); a fresh {key} is used from now",
              level="ERROR")
    return aside


def quarantine_field(client: redis.Redis, key: str, field: str, judged: str, problem: str) -> bool:
    """Move one field of the hash `key` into `<key>:quarantine`, only while it still holds the value
    `judged` bad (one script; a field rewritten in between stays). An earlier quarantined value of
    the same field is never overwritten. Returns whether it was moved."""
    aside = f"{key}:quarantine"
    with translated("quarantine", key):
        spot = client.eval(_QUARANTINE_FIELD, 2, key, aside, field, judged, f"{field}#{uuid.uuid4().hex[:12]}")
    if spot is None:
        log_event("store", "store_quarantine_not_needed", details={"key": key, "field": field, "problem": problem},
                  action_taken="nothing moved: the entry was changed by another writer", level="DEBUG")
        return False
    log_event("store", "store_value_quarantined", details={"key": key, "field": field, "moved_to": aside,
                                                           "aside_field": _text(spot), "problem": problem},
              action_taken=f"entry moved to {aside} (kept for an engineer); the rest is used", level="ERROR")
    return True
