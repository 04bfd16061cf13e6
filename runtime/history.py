"""Order history from the journal: one row per client order id, its intent and outcomes.

The journal (runtime/store/journal.py) holds every intent and every outcome. `orders`
folds its entries into one row per order (what was asked, what came of it, the fill),
newest first, optionally for one strategy and since a time; `render` prints the rows
as a table. Pure functions: the node serves rows at `GET /history`, the CLI renders them.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

__all__ = ["orders", "parse_since", "render"]

_AGO_RE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(value: str, now: float | None = None) -> float:
    """'30s', '10m', '2h', '1d' ago, or an ISO-8601 time (UTC when it has no offset) -> epoch
    seconds. ValueError names what was expected."""
    text = value.strip()
    match = _AGO_RE.match(text)
    if match:
        return (time.time() if now is None else now) - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since must look like '10m', '2h', '1d' or '2026-11-30T12:00:00Z', got {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def orders(entries: Iterable[Any], strategy: str | None = None, since: float | None = None,
           limit: int | None = None) -> list[dict[str, Any]]:
    """Journal entries (objects with kind, client_order_id, outcome, final, fields, at) -> one
    row per order, newest first (by when it was sent); with `since`, the orders sent or with an
    outcome at or after it (a fill since then of an order sent before it is listed):
    {client_order_id, strategy, account, symbol, side, purpose,
    quantity, reason, at, outcome (the last one; null while open), settled, filled_qty,
    avg_price, detail, outcomes [{outcome, at, final}]}."""
    rows: dict[str, dict[str, Any]] = {}
    for entry in entries:
        fields: Mapping[str, Any] = entry.fields or {}
        row = rows.get(entry.client_order_id)
        if row is None:
            row = rows[entry.client_order_id] = {
                "client_order_id": entry.client_order_id, "strategy": fields.get("strategy_id"),
                "account": None, "symbol": None, "side": None, "purpose": None, "quantity": None,
                "reason": None, "at": entry.at, "outcome": None, "settled": False, "filled_qty": None,
                "avg_price": None, "detail": None, "outcomes": [],
            }
        if entry.kind == "intent":
            row.update(strategy=fields.get("strategy_id") or row["strategy"], account=fields.get("account"),
                       symbol=fields.get("symbol"), side=fields.get("side"), purpose=fields.get("purpose"),
                       quantity=_number(fields.get("quantity")), reason=fields.get("reason") or None, at=entry.at)
            continue
        row["outcomes"].append({"outcome": entry.outcome, "at": entry.at, "final": entry.final})
        row["outcome"] = entry.outcome
        row["settled"] = row["settled"] or entry.final
        if fields.get("qty") is not None:
            row["filled_qty"] = _number(fields.get("qty"))
        if fields.get("avg_price") is not None:
            row["avg_price"] = _number(fields.get("avg_price"))
        detail = fields.get("reason") or fields.get("detail")
        if detail:
            row["detail"] = str(detail)
    selected = [r for r in rows.values() if (strategy is None or r["strategy"] == strategy)
                and (since is None or max([r["at"]] + [o["at"] for o in r["outcomes"]]) >= since)]
    selected.sort(key=lambda r: r["at"], reverse=True)
    return selected[:limit] if limit else selected


def _when(epoch: Any) -> str:
    if not isinstance(epoch, (int, float)):
        return "-"
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _num(value: Any, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, (int, float)) else "-"


def render(rows: list[Mapping[str, Any]], detail_width: int = 50) -> str:
    """A table, newest first; times in UTC."""
    if not rows:
        return "no orders in the journal for this selection\n"
    table = [("TIME (UTC)", "STRATEGY", "SYMBOL", "PURPOSE", "SIDE", "QTY", "OUTCOME", "FILLED", "PRICE",
              "CLIENT ORDER ID", "DETAIL")]
    for r in rows:
        outcome = r.get("outcome") or "OPEN"
        if r.get("outcome") and not r.get("settled"):
            outcome += " (open)"
        detail = str(r.get("detail") or r.get("reason") or "")
        table.append((_when(r.get("at")), str(r.get("strategy") or "-"), str(r.get("symbol") or "-"),
                      str(r.get("purpose") or "-"), str(r.get("side") or "-"), _num(r.get("quantity"), "g"),
                      outcome, _num(r.get("filled_qty"), "g"), _num(r.get("avg_price"), ",.2f"),
                      str(r.get("client_order_id")),
                      detail if len(detail) <= detail_width else detail[: detail_width - 1] + "…"))
    widths = [max(len(row[i]) for row in table) + 2 for i in range(len(table[0]) - 1)]
    lines = ["".join(c.ljust(w) for c, w in zip(row, widths)) + row[-1] for row in table]
    return "\n".join(line.rstrip() for line in lines) + "\n"
