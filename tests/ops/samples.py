"""A status document shaped like DESIGN §7, for the ops tests."""
from __future__ import annotations

import time
from typing import Any


def node(node_id: str, state: str = "running", *, kind: str = "worker", restarts: int = 0,
         generation: int = 1, last_error: Any = None, children: list | None = None, **extra: Any) -> dict:
    return {"id": node_id, "kind": kind, "state": state, "restarts": restarts, "last_error": last_error,
            "last_exit_at": None, "generation": generation, "children": children or [], **extra}


def healthy_status() -> dict[str, Any]:
    """A NORMAL / ACTIVE node with the full DESIGN §1 tree, every node running."""
    sup = lambda i, kids, strategy="one_for_one": node(i, kind="supervisor", strategy=strategy, children=kids)  # noqa: E731
    tree = sup("root", [
        sup("safety", [node("degradation"), node("circuit-breaker")]),
        sup("monitors", [node("monitor:store"), node("monitor:resources"), node("monitor:clock"),
                         node("monitor:heartbeat")]),
        sup("market", [node("feed:BTCUSDT"), node("feed:ETHUSDT"), node("state-builder")]),
        sup("execution", [node("execution-engine"), node("position-manager")], "rest_for_one"),
        sup("strategies", [node("strategy:s1", restarts=1, generation=2, started_at=time.time() - 42),
                           node("strategy:s2")], "dynamic"),
    ])
    return {
        "node": "node-a", "pid": 4242, "started_at": time.time() - 3600, "uptime_s": 3600.0,
        "mode": "NORMAL", "trading": "ACTIVE", "gate": {"open": True, "reasons": []},
        "breakers": [{"name": n, "state": "closed", "reason": None, "tripped_at": None}
                     for n in ("loss", "price", "malfunction", "resource")],
        "tree": tree,
    }


def find(tree: dict, node_id: str) -> dict:
    if tree["id"] == node_id:
        return tree
    for child in tree["children"]:
        try:
            return find(child, node_id)
        except KeyError:
            pass
    raise KeyError(node_id)
