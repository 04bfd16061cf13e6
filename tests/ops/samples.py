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
        sup("market", [node("feed:BTCUSDT", details={"status": "LIVE", "data_age_ms": 120.0}),
                       node("feed:ETHUSDT", details={"status": "RECOVERING", "data_age_ms": None}),
                       node("state-builder")]),
        sup("execution", [node("execution-engine", details={"in_flight": ["s2"], "completed": 7}),
                          node("position-manager", details={"drift": {"ETHUSDT": {"expected": 0.2, "venue": 0.0}}})],
            "rest_for_one"),
        sup("strategies", [node("strategy:s1", restarts=1, generation=2, started_at=time.time() - 42),
                           node("strategy:s2")], "dynamic"),
    ])
    return {
        "node": "node-a", "pid": 4242, "started_at": time.time() - 3600, "uptime_s": 3600.0,
        "mode": "NORMAL", "trading": "ACTIVE",
        "gate": {"open": True, "reasons": [], "symbols": {"BTCUSDT": {"open": True, "reasons": []},
                                                           "ETHUSDT": {"open": True, "reasons": []}}},
        "breakers": [{"name": n, "state": "closed", "reason": None, "tripped_at": None}
                     for n in ("loss", "price", "malfunction", "resource")],
        "positions": [
            position("s1", "BTCUSDT", quantity=0.01, entry_price=100000.0, mark_price=100500.0, realized_pnl=-1.5,
                     stop={"level": 95000.0, "local": True, "exchange": False}),
            position("s2", "ETHUSDT"),
        ],
        "accounts": {"alice": {"realized_pnl": -1.5, "unrealized_pnl": 5.0, "pnl": 3.5}},
        "session": {"pnl": 3.5, "realized": -1.5, "unrealized": 5.0, "session_loss_limit": 10000.0,
                    "trade_loss_limit": 5000.0, "consecutive_losses": 1, "max_consecutive_losses": 5,
                    "capital": 100000.0, "unknown_orders": 1},
        "venue": {"budget": {"used_weight": 600, "weight_limit": 2400, "blocked_for_s": 0.0}},
        "tree": tree,
    }


def position(strategy: str, symbol: str, *, quantity: float = 0.0, entry_price: float | None = None,
             mark_price: float | None = None, realized_pnl: float = 0.0, stop: dict | None = None,
             pending_order: dict | None = None) -> dict[str, Any]:
    """One `positions` row of the status document (actors/positions.py)."""
    unrealized = (mark_price - entry_price) * quantity if quantity and entry_price and mark_price else 0.0
    return {"strategy": strategy, "account": "alice", "symbol": symbol,
            "position": "bought" if quantity else "none", "status": "active", "quantity": quantity,
            "entry_price": entry_price, "mark_price": mark_price, "unrealized_pnl": unrealized,
            "realized_pnl": realized_pnl, "stop": stop or {"level": None, "local": False, "exchange": False},
            "pending_order": pending_order}


def find(tree: dict, node_id: str) -> dict:
    if tree["id"] == node_id:
        return tree
    for child in tree["children"]:
        try:
            return find(child, node_id)
        except KeyError:
            pass
    raise KeyError(node_id)
