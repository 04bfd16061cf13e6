"""Per-strategy locks (`lock_state:{id}`), usable for leases (`lease:{id}`) too.

Acquire is `SET key token NX PX ttl` with a random owner token. Release is
compare-and-delete and extend is compare-and-pexpire, each one Lua script, so
an owner whose lock expired and was taken by someone else can neither delete
nor prolong the new owner's lock (F6). A crashed owner's lock needs no manual
step: Redis expires it after its TTL.

A lock that no owner could have written (F31: no expiry, a value that is not an
owner token, a key of another type) would otherwise block its strategy for
good. Acquire sees it in the same script and gives it an expiry of the
caller's TTL: it is treated as stale after lock_ttl, then replaced by the
ordinary SET NX, which only succeeds on an absent key (compare-and-set).

A lock only serialises work; it is not a fence. What a stale owner may still
*write* is refused by the generation check in fencing.py.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import redis

from runtime.store._codec import text
from runtime.store.errors import translated

# KEYS[1] lock key, ARGV[1] owner token, ARGV[2] ttl in ms. {1, ''} taken; {0, ''} held by an owner;
# {0, why} not a lock an owner wrote: given an expiry of at most the ttl, so it frees itself.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, ''} end
local kind = redis.call('TYPE', KEYS[1])['ok']
local pttl = redis.call('PTTL', KEYS[1])
local token = false
if kind == 'string' then
  local value = redis.call('GET', KEYS[1])
  token = string.len(value) == 32 and string.match(value, '^[0-9a-f]+$') ~= nil
end
if token and pttl >= 0 then return {0, ''} end
local why = 'not an owner token'
if kind ~= 'string' then why = 'a ' .. kind .. ', not an owner token' elseif token then why = 'no expiry' end
if pttl < 0 or pttl > tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return {0, why}
"""

# KEYS[1] lock key, ARGV[1] owner token.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS[1] lock key, ARGV[1] owner token, ARGV[2] new ttl in ms.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class Lock:
    """A held lock: its key, the owner token that proves ownership, its TTL."""

    key: str
    token: str
    ttl_ms: int


def _check_ttl(ttl_ms: int) -> int:
    if not isinstance(ttl_ms, int) or isinstance(ttl_ms, bool) or ttl_ms <= 0:
        raise ValueError(f"lock ttl_ms must be a positive integer, got {ttl_ms!r}")
    return ttl_ms


class Locks:
    """Lock primitives over any key; the facade maps strategy ids to keys."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self.stale: dict[str, str] = {}  # key -> why its holder is no owner (last seen); cleared when taken
        self._extend = client.register_script(_EXTEND)

    def acquire(self, key: str, ttl_ms: int, token: str | None = None) -> Lock | None:
        """Take the lock for `ttl_ms`; None if someone holds it."""
        token = token or secrets.token_hex(16)
        with translated("acquire_lock", key):
            taken, why = self._acquire(keys=[key], args=[token, _check_ttl(ttl_ms)])
        if taken:
            self.stale.pop(key, None)
            return Lock(key, token, ttl_ms)
        if why:
            self.stale[key] = f"stale lock ({text(why, key, 'why')}): expires within {ttl_ms} ms, then replaced"
        else:
            self.stale.pop(key, None)
        return None

    def release(self, lock: Lock) -> bool:
        """Delete the lock if `lock` still owns it; False if it expired or changed hands."""
        with translated("release_lock", lock.key):
            return self._release(keys=[lock.key], args=[lock.token]) == 1

    def extend(self, lock: Lock, ttl_ms: int | None = None) -> bool:
        """Reset the TTL if `lock` still owns it; False if it expired or changed hands."""
        ttl = _check_ttl(lock.ttl_ms if ttl_ms is None else ttl_ms)
        with translated("extend_lock", lock.key):
            return self._extend(keys=[lock.key], args=[lock.token, ttl]) == 1

    def holder(self, key: str) -> str | None:
        """The current owner token, None if free."""
        with translated("lock_holder", key):
            value = self._client.get(key)
        return None if value is None else text(value, key, "token")

    def ttl_ms(self, key: str) -> int | None:
        """Milliseconds left on the lock, None if free."""
        with translated("lock_ttl", key):
            left = self._client.pttl(key)
        return None if left < 0 else int(left)
