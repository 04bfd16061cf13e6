"""Bounded polling for tests of asynchronous behaviour (never an unbounded sleep)."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def eventually(probe: Callable[[], T], timeout: float = 3.0, interval: float = 0.005, what: str = "") -> T:
    """Poll `probe` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T = probe()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {what or probe}; last value {last!r}")
        time.sleep(interval)
        last = probe()
    return last
