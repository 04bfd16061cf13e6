"""Positions and P&L for the status document: what the operator's money is doing.

Read on the status server's thread from objects that outlive actor restarts (the
runtime cache, the stop book) and from figures the actors publish (marks from the
state builder, realized P&L from the rapid-loss breaker), so a crashed or hung strategy
still shows its position. Pure functions over those inputs; nothing here writes.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from actors.node_ids import STATE_BUILDER
from actors.stop_book import StopBook
from runtime.config import StrategyConfig
from runtime.store.runtime_state import Position, Runtime

__all__ = ["account_rows", "marks_from_tree", "position_rows"]


def marks_from_tree(tree: Mapping[str, Any]) -> dict[str, float]:
    """The last price per symbol, from the state builder's node details in the status tree."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if node.get("id") == STATE_BUILDER:
            symbols = (node.get("details") or {}).get("symbols") or {}
            return {s: float(d["price"]) for s, d in symbols.items() if isinstance(d, Mapping) and d.get("price")}
        stack.extend(c for c in node.get("children") or [] if isinstance(c, Mapping))
    return {}


def position_rows(
    strategies: Iterable[StrategyConfig],
    runtime_of: Callable[[str], Runtime | None],
    stops: StopBook,
    marks: Mapping[str, float],
    realized: Mapping[str, float],
) -> list[dict[str, Any]]:
    """One row per configured strategy: position, quantity, entry and mark price, unrealized
    and realized P&L, the stop (level; armed in the local stop book and/or at the venue) and
    the order in flight. Exchange-side protective stops exist only while the daemon is
    stopped (F26: placed at a graceful stop, taken back at the next start)."""
    rows = []
    for strategy in strategies:
        runtime = runtime_of(strategy.id) or Runtime()
        is_open = runtime.position is Position.BOUGHT and runtime.quantity > 0
        mark = marks.get(strategy.symbol)
        unrealized = (mark - runtime.entry_price) * runtime.quantity if is_open and mark and runtime.entry_price \
            else 0.0
        armed = stops.armed(strategy.symbol, strategy.id)
        rows.append({
            "strategy": strategy.id,
            "account": strategy.account,
            "symbol": strategy.symbol,
            "position": runtime.position.value,
            "status": runtime.status.value,
            "quantity": runtime.quantity if is_open else 0.0,
            "entry_price": runtime.entry_price if is_open else None,
            "mark_price": mark,
            "unrealized_pnl": unrealized,
            "realized_pnl": float(realized.get(strategy.id, 0.0)),
            "stop": {
                "level": (armed.level if armed is not None else runtime.stop_loss) if is_open else None,
                "local": armed is not None,
                "exchange": False,
            },
            "pending_order": ({"client_order_id": runtime.pending_order, "purpose": runtime.pending_purpose}
                              if runtime.pending_order else None),
        })
    return rows


def account_rows(positions: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per account: realized, unrealized and total P&L of its strategies."""
    accounts: dict[str, dict[str, float]] = {}
    for row in positions:
        acc = accounts.setdefault(str(row["account"]), {"realized_pnl": 0.0, "unrealized_pnl": 0.0, "pnl": 0.0})
        acc["realized_pnl"] += row["realized_pnl"]
        acc["unrealized_pnl"] += row["unrealized_pnl"]
        acc["pnl"] = acc["realized_pnl"] + acc["unrealized_pnl"]
    return accounts
