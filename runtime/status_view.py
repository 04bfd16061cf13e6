"""Text views of the money and the gates in a status document (pure: status in, lines out).

`gate_lines` says which symbols are closed and why; `position_lines` is one row per
strategy with position, quantity, entry and mark price, unrealized and realized P&L, the
stop (armed locally and/or at the venue) and the order in flight, then the session P&L
against the rapid-loss breaker's limits. `paint(text, style)` colours (or not).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

__all__ = ["closed_symbols", "drift_lines", "find_node", "gate_lines", "node_lines", "position_lines"]

Paint = Callable[[str, str | None], str]


def closed_symbols(status: Mapping[str, Any]) -> dict[str, list[str]]:
    """``{symbol: reasons}`` for every configured symbol whose entries are closed."""
    gate = status.get("gate") if isinstance(status.get("gate"), Mapping) else {}
    symbols = gate.get("symbols") if isinstance(gate.get("symbols"), Mapping) else {}
    return {s: [str(r) for r in g.get("reasons") or []] for s, g in symbols.items()
            if isinstance(g, Mapping) and not g.get("open")}


def gate_lines(status: Mapping[str, Any], paint: Paint) -> list[str]:
    """One line per closed symbol (none when every symbol is open)."""
    return [f"  {paint(symbol, 'red')} closed: {'; '.join(reasons) or '?'}"
            for symbol, reasons in closed_symbols(status).items()]


def drift_lines(status: Mapping[str, Any], paint: Paint) -> list[str]:
    """Per symbol: the strategies' summed quantities against the venue's net position (issue 10
    case 11); a drifting symbol in red. No lines before the first reconcile."""
    lines = []
    for symbol, figures in (status.get("symbol_positions") or {}).items():
        if not isinstance(figures, Mapping):
            continue
        orders = figures.get("unexplained_open_orders") or 0
        line = (f"net {symbol}: strategies {figures.get('expected', 0):g}, venue {figures.get('venue', 0):g}, "
                f"drift {figures.get('drift', 0):+g}" + (f", {orders:g} unexplained open order(s)" if orders else ""))
        lines.append(paint(line + " -- DRIFT: entries closed until explained", "red")
                     if figures.get("drifting") else line)
    return lines


def _money(value: Any) -> str:
    return f"{value:+,.2f}" if isinstance(value, (int, float)) else "-"


def _price(value: Any) -> str:
    return f"{value:,.2f}" if isinstance(value, (int, float)) else "-"


def _stop(stop: Any) -> str:
    if not isinstance(stop, Mapping) or stop.get("level") is None:
        return "-"
    where = [w for w in ("local", "exchange") if stop.get(w)]
    return f"{_price(stop['level'])} ({'+'.join(where) if where else 'NOT ARMED'})"


def position_lines(status: Mapping[str, Any], paint: Paint) -> list[str]:
    """The positions table and the session line; no lines when the document has no positions."""
    positions = [p for p in status.get("positions") or [] if isinstance(p, Mapping)]
    if not positions:
        return []
    table = [("STRATEGY", "SYMBOL", "POSITION", "QTY", "ENTRY", "MARK", "UNREALIZED", "REALIZED", "STOP", "PENDING")]
    for p in positions:
        pending = p.get("pending_order")
        table.append((
            str(p.get("strategy")), str(p.get("symbol")), str(p.get("position")),
            f"{p.get('quantity', 0):g}" if p.get("quantity") else "-",
            _price(p.get("entry_price")), _price(p.get("mark_price")),
            _money(p.get("unrealized_pnl")) if p.get("quantity") else "-", _money(p.get("realized_pnl")),
            _stop(p.get("stop")),
            f"{pending.get('purpose')} {pending.get('client_order_id')}" if isinstance(pending, Mapping) else "",
        ))
    widths = [max(len(row[i]) for row in table) + 2 for i in range(len(table[0]))]
    lines = []
    for i, row in enumerate(table):
        line = "".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
        if i == 0:
            line = paint(line, "dim")
        elif "NOT ARMED" in row[8]:
            line = paint(line, "red")
        lines.append(line)
    session = status.get("session")
    if isinstance(session, Mapping) and session:
        pnl = session.get("pnl", 0.0)
        lines.append(
            f"rapid-loss breaker: session P&L {paint(_money(pnl), 'green' if pnl >= 0 else 'red')} "
            f"(realized {_money(session.get('realized'))}, unrealized {_money(session.get('unrealized'))}); "
            f"limit -{_price(session.get('session_loss_limit'))} per session, "
            f"-{_price(session.get('trade_loss_limit'))} per trade, "
            f"losses in a row {session.get('consecutive_losses', 0)}/{session.get('max_consecutive_losses', '?')}")
    for account, figures in (status.get("accounts") or {}).items():
        if isinstance(figures, Mapping):
            lines.append(f"account {account}: P&L {_money(figures.get('pnl'))} "
                         f"(realized {_money(figures.get('realized_pnl'))}, "
                         f"unrealized {_money(figures.get('unrealized_pnl'))})")
    return lines


def find_node(status: Mapping[str, Any], node_id: str) -> Mapping[str, Any] | None:
    """The tree node with this id (a strategy id alone finds `strategy:<id>`), or None."""
    stack = [status.get("tree")]
    found = None
    while stack:
        node = stack.pop()
        if not isinstance(node, Mapping):
            continue
        if node.get("id") == node_id:
            return node
        if node.get("id") == f"strategy:{node_id}":
            found = node
        stack.extend(node.get("children") or [])
    return found


def node_lines(node: Mapping[str, Any]) -> list[str]:
    """Drill-down into one node: its fields, then its details, one `key: value` per line
    (nested values as compact JSON); children are listed by id only."""
    lines = []
    for key, value in node.items():
        if key == "details":
            continue
        if key == "children":
            value = [c.get("id") for c in value if isinstance(c, Mapping)]
        lines.append(f"{key}: {value if isinstance(value, str) else json.dumps(value, default=str)}")
    details = node.get("details")
    if isinstance(details, Mapping) and details:
        lines.append("details:")
        lines += [f"  {k}: {v if isinstance(v, str) else json.dumps(v, default=str)}" for k, v in details.items()]
    return lines
