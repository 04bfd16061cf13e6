"""Redis clients that fail fast.

redis-py's defaults (5 s socket timeouts, 10 retries with backoff) would hide a
dead Redis for many seconds. Every client the store makes has short socket and
connect timeouts and no retries, so a caller learns "Redis is down" within one
timeout (DESIGN §6: gate closed within 1 s). Stale pooled connections after a
Redis restart are re-dialled by the pool on checkout, so no retry is needed for
that case either. The wire protocol is pinned to RESP2 (redis-py 8 would
negotiate RESP3). Responses stay bytes (`decode_responses=False`): decoding and
validation happen where values are loaded (see _codec).

hiredis is a dependency so that redis-py packs commands and parses replies in C: the
order path's one round trip carries about 80 arguments (the expected runtime, the journal
entry, the pending runtime), and redis-py's pure-Python packer spends ~51 µs on them,
hiredis ~17 µs (issue 10 bench: tick → wire p50 about 0.03 ms lower). redis-py picks it
up by itself when it is installed (hiredis >= 3.2); replies and errors are the same.

The pool is shared and bounded (`MAX_CONNECTIONS`): thousands of actor threads use one
client, and redis-py's default pool raises "Too many connections" at 100 checked out.
A caller past the bound waits up to `POOL_WAIT_S` for a connection to come back
instead of failing; each connection is held for one command (sub-millisecond on a
healthy Redis), so the wait is short, and a dead Redis still fails within a timeout.
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

DEFAULT_SOCKET_TIMEOUT_S = 0.5
MAX_CONNECTIONS = 64  # per client; the embedded redis-server allows 10,000 clients in all
POOL_WAIT_S = 2.0  # longest wait for a pooled connection when all MAX_CONNECTIONS are in use


try:
    from redis.driver_info import DriverInfo
except ImportError:  # redis-py < 7.1 names them directly
    _NO_SETINFO: dict[str, object] = {"lib_name": None, "lib_version": None}
else:
    # No CLIENT SETINFO handshake: two round trips per new connection, paid by the first order
    # that needs one (DESIGN §6 counts one round trip per order before the wire).
    _NO_SETINFO = {"driver_info": DriverInfo(name=None, lib_version=None)}


def _no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


def connect(url: str, *, password: str | None = None, socket_timeout: float = DEFAULT_SOCKET_TIMEOUT_S) -> redis.Redis:
    """A client for `url` (redis://, rediss://, unix://) with fail-fast settings."""
    kwargs: dict[str, object] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "retry": _no_retry(),
        "decode_responses": False,
        "health_check_interval": 0,
        "protocol": 2,  # RESP2: works with every Redis >= 6.2 and gives stable reply shapes
        **_NO_SETINFO,
    }
    if password is not None:
        kwargs["password"] = password
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=MAX_CONNECTIONS, timeout=POOL_WAIT_S, **kwargs)
    client = redis.Redis(connection_pool=pool)
    client.auto_close_connection_pool = True
    return client


def clone(client: redis.Redis, *, socket_timeout: float) -> redis.Redis:
    """A new client to the same server as `client`, with its own pool and timeout."""
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    kwargs.update(socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout, retry=_no_retry())
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))


def socket_timeout_of(client: redis.Redis) -> float | None:
    """The read timeout `client` was built with (None = blocks forever)."""
    return client.connection_pool.connection_kwargs.get("socket_timeout")


def decodes_responses(client: redis.Redis) -> bool:
    return bool(client.connection_pool.connection_kwargs.get("decode_responses"))
