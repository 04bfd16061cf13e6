"""Runtimes read in bulk for strategies about to start, each handed to its strategy once.

Starting 10,000 strategies must not cost 10,000 Redis round trips (DESIGN §6): whoever starts
a batch reads the batch's runtimes in one pipelined `Store.load_runtimes` and puts them here;
each `StrategyActor.on_start` takes its own. An entry is taken at most once, so a restarted
incarnation (or one whose entry was never put) reads its own record, as before.
"""

from __future__ import annotations

import threading
from typing import Mapping

from runtime.store.errors import CorruptState
from runtime.store.runtime_state import Runtime

Loaded = Runtime | None | CorruptState  # a record, no record, or why it could not be read


class RuntimePreload:
    """Threading: safe from any thread (the starter puts, each strategy thread takes)."""

    def __init__(self) -> None:
        self._loaded: dict[str, Loaded] = {}
        self._lock = threading.Lock()

    def put(self, loaded: Mapping[str, Loaded]) -> None:
        with self._lock:
            self._loaded.update(loaded)

    def take(self, strategy_id: str) -> tuple[bool, Loaded]:
        """(True, what was read) once; (False, None) when nothing was put for it or it was taken."""
        with self._lock:
            if strategy_id not in self._loaded:
                return False, None
            return True, self._loaded.pop(strategy_id)

    def discard(self, strategy_ids: list[str]) -> None:
        """Forget entries nobody took (their start failed), so a later start reads afresh."""
        with self._lock:
            for strategy_id in strategy_ids:
                self._loaded.pop(strategy_id, None)
