"""The Redis health probe: one PING on its own short-timeout connection.

monitor:store calls `probe()` on a timer and closes the trading gate on
`up=False` (F18). The probe never raises and never blocks longer than its
timeout (plus one connect attempt bounded by the same timeout).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from runtime.store.connection import clone

DEFAULT_PROBE_TIMEOUT_S = 0.25


@dataclass(frozen=True, slots=True)
class Health:
    up: bool
    latency_ms: float | None  # round trip of the PING; None when down
    error: str | None  # why it is down; None when up
    checked_at: float  # epoch seconds


class HealthProbe:
    def __init__(
        self, client: redis.Redis, timeout_s: float = DEFAULT_PROBE_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = clone(client, socket_timeout=timeout_s)
        self._clock = clock

    def probe(self) -> Health:
        started = time.perf_counter()
        try:
            self._client.ping()
        except (redis.RedisError, OSError) as exc:
            return Health(False, None, f"{type(exc).__name__}: {exc}", self._clock())
        return Health(True, (time.perf_counter() - started) * 1000.0, None, self._clock())

    def close(self) -> None:
        self._client.close()
        self._client.connection_pool.disconnect()
