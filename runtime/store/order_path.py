"""The order path's Redis round trips, folded into Lua scripts (DESIGN §6).

Before an order goes on the wire the pipeline needs: the strategy's lock, its runtime,
the intent journaled, and the runtime marked pending. Done one call each that is four
round trips; here it is one (DESIGN §6), or two when the runtime was not what the
pipeline last wrote:

- `lock_load_and_journal`: take `lock_state:{id}` (SET NX PX, or take over the lock of an
  earlier process, see locks.py), read `runtime:{id}`, and when it is exactly the record the
  caller expected (its last known runtime, from which it made the order), append the intent
  to the journal and write the pending runtime, all in one script. Otherwise the lock is
  held and the runtime returned, as `lock_and_load` does, and the caller journals with:
- `journal_and_mark_pending`: append the intent to the journal (idempotent by record id,
  the open index updated) and write the pending runtime (fenced by generation) in one
  script, so "journaled" and "pending" can never be separated by a crash either. A journal
  key of the wrong type is left to this path, which sets it aside (F31).

After the venue has answered, `record_outcome` is the outcome write: the runtime (fenced),
the journal outcome and the acknowledgement of the queue entries the intent came from, in
one script. An entry whose outcome is written is never left un-acked by a Redis blip
(issue 10 case 6); every key's type is checked before anything is written, so a key of the
wrong type fails the whole write, never half of it.

The scripts touch keys of one strategy plus the journal; in a Redis Cluster they need
hash tags that put them in one slot (`Keys` already tags per strategy; the journal is one
slot), so this module is for the single-Redis deployment DESIGN §3 describes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import redis

from runtime.store._codec import show, text
from runtime.store.errors import CorruptState, StaleGeneration, translated
from runtime.store.fencing import FENCED
from runtime.store.journal import Journal, new_record_id
from runtime.store.keys import Keys
from runtime.store.locks import Lock, lock_token
from runtime.store.runtime_state import Runtime, parse_runtime

# KEYS[1] lock, KEYS[2] runtime. ARGV[1] token, ARGV[2] ttl ms, ARGV[3] generation ('0': plain NX).
_TAKE_LOCK = """
local function gt(a, b) if #a ~= #b then return #a > #b end return a > b end
local lock_kind = redis.call('TYPE', KEYS[1])['ok']
if lock_kind ~= 'none' then
  local why = 'a ' .. lock_kind .. ', not an owner token'
  local owner = false
  if lock_kind == 'string' then
    local held = redis.call('GET', KEYS[1])
    owner = string.match(held, '^(%d+):%x+$')
    local plain = string.len(held) == 32 and string.match(held, '^%x+$') ~= nil
    if ARGV[3] ~= '0' and owner and gt(ARGV[3], owner) then owner = 'older' end
    if owner ~= 'older' then
      local pttl = redis.call('PTTL', KEYS[1])
      if (owner or plain) and pttl >= 0 then return {0, ''} end
      why = (owner or plain) and 'no expiry' or 'not an owner token'
    end
  end
  if owner ~= 'older' then
    -- F31: not a lock an owner wrote: give it an expiry of at most the ttl, so it frees itself.
    local pttl = redis.call('PTTL', KEYS[1])
    if pttl < 0 or pttl > tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
    return {0, why}
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local kind = redis.call('TYPE', KEYS[2])['ok']
if kind ~= 'none' and kind ~= 'hash' then return {2, kind} end
"""

_LOCK_AND_LOAD = _TAKE_LOCK + """
if kind == 'none' then return {1} end
return {3, redis.call('HGETALL', KEYS[2])}
"""

# As _LOCK_AND_LOAD, plus KEYS[3] journal, KEYS[4] open index, KEYS[5] records index. ARGV[4] k = expected
# runtime field/value count (0: no record expected), ARGV[5..4+k] the expected record, ARGV[5+k] record id, ARGV[6+k] client id,
# ARGV[7+k] n = journal entry args, ARGV[8+k..7+k+n] entry field/values, ARGV[8+k+n] writer generation,
# ARGV[9+k+n..] the pending runtime's field/values. Replies {4, entry id} when it journaled.
_LOCK_LOAD_AND_JOURNAL = _TAKE_LOCK + """
local flat = {}
if kind == 'hash' then flat = redis.call('HGETALL', KEYS[2]) end
local function loaded() if kind == 'none' then return {1} end return {3, flat} end
local k = tonumber(ARGV[4])
if #flat ~= k then return loaded() end
local stored = {}
for i = 1, #flat, 2 do stored[flat[i]] = flat[i + 1] end
for i = 5, 4 + k, 2 do
  if stored[ARGV[i]] ~= ARGV[i + 1] then return loaded() end
end
local function typed(key, want)
  local t = redis.call('TYPE', key)['ok']
  return t == 'none' or t == want
end
if not (typed(KEYS[3], 'stream') and typed(KEYS[4], 'hash') and typed(KEYS[5], 'hash')) then return loaded() end
local n = tonumber(ARGV[7 + k])
if k > 0 and gt(stored['generation'], ARGV[8 + k + n]) then return loaded() end
local id = redis.call('HGET', KEYS[5], ARGV[5 + k])
if not id then
  id = redis.call('XADD', KEYS[3], '*', unpack(ARGV, 8 + k, 7 + k + n))
  redis.call('HSET', KEYS[5], ARGV[5 + k], id)
  redis.call('HSETNX', KEYS[4], ARGV[6 + k], id)
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 9 + k + n))
return {4, id}
"""

# KEYS[1] journal, KEYS[2] open index, KEYS[3] records index, KEYS[4] runtime.
# ARGV[1] record id, ARGV[2] client id, ARGV[3] n = journal entry args, ARGV[4..3+n] entry field/values,
# ARGV[4+n] writer generation, ARGV[5+n..] runtime field/values.
_JOURNAL_AND_MARK_PENDING = FENCED + """
local n = tonumber(ARGV[3])
local no = refused(KEYS[4], ARGV[4 + n])
if no then return no end
local id = redis.call('HGET', KEYS[3], ARGV[1])
if not id then
  id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 4, 3 + n))
  redis.call('HSET', KEYS[3], ARGV[1], id)
  redis.call('HSETNX', KEYS[2], ARGV[2], id)
end
redis.call('DEL', KEYS[4])
redis.call('HSET', KEYS[4], unpack(ARGV, 5 + n))
return {'ok', id}
"""


# KEYS[1] runtime, KEYS[2] journal, KEYS[3] open index, KEYS[4] records index, KEYS[5..] one queue stream per ack.
# ARGV[1] n = runtime args (0: no runtime write), ARGV[2] m = journal append args (0: no outcome),
# ARGV[3] consumer group, ARGV[4..3+n] writer generation then runtime field/values,
# ARGV[4+n..3+n+m] record id, kind, client id, final, entry field/values; then one entry id per ack.
_RECORD_OUTCOME = FENCED + """
local function typed(key, want)
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'none' and kind ~= want then
    return redis.error_reply('WRONGTYPE ' .. key .. ' is a ' .. kind .. ', expected a ' .. want)
  end
end
local n, m = tonumber(ARGV[1]), tonumber(ARGV[2])
local no = n > 0 and refused(KEYS[1], ARGV[4])
if no then return no end
local bad = m > 0 and (typed(KEYS[2], 'stream') or typed(KEYS[3], 'hash') or typed(KEYS[4], 'hash'))
if bad then return bad end
for i = 5, #KEYS do
  bad = typed(KEYS[i], 'stream')
  if bad then return bad end
end
if n > 0 then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], unpack(ARGV, 5, 3 + n))
end
local id = ''
if m > 0 then
  local b = 3 + n
  id = redis.call('HGET', KEYS[4], ARGV[b + 1])
  if not id then
    id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, b + 5, b + m))
    redis.call('HSET', KEYS[4], ARGV[b + 1], id)
    if ARGV[b + 4] == '1' then redis.call('HDEL', KEYS[3], ARGV[b + 3]) end
  end
end
for i = 5, #KEYS do
  local entry = ARGV[3 + n + m + i - 4]
  redis.call('XACK', KEYS[i], ARGV[3], entry)
  redis.call('XDEL', KEYS[i], entry)
end
return {'ok', id}
"""


class OrderPath:
    def __init__(self, client: redis.Redis, keys: Keys, journal: Journal) -> None:
        self._keys = keys
        self._journal = journal
        self._lock_and_load = client.register_script(_LOCK_AND_LOAD)
        self._lock_load_and_journal = client.register_script(_LOCK_LOAD_AND_JOURNAL)
        self._journal_and_pending = client.register_script(_JOURNAL_AND_MARK_PENDING)
        self._record_outcome = client.register_script(_RECORD_OUTCOME)
        self._client = client

    def load_scripts(self) -> None:
        """Load the order path's scripts into Redis now (one pipelined round trip), so the first
        order does not pay NOSCRIPT + SCRIPT LOAD + retry on the way to the wire."""
        scripts = (self._lock_and_load, self._lock_load_and_journal, self._journal_and_pending, self._record_outcome)
        with translated("load_scripts", None):
            pipe = self._client.pipeline(transaction=False)
            for script in scripts:
                pipe.script_load(script.script)
            pipe.execute()

    def lock_and_load(self, strategy_id: str, ttl_ms: int, generation: int = 0
                      ) -> tuple[Lock | None, Runtime | CorruptState | str | None]:
        """(the lock, the runtime / None / CorruptState) or, not taken, (None, why the holder is no
        owner (F31: it was given an expiry) or None). One round trip."""
        lock_key, runtime_key = self._keys.lock_state(strategy_id), self._keys.runtime(strategy_id)
        token = lock_token(generation)
        with translated("lock_and_load", lock_key):
            reply = self._lock_and_load(keys=[lock_key, runtime_key], args=[token, ttl_ms, str(generation)])
        return self._locked(reply, lock_key, runtime_key, token, ttl_ms)

    def lock_load_and_journal(
        self, strategy_id: str, ttl_ms: int, generation: int, expected: Runtime | None, client_order_id: str,
        fields: Mapping[str, Any], pending: Runtime,
    ) -> tuple[Lock | None, Runtime | CorruptState | str | None, str | None]:
        """`lock_and_load`, and, when the stored runtime is `expected` field for field (None: there
        is no record), the intent journaled and `pending` written in the same script: (lock,
        `expected`, journal entry id). Otherwise (lock, loaded, None) or (None, why, None), as
        `lock_and_load`. One round trip."""
        lock_key, runtime_key = self._keys.lock_state(strategy_id), self._keys.runtime(strategy_id)
        token = lock_token(generation)
        entry = self._journal.entry_args("intent", client_order_id, None, False, fields, new_record_id(), None,
                                         "redis")
        args: list[Any] = [token, ttl_ms, str(generation), *(_pairs(expected) if expected is not None else [0]),
                           entry[0], client_order_id, len(entry) - 4, *entry[4:],
                           str(pending.generation), *_pairs(pending)[1:]]
        keys = [lock_key, runtime_key, self._keys.journal_orders, self._keys.journal_open, self._keys.journal_records]
        with translated("lock_load_and_journal", lock_key):
            reply = self._lock_load_and_journal(keys=keys, args=args)
        if int(reply[0]) == 4:
            return Lock(lock_key, token, ttl_ms), expected, text(reply[1], runtime_key, "entry id")
        lock, loaded = self._locked(reply, lock_key, runtime_key, token, ttl_ms)
        return lock, loaded, None

    @staticmethod
    def _locked(reply: Any, lock_key: str, runtime_key: str, token: str, ttl_ms: int
                ) -> tuple[Lock | None, Runtime | CorruptState | str | None]:
        status = int(reply[0])
        if status == 0:
            why = text(reply[1], lock_key, "why") if len(reply) > 1 else ""
            return None, (f"stale lock ({why}): expires within {ttl_ms} ms, then replaced" if why else None)
        lock = Lock(lock_key, token, ttl_ms)
        if status == 1:
            return lock, None
        if status == 2:
            return lock, CorruptState(runtime_key, "type", f"expected a hash, found a {text(reply[1], runtime_key, 'type')}")
        flat = reply[1]
        try:
            return lock, parse_runtime(dict(zip(flat[::2], flat[1::2])), runtime_key)
        except CorruptState as corrupt:
            return lock, corrupt

    def journal_and_mark_pending(self, client_order_id: str, fields: Mapping[str, Any], strategy_id: str,
                                 runtime: Runtime, at: float | None = None) -> str:
        """Journal the intent and write the pending runtime, atomically. Returns the entry id.

        Raises StaleGeneration / CorruptState (then nothing was written) or StoreUnavailable.
        """
        entry = self._journal.entry_args("intent", client_order_id, None, False, fields, new_record_id(), at, "redis")
        runtime_key = self._keys.runtime(strategy_id)
        args: list[Any] = [entry[0], client_order_id, len(entry) - 4, *entry[4:], str(runtime.generation)]
        for name, value in runtime.to_redis().items():
            args += [name, value]
        keys = [self._keys.journal_orders, self._keys.journal_open, self._keys.journal_records, runtime_key]
        with translated("journal_and_mark_pending", self._keys.journal_orders):  # a WRONGTYPE here is the journal's
            verdict, detail = self._journal_and_pending(keys=keys, args=args)
        _check(runtime_key, verdict, detail, runtime.generation)
        return text(detail, runtime_key, "entry id")

    def record_outcome(self, strategy_id: str, runtime: Runtime | None, outcome: list[str] | None,
                       acks: Sequence[tuple[str, str]], group: str) -> str:
        """Write the runtime (fenced; None: leave it), append the outcome (`Journal.entry_args`;
        None: none) and ack + delete the queue entries (stream, entry id), atomically. Returns the
        journal entry id ('' without an outcome). Raises StaleGeneration / CorruptState (then
        nothing was written), StoreUnavailable, or a WRONGTYPE ResponseError naming the key."""
        runtime_key = self._keys.runtime(strategy_id)
        runtime_args: list[Any] = []
        if runtime is not None:
            runtime_args.append(str(runtime.generation))
            for name, value in runtime.to_redis().items():
                runtime_args += [name, value]
        outcome = outcome or []
        keys = [runtime_key, self._keys.journal_orders, self._keys.journal_open, self._keys.journal_records,
                *(stream for stream, _ in acks)]
        args = [len(runtime_args), len(outcome), group, *runtime_args, *outcome, *(entry for _, entry in acks)]
        with translated("record_outcome", runtime_key):
            verdict, detail = self._record_outcome(keys=keys, args=args)
        _check(runtime_key, verdict, detail, runtime.generation if runtime is not None else 0)
        return text(detail, runtime_key, "entry id")


def _pairs(runtime: Runtime) -> list[Any]:
    """The record as script arguments: its field/value count, then the pairs."""
    flat: list[Any] = []
    for name, value in runtime.to_redis().items():
        flat += [name, value]
    return [len(flat), *flat]


def _check(runtime_key: str, verdict: Any, detail: Any, generation: int) -> None:
    """Raise what a refused fenced runtime write of a script said."""
    verdict = text(verdict, runtime_key, "verdict")
    if verdict == "stale":
        raise StaleGeneration(runtime_key, generation, int(detail))
    if verdict == "corrupt":
        raise CorruptState(runtime_key, "generation", "missing" if detail is None else f"not canonical: {show(detail)}")
    if verdict == "wrongtype":
        raise CorruptState(runtime_key, "type", f"expected a hash, found a {text(detail, runtime_key, 'type')}")


__all__ = ["OrderPath"]
