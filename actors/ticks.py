"""Tick subscriptions: which strategy actors want ticks of which symbol.

Only strategies that override `on_tick` subscribe, so a symbol with 10,000 scheduled
strategies costs nothing per tick here; stops are served by the stop book instead.

Subscribing adds to a set in place (10,000 subscribers: linear, not a copy per call); the
tick thread iterates an immutable snapshot, rebuilt only on the first read after a change.
"""

from __future__ import annotations

import threading


class TickSubscriptions:
    def __init__(self) -> None:
        self._members: dict[str, set[str]] = {}
        self._snapshots: dict[str, frozenset[str]] = {}  # per symbol, dropped when its members change
        self._lock = threading.Lock()

    def subscribe(self, symbol: str, node_id: str) -> None:
        with self._lock:
            self._members.setdefault(symbol, set()).add(node_id)
            self._snapshots.pop(symbol, None)

    def unsubscribe(self, symbol: str, node_id: str) -> None:
        with self._lock:
            members = self._members.get(symbol)
            if members is not None and node_id in members:
                members.discard(node_id)
                self._snapshots.pop(symbol, None)

    def of(self, symbol: str) -> frozenset[str]:
        """The subscribers now, as a snapshot safe to iterate while others (un)subscribe."""
        snapshot = self._snapshots.get(symbol)
        if snapshot is not None:
            return snapshot
        with self._lock:
            snapshot = self._snapshots.get(symbol)
            if snapshot is None:
                snapshot = frozenset(self._members.get(symbol, ()))
                self._snapshots[symbol] = snapshot
            return snapshot
