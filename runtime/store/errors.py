"""Every exception the store raises, and the one place Redis errors are translated.

Callers above the store do not handle redis-py exceptions: a dead, loading or
write-refusing server becomes `StoreUnavailable`, a value of the wrong shape
becomes `CorruptState(key, field, problem)`; any other Redis error is a bug in
the request and propagates unchanged. Never put a secret (password, url with
credentials) into a message built here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import redis.exceptions as rex


class StoreError(Exception):
    """Base class of every store error."""


class StoreUnavailable(StoreError):
    """Redis cannot be reached (down, timed out, still loading its AOF)."""

    def __init__(self, operation: str, cause: BaseException | str) -> None:
        self.operation = operation
        self.cause = cause
        what = f"{type(cause).__name__}: {cause}" if isinstance(cause, BaseException) else cause
        super().__init__(f"store unavailable during {operation}: {what}")


class CorruptState(StoreError):
    """A value loaded from Redis failed its schema check (F14).

    `key` is the full Redis key, `field` names the part of the value that was
    wrong (a hash field, a stream entry field, or `type` for a key of the wrong
    Redis type), `problem` says what was wrong in words an engineer can act on.
    """

    def __init__(self, key: str, field: str, problem: str) -> None:
        self.key = key
        self.field = field
        self.problem = problem
        super().__init__(f"corrupt state at {key!r} field {field!r}: {problem}")


class StaleGeneration(StoreError):
    """A fenced write carried a generation lower than the stored one (§1 Fencing)."""

    def __init__(self, key: str, attempted: int, current: int) -> None:
        self.key = key
        self.attempted = attempted
        self.current = current
        super().__init__(
            f"stale generation refused at {key!r}: write carries generation {attempted}, "
            f"stored generation is {current}"
        )


class LockBusy(StoreError):
    """`Store.locked()` could not take the lock: someone else holds it."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"lock {key!r} is held by another owner")


class StoreConfigError(StoreError, ValueError):
    """The store's configuration is wrong; names the config field."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class EmbeddedRedisError(StoreError):
    """The embedded redis-server could not be started or stopped."""


class BufferWriteError(StoreError):
    """The local disk buffer could not persist a record (disk full, I/O error)."""

    def __init__(self, path: str, cause: OSError) -> None:
        self.path = path
        self.cause = cause
        super().__init__(f"disk buffer {path} not written: {cause}")


UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    rex.ConnectionError,  # includes BusyLoadingError (replaying its AOF), AuthenticationError
    rex.TimeoutError,
    rex.ReadOnlyError,  # a replica, or a master that lost its role: cannot write here
    rex.OutOfMemoryError,  # maxmemory reached with noeviction: writes refused
    OSError,
)
# Replies that mean "this server cannot take writes now", not "your request is wrong":
# MISCONF = it cannot persist (AOF/RDB write failed, e.g. its disk is full, F20).
_UNAVAILABLE_REPLIES = ("MISCONF", "MASTERDOWN", "LOADING", "TRYAGAIN", "CLUSTERDOWN", "OOM", "READONLY",
                        # redis-py reloads a script on NOSCRIPT once; one that still escapes means the
                        # script cache was flushed again under us (a restart, SCRIPT FLUSH): try later.
                        "NOSCRIPT")
# Redis < 7 wraps an error raised by redis.call() inside a script, e.g.
#   "Error running script (call to f_<sha>): @user_script:1: WRONGTYPE Operation against a key ..."
#   "Error running script (call to f_<sha>): @user_script:1: @user_script: 1: -OOM command not allowed ..."
# so the error code sits behind a prefix and one or more script locations.
_SCRIPT_PREFIX = re.compile(r"^(?:ERR )?Error running script \(call to [^)]*\):\s*")
_SCRIPT_LOCATION = re.compile(r"^(?:@[\w]+:\s*\d+:\s*)+-?")


def reply_code(exc: rex.ResponseError) -> str:
    """The error reply as Redis's own command would have said it: a script's wrapping removed.

    So a WRONGTYPE, OOM, READONLY or LOADING met inside a Lua script is classified like
    the same error from a plain command (F31), whatever the Redis version.
    """
    message = str(exc)
    prefix = _SCRIPT_PREFIX.match(message)
    if prefix is None:
        return message
    return _SCRIPT_LOCATION.sub("", message[prefix.end():], count=1)


@contextmanager
def translated(operation: str, key: str | None = None) -> Iterator[None]:
    """Turn redis-py errors raised inside the block into store errors.

    Connection trouble -> StoreUnavailable(operation). WRONGTYPE on `key` ->
    CorruptState(key, "type", ...). Anything else propagates unchanged.
    """
    try:
        yield
    except UNAVAILABLE_ERRORS as exc:
        raise StoreUnavailable(operation, exc) from exc
    except rex.ResponseError as exc:
        message = reply_code(exc)
        if message.startswith(_UNAVAILABLE_REPLIES):
            raise StoreUnavailable(operation, exc) from exc
        if key is not None and message.startswith("WRONGTYPE"):
            raise CorruptState(key, "type", f"key holds the wrong Redis type ({exc})") from exc
        raise
