"""Redis round trips per order before the wire (DESIGN §6 target: 1).

Counts what redis-py connections send (one command, one script call or one pipeline is
one round trip) on the thread that runs an order, from `OrderPipeline.execute` to the
venue's `place_order`. Used by `bench/stop_path.py` and the tests of the order path.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis.connection import AbstractConnection


class RoundTrips:
    """Per-order round-trip counts, collected while `counting()` is active."""

    def __init__(self) -> None:
        self.per_order: list[int] = []
        self._sent = threading.local()

    def _count(self) -> int:
        return getattr(self._sent, "n", 0)

    @contextmanager
    def counting(self, pipeline: Any) -> Iterator[RoundTrips]:
        """Count on `pipeline` (an actors.pipeline.OrderPipeline) until the block ends."""
        send = AbstractConnection.send_packed_command
        execute, place = pipeline.execute, pipeline.venue.place_order
        started = threading.local()
        sent = self._sent

        def counted_send(connection: AbstractConnection, *args: Any, **kwargs: Any) -> Any:
            sent.n = getattr(sent, "n", 0) + 1
            return send(connection, *args, **kwargs)

        def counted_execute(*args: Any, **kwargs: Any) -> Any:
            started.at = self._count()
            try:
                return execute(*args, **kwargs)
            finally:
                started.at = None

        def counted_place(*args: Any, **kwargs: Any) -> Any:
            at = getattr(started, "at", None)
            if at is not None:
                self.per_order.append(self._count() - at)
                started.at = None  # a resend or a remainder is not "before the wire" of this order
            return place(*args, **kwargs)

        AbstractConnection.send_packed_command = counted_send  # type: ignore[method-assign]
        pipeline.execute, pipeline.venue.place_order = counted_execute, counted_place
        try:
            yield self
        finally:
            AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
            pipeline.execute, pipeline.venue.place_order = execute, place


def per_order_summary(counts: list[int]) -> dict[str, Any]:
    """What bench JSON reports: the round trips of the typical and the worst order."""
    if not counts:
        return {"orders": 0}
    ordered = sorted(counts)
    return {"orders": len(counts), "median": ordered[len(ordered) // 2], "max": ordered[-1]}


__all__: list[str] = ["RoundTrips", "per_order_summary"]
