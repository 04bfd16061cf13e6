"""Tick subscriptions: which strategy actors want ticks of which symbol.

Only strategies that override `on_tick` subscribe, so a symbol with 10,000 scheduled
strategies costs nothing per tick here; stops are served by the stop book instead.
"""

from __future__ import annotations

import threading


class TickSubscriptions:
    def __init__(self) -> None:
        self._by_symbol: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    def subscribe(self, symbol: str, node_id: str) -> None:
        with self._lock:
            self._by_symbol[symbol] = self._by_symbol.get(symbol, frozenset()) | {node_id}

    def unsubscribe(self, symbol: str, node_id: str) -> None:
        with self._lock:
            self._by_symbol[symbol] = self._by_symbol.get(symbol, frozenset()) - {node_id}

    def of(self, symbol: str) -> frozenset[str]:
        return self._by_symbol.get(symbol, frozenset())
