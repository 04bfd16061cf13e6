"""Directory: node id → the live ActorRef of its current incarnation.

Actors address each other by node id (`execution-engine`, `feed:BTCUSDT`), never by a ref
captured at start, because a restart replaces the ref. Each actor registers itself in
`on_start` with its generation; a stale incarnation can never overwrite a newer one.
Telling a node that is down (restarting) returns False instead of raising: the caller
decides whether that matters (a tick may be dropped; an order intent is durable in Redis).
"""

from __future__ import annotations

import threading
from typing import Any

import pykka


class Directory:
    def __init__(self) -> None:
        self._refs: dict[str, tuple[int, pykka.ActorRef[Any]]] = {}
        self._lock = threading.Lock()

    def register(self, node_id: str, generation: int, ref: pykka.ActorRef[Any]) -> None:
        with self._lock:
            current = self._refs.get(node_id)
            if current is None or current[0] <= generation:
                self._refs[node_id] = (generation, ref)

    def unregister(self, node_id: str, generation: int) -> None:
        with self._lock:
            current = self._refs.get(node_id)
            if current is not None and current[0] == generation:
                del self._refs[node_id]

    def ref(self, node_id: str) -> pykka.ActorRef[Any] | None:
        with self._lock:
            entry = self._refs.get(node_id)
        return entry[1] if entry is not None else None

    def tell(self, node_id: str, message: Any) -> bool:
        ref = self.ref(node_id)
        if ref is None:
            return False
        try:
            ref.tell(message)
        except pykka.ActorDeadError:
            return False
        return True

    def ids(self, prefix: str = "") -> list[str]:
        with self._lock:
            return sorted(node_id for node_id in self._refs if node_id.startswith(prefix))
