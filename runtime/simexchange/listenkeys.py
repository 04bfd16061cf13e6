"""listenKeys of the simulated venue's user-data stream, as Binance USD-M keeps them.

One account, so at most one active key: ``POST /fapi/v1/listenKey`` returns the
active key (extending it) or a new one; ``PUT`` extends it (-1125 when there is
none); ``DELETE`` ends it. A key lives ``ttl_s`` (Binance: 60 minutes) after its
last POST/PUT; ``expired()`` hands back keys past that, once each, for the
WebSocket server to send ``listenKeyExpired`` and close their sockets.
Thread-safe; ``clock`` is monotonic seconds (injectable for tests).
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from collections.abc import Callable
from typing import Any

from runtime.simexchange.matching import VenueError

DEFAULT_TTL_S = 3600.0
ALPHABET = string.ascii_letters + string.digits


class ListenKeys:
    """The account's listenKey and its deadline."""

    def __init__(self, ttl_s: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        if ttl_s <= 0:
            raise ValueError(f"listenKey ttl must be > 0 s, got {ttl_s!r}")
        self.ttl_s = ttl_s
        self._clock = clock
        self._key: str | None = None
        self._deadline = 0.0
        self._lock = threading.Lock()

    def create(self) -> dict[str, Any]:
        """POST: the active key, extended, or a new one."""
        with self._lock:
            if self._key is None or self._clock() >= self._deadline:
                self._key = "".join(secrets.choice(ALPHABET) for _ in range(64))
            self._deadline = self._clock() + self.ttl_s
            return {"listenKey": self._key}

    def keepalive(self) -> dict[str, Any]:
        """PUT: extend the active key; -1125 when there is none (expired or deleted)."""
        with self._lock:
            if self._key is None or self._clock() >= self._deadline:
                raise VenueError(-1125, "This listenKey does not exist.")
            self._deadline = self._clock() + self.ttl_s
            return {"listenKey": self._key}

    def delete(self) -> dict[str, Any]:
        """DELETE: end the stream (its sockets are closed by the next ``expired()``)."""
        with self._lock:
            if self._key is not None:
                self._deadline = 0.0
            return {}

    def expire_now(self) -> str | None:
        """Admin: make the active key expire at once; returns it."""
        with self._lock:
            if self._key is not None:
                self._deadline = 0.0
            return self._key

    def valid(self, key: str) -> bool:
        with self._lock:
            return key == self._key and self._clock() < self._deadline

    def expired(self) -> list[str]:
        """Keys past their deadline, each returned once (then forgotten)."""
        with self._lock:
            if self._key is not None and self._clock() >= self._deadline:
                key, self._key = self._key, None
                return [key]
            return []
