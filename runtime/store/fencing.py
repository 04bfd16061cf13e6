"""`runtime:{id}` loads and fenced writes; the generation counter (§1 Fencing).

Every actor incarnation gets a generation from `next_generation()` (an INCR on
the `generation` key, persisted by the AOF, so it keeps increasing across
process and Redis restarts). Every write of `runtime:{id}` carries the
writer's generation in the record itself; a Lua script compares it with the
stored one and refuses the write when it is lower (`StaleGeneration`): a hung
or abandoned incarnation can never overwrite the state its replacement wrote.
Equal generations are allowed (one incarnation writes many times).

`fence(id, generation)` raises the stored generation without touching the rest
of the record: call it when a replacement starts, before the old incarnation
could write again.

Generations are compared as canonical decimal strings (length, then bytes), so
there is no float rounding in Lua at any size.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis

from runtime.store._codec import show, text
from runtime.store.errors import CorruptState, StaleGeneration, translated
from runtime.store.keys import Keys
from runtime.store.runtime_state import Runtime, parse_runtime

T = TypeVar("T")

# Shared Lua prelude: is stored generation `a` greater than `b`? Both canonical decimals.
_GT = """
local function canonical(s) return s == '0' or string.match(s, '^[1-9]%d*$') ~= nil end
local function gt(a, b) if #a ~= #b then return #a > #b end return a > b end
"""

# Shared Lua: may runtime record `key` be replaced by a writer of generation `gen`? nil, or the refusal
# reply ({'corrupt', stored}, {'stale', stored}, {'wrongtype', kind}) that `check_verdict` raises.
FENCED = _GT + """
local function refused(key, gen)
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'hash' then
    local stored = redis.call('HGET', key, 'generation')
    if not stored then return {'corrupt', false} end
    if not canonical(stored) then return {'corrupt', stored} end
    if gt(stored, gen) then return {'stale', stored} end
  elseif kind ~= 'none' then
    return {'wrongtype', kind}
  end
end
"""

# KEYS[1] runtime key. ARGV[1] writer generation, ARGV[2..] field/value pairs of the whole record.
_WRITE = _GT + """
local kind = redis.call('TYPE', KEYS[1])['ok']
local stored = false
if kind == 'hash' then
  stored = redis.call('HGET', KEYS[1], 'generation')
  if not stored then return {'corrupt', false} end
  if not canonical(stored) then return {'corrupt', stored} end
  if gt(stored, ARGV[1]) then return {'stale', stored} end
elseif kind ~= 'none' then
  return {'wrongtype', kind}
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return {'ok', stored or ''}
"""

# KEYS[1] runtime key. ARGV[1] new generation. Raises the stored generation; never lowers it.
_FENCE = _GT + """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then return {'absent', ''} end
if kind ~= 'hash' then return {'wrongtype', kind} end
local stored = redis.call('HGET', KEYS[1], 'generation')
if not stored then return {'corrupt', false} end
if not canonical(stored) then return {'corrupt', stored} end
if gt(ARGV[1], stored) then
  redis.call('HSET', KEYS[1], 'generation', ARGV[1])
  return {'raised', stored}
end
return {'kept', stored}
"""


class RuntimeRecords:
    """Reads and fenced writes of `runtime:{id}`, plus the generation counter."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._write = client.register_script(_WRITE)
        self._fence = client.register_script(_FENCE)

    def next_generation(self) -> int:
        """A new generation, greater than every one handed out before (any process)."""
        key = self._keys.generation
        with translated("next_generation", key):
            return int(self._client.incr(key))

    def reserve_generations(self, count: int) -> int:
        """Reserve `count` generations for this process; returns the last one (INCRBY)."""
        key = self._keys.generation
        with translated("reserve_generations", key):
            return int(self._client.incrby(key, count))

    def load(self, strategy_id: str) -> Runtime | None:
        """The schema-checked record, None if there is none; CorruptState if malformed."""
        key = self._keys.runtime(strategy_id)
        with translated("load_runtime", key):
            raw = self._client.hgetall(key)
        if not raw:
            return None
        return parse_runtime(raw, key)

    def load_many(self, strategy_ids: Sequence[str], chunk: int = 1000) -> dict[str, Runtime | None | CorruptState]:
        """`load` for many strategies in pipelined round trips (one per `chunk`), not one each:
        each id maps to its record, None, or the CorruptState that `load` would raise for it."""
        return self._pipelined("load_runtime", strategy_ids, chunk, lambda pipe, key: pipe.hgetall(key),
                               lambda key, raw: parse_runtime(raw, key) if raw else None)

    def write(self, strategy_id: str, runtime: Runtime) -> None:
        """Replace the record; refused with StaleGeneration if a newer generation wrote."""
        key = self._keys.runtime(strategy_id)
        args: list[str] = [str(runtime.generation)]
        for name, value in runtime.to_redis().items():
            args += [name, value]
        with translated("write_runtime", key):
            verdict, stored = self._write(keys=[key], args=args)
        self._check(key, verdict, stored, runtime.generation)

    def fence_many(self, strategy_ids: Sequence[str], generation: int, chunk: int = 1000
                   ) -> dict[str, bool | CorruptState]:
        """`fence` for many strategies in pipelined round trips: each id maps to whether its
        generation was raised, or the CorruptState `fence` would raise for it."""
        if not isinstance(generation, int) or isinstance(generation, bool) or generation < 0:
            raise ValueError(f"generation must be an integer >= 0, got {generation!r}")

        def settle(key: str, reply: Any) -> bool:
            verdict, stored = reply
            self._check(key, verdict, stored, generation)
            return text(verdict, key, "verdict") == "raised"

        return self._pipelined("fence_runtime", strategy_ids, chunk,
                               lambda pipe, key: self._fence(keys=[key], args=[str(generation)], client=pipe), settle)

    def _pipelined(self, operation: str, strategy_ids: Sequence[str], chunk: int,
                   send: Callable[[Any, str], Any], settle: Callable[[str, Any], T]) -> dict[str, T | CorruptState]:
        """One round trip per `chunk` ids: `send(pipe, key)` queues each runtime key's command and
        `settle(key, reply)` makes its value. A Redis error or CorruptState of one key is that id's
        CorruptState (what the single call raises for it), never the whole call's; a connection
        failure is the whole call's StoreUnavailable."""
        out: dict[str, T | CorruptState] = {}
        for first in range(0, len(strategy_ids), chunk):
            ids = strategy_ids[first:first + chunk]
            keys = [self._keys.runtime(i) for i in ids]
            with translated(operation, None):
                pipe = self._client.pipeline(transaction=False)
                for key in keys:
                    send(pipe, key)
                replies = pipe.execute(raise_on_error=False)
            for strategy_id, key, reply in zip(ids, keys, replies):
                try:
                    if isinstance(reply, Exception):
                        with translated(operation, key):
                            raise reply
                    out[strategy_id] = settle(key, reply)
                except CorruptState as exc:
                    out[strategy_id] = exc
        return out

    def fence(self, strategy_id: str, generation: int) -> bool:
        """Raise the stored generation to `generation`; True if it was raised.

        Returns False when there is no record yet or the stored one is already
        at least as high.
        """
        key = self._keys.runtime(strategy_id)
        if not isinstance(generation, int) or isinstance(generation, bool) or generation < 0:
            raise ValueError(f"generation must be an integer >= 0, got {generation!r}")
        with translated("fence_runtime", key):
            verdict, stored = self._fence(keys=[key], args=[str(generation)])
        self._check(key, verdict, stored, generation)
        return text(verdict, key, "verdict") == "raised"

    @staticmethod
    def _check(key: str, verdict: bytes, stored: bytes | None, attempted: int) -> None:
        verdict_text = text(verdict, key, "verdict")
        if verdict_text == "stale":
            raise StaleGeneration(key, attempted, int(stored))
        if verdict_text == "corrupt":
            problem = "missing" if stored is None else f"not a canonical integer: {show(stored)}"
            raise CorruptState(key, "generation", problem)
        if verdict_text == "wrongtype":
            raise CorruptState(key, "type", f"expected a hash, found a {text(stored, key, 'type')}")


class Generations:
    """A supervisor's generation source, monotonic across processes (DESIGN §1, §3).

    Blocks of generations are reserved in Redis with one INCRBY (on the `generation` key, so
    they never overlap those of `next_generation`), and handed out from memory: a restarted
    incarnation needs no Redis round trip, and one started during a store outage still gets
    a number no earlier incarnation, of this process or any before, ever had.
    """

    BLOCK = 1_000_000

    def __init__(self, reserve: Callable[[int], int], block: int = BLOCK) -> None:
        self._reserve = reserve
        self._block = block
        self._lock = threading.Lock()
        self._next, self._end = 1, 0
        self._refill()

    def _refill(self) -> None:
        self._end = self._reserve(self._block)
        self._next = self._end - self._block + 1

    def __call__(self) -> int:
        with self._lock:
            if self._next > self._end:
                self._refill()
            generation, self._next = self._next, self._next + 1
            return generation
