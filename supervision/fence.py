"""Generation fencing shared between a supervisor and whoever performs side effects.

The supervisor admits each new incarnation's generation and revokes it when the
incarnation exits, is terminated or is fenced (hung, killed). Side-effect owners (an order engine,
a store) ask `is_current(child_id, generation)` and refuse anything stale, so a hung
incarnation that wakes up after its replacement started can never act.
"""

from __future__ import annotations

import itertools
import threading
from typing import Callable, Iterator

_process_generations: Iterator[int] = itertools.count(1)


def next_process_generation() -> int:
    """Process-wide increasing generation numbers (the default generation source)."""
    return next(_process_generations)


GenerationSource = Callable[[], int]


class Fence:
    """The current generation of each child id, for side-effect owners to check.

    Threading: every method is safe from any thread.
    """

    def __init__(self) -> None:
        self._current: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit(self, child_id: str, generation: int) -> None:
        with self._lock:
            self._current[child_id] = generation

    def revoke(self, child_id: str, generation: int) -> None:
        with self._lock:
            if self._current.get(child_id) == generation:
                del self._current[child_id]

    def is_current(self, child_id: str, generation: int) -> bool:
        with self._lock:
            return self._current.get(child_id) == generation
