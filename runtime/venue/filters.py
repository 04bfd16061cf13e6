"""Symbol filters from ``/fapi/v1/exchangeInfo``, applied by the connector BEFORE sending.

A -1111 (precision), -4164 (min notional) or -4003..-4005 (quantity bounds) from
the venue is our bug, not a market event: the connector rounds quantity DOWN to
the step (never up: never more exposure than asked) and price to the tick, and
checks LOT_SIZE / MARKET_LOT_SIZE bounds and MIN_NOTIONAL (reduce-only orders
are exempt, as on Binance) itself. ``check`` returns the reason an order cannot
be sent, or None. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any

from runtime.venue.models import decimal_field
from runtime.venue.outcomes import MalformedReply


@dataclass(frozen=True)
class SymbolFilters:
    """PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE and MIN_NOTIONAL of one symbol."""

    symbol: str
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_step_size: Decimal
    market_min_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal

    def round_qty(self, qty: Decimal, market: bool = False) -> Decimal:
        """Down to the (MARKET_)LOT_SIZE step."""
        step = self.market_step_size if market else self.step_size
        return _to_step(qty, step, ROUND_DOWN)

    def round_price(self, price: Decimal) -> Decimal:
        """To the nearest tick (half-even)."""
        return _to_step(price, self.tick_size, ROUND_HALF_EVEN)

    def check(self, qty: Decimal, price: Decimal | None, *, market: bool, reduce_only: bool) -> str | None:
        """Why a ROUNDED order would be refused by the venue, or None. ``price``: limit or reference price."""
        low, high = (self.market_min_qty, self.market_max_qty) if market else (self.min_qty, self.max_qty)
        what = "MARKET_LOT_SIZE" if market else "LOT_SIZE"
        if qty < low:
            return f"quantity {qty} is below {what} minQty {low} (after rounding down to the step)"
        if qty > high:
            return f"quantity {qty} is above {what} maxQty {high}"
        if price is not None:
            if price < self.min_price or price > self.max_price:
                return f"price {price} is outside PRICE_FILTER [{self.min_price}, {self.max_price}]"
            if not reduce_only and qty * price < self.min_notional:
                return f"notional {qty * price} is below MIN_NOTIONAL {self.min_notional} (not reduce-only)"
        return None


def parse_exchange_info(payload: Any) -> dict[str, SymbolFilters]:
    """exchangeInfo -> filters per symbol (TRADING symbols only); ``MalformedReply`` naming what is missing."""
    if not isinstance(payload, dict) or not isinstance(payload.get("symbols"), list):
        raise MalformedReply("exchangeInfo reply: missing list 'symbols'")
    out = {}
    for i, item in enumerate(payload["symbols"]):
        what = f"exchangeInfo symbols[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("symbol"), str):
            raise MalformedReply(f"{what}: missing field 'symbol'")
        if item.get("status", "TRADING") != "TRADING":
            continue
        filters = {f.get("filterType"): f for f in item.get("filters", []) if isinstance(f, dict)}
        for needed in ("PRICE_FILTER", "LOT_SIZE"):
            if needed not in filters:
                raise MalformedReply(f"{what} ({item['symbol']}): missing filter {needed}")
        price, lot = filters["PRICE_FILTER"], filters["LOT_SIZE"]
        market_lot = filters.get("MARKET_LOT_SIZE", lot)
        notional = filters.get("MIN_NOTIONAL", {})
        out[item["symbol"]] = SymbolFilters(
            symbol=item["symbol"],
            tick_size=decimal_field(price, "tickSize", f"{what} PRICE_FILTER"),
            min_price=decimal_field(price, "minPrice", f"{what} PRICE_FILTER"),
            max_price=_or_infinite(decimal_field(price, "maxPrice", f"{what} PRICE_FILTER")),
            step_size=decimal_field(lot, "stepSize", f"{what} LOT_SIZE"),
            min_qty=decimal_field(lot, "minQty", f"{what} LOT_SIZE"),
            max_qty=_or_infinite(decimal_field(lot, "maxQty", f"{what} LOT_SIZE")),
            market_step_size=decimal_field(market_lot, "stepSize", f"{what} MARKET_LOT_SIZE"),
            market_min_qty=decimal_field(market_lot, "minQty", f"{what} MARKET_LOT_SIZE"),
            market_max_qty=_or_infinite(decimal_field(market_lot, "maxQty", f"{what} MARKET_LOT_SIZE")),
            min_notional=_notional(notional, what),
        )
    return out


def _notional(item: Mapping[str, Any], what: str) -> Decimal:
    """Futures spell it ``notional``; spot's ``minNotional`` accepted too; absent = no minimum."""
    for field in ("notional", "minNotional"):
        if field in item:
            return decimal_field(item, field, f"{what} MIN_NOTIONAL")
    return Decimal(0)


def _or_infinite(value: Decimal) -> Decimal:
    """A 0 bound means "disabled" in Binance's filters."""
    return Decimal("Infinity") if value == 0 else value


def _to_step(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    if step <= 0:
        return value
    return ((value / step).to_integral_value(rounding=rounding) * step).quantize(step)
