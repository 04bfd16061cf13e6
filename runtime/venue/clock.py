"""Offset between this host's clock and the venue's (F21), applied to signed timestamps.

Signed requests carry ``timestamp``; the venue refuses (-1021) any outside
``recvWindow`` of its own clock. We therefore sign with ``local + offset``,
where the offset comes from ``/fapi/v1/time`` compensated by half the round
trip. The connector resyncs whenever a reply says -1021. monitor:clock reads
``offset_ms`` to alert (>1 s) and halt entries (>5 s).

Pure arithmetic over an injectable wall clock; the connector does the I/O.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


def wall_ms() -> float:
    """Local wall-clock time in milliseconds (the default ``local_ms``)."""
    return time.time() * 1000.0


@dataclass(frozen=True)
class ClockSample:
    """One sync: the venue's time, the offset it implies, and how trustworthy (rtt) it is."""

    server_ms: int
    offset_ms: float
    rtt_ms: float
    at_local_ms: float


class ServerClock:
    """Tracks ``server - local``; ``now_ms()`` is the venue's time as best we know it."""

    def __init__(self, local_ms: Callable[[], float] = wall_ms, *, max_rtt_ms: float = 2000.0) -> None:
        self._local_ms = local_ms
        self.max_rtt_ms = max_rtt_ms
        self._lock = threading.Lock()
        self._offset_ms = 0.0
        self._last: ClockSample | None = None

    @property
    def offset_ms(self) -> float:
        """Venue clock minus local clock, in ms (positive: the venue is ahead)."""
        return self._offset_ms

    @property
    def last_sample(self) -> ClockSample | None:
        """The sample the current offset came from, or None before the first sync."""
        return self._last

    def local_ms(self) -> float:
        """This host's clock, as the clock sees it (for measuring a round trip)."""
        return self._local_ms()

    def now_ms(self) -> int:
        """The venue's current time estimate, for the ``timestamp`` parameter."""
        return int(self._local_ms() + self._offset_ms)

    def observe(self, server_ms: int, sent_local_ms: float, received_local_ms: float) -> ClockSample:
        """Adopt the offset implied by one ``/fapi/v1/time`` round trip.

        A sample whose round trip exceeds ``max_rtt_ms`` is returned but not
        adopted: its midpoint could be off by more than the error we are fixing.
        The first sample is always adopted (anything beats an unsynced clock).
        """
        rtt = max(0.0, received_local_ms - sent_local_ms)
        midpoint = sent_local_ms + rtt / 2.0
        sample = ClockSample(server_ms=int(server_ms), offset_ms=server_ms - midpoint, rtt_ms=rtt,
                             at_local_ms=received_local_ms)
        with self._lock:
            if self._last is None or rtt <= self.max_rtt_ms:
                self._offset_ms = sample.offset_ms
                self._last = sample
        return sample

    def age_ms(self) -> float | None:
        """How long ago the offset was last adopted, or None if never synced."""
        return None if self._last is None else self._local_ms() - self._last.at_local_ms
