"""Redis clients that fail fast.

redis-py's defaults (5 s socket timeouts, 10 retries with backoff) would hide a
dead Redis for many seconds. Every client the store makes has short socket and
connect timeouts and no retries, so a caller learns "Redis is down" within one
timeout (DESIGN §6: gate closed within 1 s). Stale pooled connections after a
Redis restart are re-dialled by the pool on checkout, so no retry is needed for
that case either. The wire protocol is pinned to RESP2 (redis-py 8 would
negotiate RESP3). Responses stay bytes (`decode_responses=False`): decoding and
validation happen where values are loaded (see _codec).
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

DEFAULT_SOCKET_TIMEOUT_S = 0.5


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
    }
    if password is not None:
        kwargs["password"] = password
    return redis.Redis.from_url(url, **kwargs)


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
