"""Typed data parsed from successful venue replies (positions, depth, time, order lists).

Parsing is strict: a missing or non-numeric field raises ``MalformedReply``
naming the field and the item, so a garbled reply never becomes a zero position.
Money and quantities are ``Decimal``; equal Decimals hash equal, so book keys
from a snapshot and from diff events match whatever their string form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from runtime.venue.outcomes import MalformedReply

Level = tuple[Decimal, Decimal]


@dataclass(frozen=True)
class Position:
    """One symbol's position (one-way mode): signed ``amount``, >0 long, <0 short."""

    symbol: str
    amount: Decimal
    entry_price: Decimal
    mark_price: Decimal
    unrealized_pnl: Decimal
    leverage: int | None = None

    @property
    def side(self) -> str:
        """``LONG``, ``SHORT`` or ``FLAT``."""
        return "LONG" if self.amount > 0 else "SHORT" if self.amount < 0 else "FLAT"


@dataclass(frozen=True)
class DepthSnapshot:
    """``/fapi/v1/depth``: the book as of ``last_update_id`` (bids best first, asks best first)."""

    last_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    event_time: int | None = None
    transaction_time: int | None = None


def decimal_field(item: Mapping[str, Any], field: str, what: str) -> Decimal:
    """``item[field]`` as a finite Decimal, or ``MalformedReply`` naming it."""
    if field not in item:
        raise MalformedReply(f"{what}: missing field {field!r}")
    try:
        value = Decimal(str(item[field]))
    except (InvalidOperation, ValueError):
        raise MalformedReply(f"{what}: field {field!r} is not a number: {item[field]!r}") from None
    if not value.is_finite():
        raise MalformedReply(f"{what}: field {field!r} is not finite: {item[field]!r}")
    return value


def int_field(item: Mapping[str, Any], field: str, what: str) -> int:
    """``item[field]`` as an int, or ``MalformedReply`` naming it."""
    if field not in item:
        raise MalformedReply(f"{what}: missing field {field!r}")
    value = item[field]
    if isinstance(value, bool):
        raise MalformedReply(f"{what}: field {field!r} is not an integer: {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise MalformedReply(f"{what}: field {field!r} is not an integer: {value!r}") from None


def parse_levels(raw: Any, what: str) -> tuple[Level, ...]:
    """``[["price", "qty"], ...]`` as Decimal pairs."""
    if not isinstance(raw, list):
        raise MalformedReply(f"{what}: expected a list of [price, qty], got {type(raw).__name__}")
    levels = []
    for i, level in enumerate(raw):
        if not isinstance(level, (list, tuple)) or len(level) < 2:
            raise MalformedReply(f"{what}[{i}]: expected [price, qty], got {level!r}")
        try:
            price, qty = Decimal(str(level[0])), Decimal(str(level[1]))
        except (InvalidOperation, ValueError):
            raise MalformedReply(f"{what}[{i}]: not numbers: {level!r}") from None
        if not (price.is_finite() and qty.is_finite()) or price <= 0 or qty < 0:
            raise MalformedReply(f"{what}[{i}]: price must be > 0 and qty >= 0: {level!r}")
        levels.append((price, qty))
    return tuple(levels)


def parse_server_time(payload: Any) -> int:
    """``{"serverTime": ms}`` -> ms."""
    if not isinstance(payload, dict):
        raise MalformedReply(f"time reply: expected an object, got {type(payload).__name__}")
    return int_field(payload, "serverTime", "time reply")


def parse_positions(payload: Any) -> list[Position]:
    """``/fapi/v2/positionRisk`` list -> positions (one per symbol in one-way mode)."""
    if not isinstance(payload, list):
        raise MalformedReply(f"positionRisk reply: expected a list, got {type(payload).__name__}")
    positions = []
    for i, item in enumerate(payload):
        what = f"positionRisk[{i}]"
        if not isinstance(item, dict):
            raise MalformedReply(f"{what}: expected an object, got {type(item).__name__}")
        if not isinstance(item.get("symbol"), str):
            raise MalformedReply(f"{what}: missing field 'symbol'")
        leverage = item.get("leverage")
        positions.append(Position(
            symbol=item["symbol"],
            amount=decimal_field(item, "positionAmt", what),
            entry_price=decimal_field(item, "entryPrice", what),
            mark_price=decimal_field(item, "markPrice", what),
            unrealized_pnl=decimal_field(item, "unRealizedProfit", what),
            leverage=int_field(item, "leverage", what) if leverage is not None else None,
        ))
    return positions


def parse_depth(payload: Any) -> DepthSnapshot:
    """``/fapi/v1/depth`` -> snapshot."""
    if not isinstance(payload, dict):
        raise MalformedReply(f"depth reply: expected an object, got {type(payload).__name__}")
    for field in ("bids", "asks"):
        if field not in payload:
            raise MalformedReply(f"depth reply: missing field {field!r}")
    return DepthSnapshot(
        last_update_id=int_field(payload, "lastUpdateId", "depth reply"),
        bids=parse_levels(payload["bids"], "depth reply bids"),
        asks=parse_levels(payload["asks"], "depth reply asks"),
        event_time=int_field(payload, "E", "depth reply") if "E" in payload else None,
        transaction_time=int_field(payload, "T", "depth reply") if "T" in payload else None,
    )


def parse_order_list(payload: Any, id_field: str = "clientOrderId", status_field: str = "status") -> list[dict]:
    """A list of order objects, each checked for its id and status fields."""
    if not isinstance(payload, list):
        raise MalformedReply(f"order list reply: expected a list, got {type(payload).__name__}")
    for i, item in enumerate(payload):
        if not isinstance(item, dict):
            raise MalformedReply(f"order list[{i}]: expected an object, got {type(item).__name__}")
        for field in (id_field, status_field, "symbol"):
            if field not in item:
                raise MalformedReply(f"order list[{i}]: missing field {field!r}")
    return list(payload)

