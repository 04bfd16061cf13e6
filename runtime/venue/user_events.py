"""Typed user-data stream events (Binance USD-M), parsed strictly from raw frames.

``parse_user_frame`` turns one frame (raw ``/private/ws/<listenKey>`` event, or a
combined ``{"stream", "data"}`` frame) into one of ``OrderUpdate``,
``AlgoUpdate``, ``AccountUpdate`` or ``ListenKeyExpired``, or None for event
types the engine does not use (e.g. ``TRADE_LITE``, ``MARGIN_CALL``). Anything
malformed raises ``MalformedMessage`` naming the event and field. Quantities and
prices are ``Decimal``. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from runtime.venue.models import decimal_field, int_field
from runtime.venue.outcomes import MalformedReply
from runtime.venue.ws import MalformedMessage


@dataclass(frozen=True)
class OrderUpdate:
    """``ORDER_TRADE_UPDATE``: one order's state after a change (NEW, TRADE, CANCELED, EXPIRED...).

    ``status`` is the order status (X: NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED,
    EXPIRED_IN_MATCH); ``execution`` the execution type (x). ``executed_qty`` (z) is what
    the position holds of this order so far; ``last_fill_qty`` / ``last_fill_price``
    (l / L) the fill this event reports (0 when it reports none).
    """

    symbol: str
    client_id: str
    order_id: int
    side: str
    order_type: str
    status: str
    execution: str
    orig_qty: Decimal
    executed_qty: Decimal
    avg_price: Decimal
    last_fill_qty: Decimal
    last_fill_price: Decimal
    reduce_only: bool
    event_time_ms: int
    trade_time_ms: int
    realized_pnl: Decimal = Decimal(0)


@dataclass(frozen=True)
class AlgoUpdate:
    """``ALGO_UPDATE``: an algo (conditional, e.g. STOP_MARKET) order's state.

    ``status``: NEW, CANCELED, TRIGGERING, TRIGGERED, FINISHED, REJECTED, EXPIRED.
    ``actual_order_id`` is the plain order it placed when triggered ("" before).
    """

    symbol: str
    client_algo_id: str
    algo_id: int
    side: str
    order_type: str
    status: str
    quantity: Decimal
    trigger_price: Decimal
    actual_order_id: str
    executed_qty: Decimal
    avg_price: Decimal
    reduce_only: bool
    close_position: bool
    event_time_ms: int


@dataclass(frozen=True)
class BalanceUpdate:
    asset: str
    wallet_balance: Decimal
    cross_wallet_balance: Decimal
    balance_change: Decimal


@dataclass(frozen=True)
class PositionUpdate:
    symbol: str
    amount: Decimal  # signed: >0 long, <0 short (one-way mode)
    entry_price: Decimal
    unrealized_pnl: Decimal
    position_side: str


@dataclass(frozen=True)
class AccountUpdate:
    """``ACCOUNT_UPDATE``: balances and the positions that changed, with the reason (m: ORDER, FUNDING...)."""

    reason: str
    balances: tuple[BalanceUpdate, ...]
    positions: tuple[PositionUpdate, ...]
    event_time_ms: int


@dataclass(frozen=True)
class ListenKeyExpired:
    """``listenKeyExpired``: the stream of this key has ended; a new key is needed."""

    listen_key: str
    event_time_ms: int


UserEvent = OrderUpdate | AlgoUpdate | AccountUpdate | ListenKeyExpired


def parse_user_frame(raw: str | bytes) -> UserEvent | None:
    """One frame -> a typed event, None for an event type not used here; ``MalformedMessage`` if garbled."""
    try:
        frame = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"user-data frame is not JSON ({exc}): {raw[:80]!r}") from None
    if isinstance(frame, dict) and "stream" in frame and "data" in frame:
        frame = frame["data"]
    if not isinstance(frame, dict):
        raise MalformedMessage(f"user-data frame is not an object: {raw[:80]!r}")
    kind = frame.get("e")
    if not isinstance(kind, str):
        raise MalformedMessage(f"user-data frame without an event type 'e': {raw[:80]!r}")
    parser = _PARSERS.get(kind)
    if parser is None:
        return None
    try:
        return parser(frame)
    except MalformedMessage:
        raise
    except MalformedReply as exc:
        raise MalformedMessage(str(exc)) from None


def parse_order_update(data: Mapping[str, Any]) -> OrderUpdate:
    what = "ORDER_TRADE_UPDATE.o"
    order = _object(data, "o", "ORDER_TRADE_UPDATE")
    return OrderUpdate(
        symbol=_str(order, "s", what), client_id=_str(order, "c", what), order_id=int_field(order, "i", what),
        side=_str(order, "S", what), order_type=_str(order, "o", what), status=_str(order, "X", what),
        execution=_str(order, "x", what), orig_qty=decimal_field(order, "q", what),
        executed_qty=decimal_field(order, "z", what), avg_price=decimal_field(order, "ap", what),
        last_fill_qty=decimal_field(order, "l", what), last_fill_price=decimal_field(order, "L", what),
        reduce_only=_bool(order, "R", what), event_time_ms=int_field(data, "E", "ORDER_TRADE_UPDATE"),
        trade_time_ms=int_field(order, "T", what),
        realized_pnl=decimal_field(order, "rp", what) if "rp" in order else Decimal(0),
    )


def parse_algo_update(data: Mapping[str, Any]) -> AlgoUpdate:
    what = "ALGO_UPDATE.o"
    algo = _object(data, "o", "ALGO_UPDATE")
    return AlgoUpdate(
        symbol=_str(algo, "s", what), client_algo_id=_str(algo, "caid", what), algo_id=int_field(algo, "aid", what),
        side=_str(algo, "S", what), order_type=_str(algo, "o", what), status=_str(algo, "X", what),
        quantity=decimal_field(algo, "q", what), trigger_price=decimal_field(algo, "tp", what),
        actual_order_id=str(algo.get("ai", "")), executed_qty=_decimal_or_zero(algo, "aq", what),
        avg_price=_decimal_or_zero(algo, "ap", what), reduce_only=_bool(algo, "R", what),
        close_position=_bool(algo, "cp", what), event_time_ms=int_field(data, "E", "ALGO_UPDATE"),
    )


def parse_account_update(data: Mapping[str, Any]) -> AccountUpdate:
    what = "ACCOUNT_UPDATE.a"
    account = _object(data, "a", "ACCOUNT_UPDATE")
    balances, positions = account.get("B", []), account.get("P", [])
    if not isinstance(balances, list) or not isinstance(positions, list):
        raise MalformedMessage(f"{what}: 'B' and 'P' must be lists")
    return AccountUpdate(
        reason=_str(account, "m", what),
        balances=tuple(BalanceUpdate(_str(b, "a", f"{what}.B"), decimal_field(b, "wb", f"{what}.B"),
                                     decimal_field(b, "cw", f"{what}.B"), _decimal_or_zero(b, "bc", f"{what}.B"))
                       for b in map(_item(f"{what}.B"), balances)),
        positions=tuple(PositionUpdate(_str(p, "s", f"{what}.P"), decimal_field(p, "pa", f"{what}.P"),
                                       decimal_field(p, "ep", f"{what}.P"), decimal_field(p, "up", f"{what}.P"),
                                       str(p.get("ps", "BOTH")))
                        for p in map(_item(f"{what}.P"), positions)),
        event_time_ms=int_field(data, "E", "ACCOUNT_UPDATE"),
    )


def parse_listen_key_expired(data: Mapping[str, Any]) -> ListenKeyExpired:
    return ListenKeyExpired(listen_key=str(data.get("listenKey", "")),
                            event_time_ms=int_field(data, "E", "listenKeyExpired"))


def _object(data: Mapping[str, Any], field: str, what: str) -> Mapping[str, Any]:
    value = data.get(field)
    if not isinstance(value, dict):
        raise MalformedMessage(f"{what}: field {field!r} is missing or not an object")
    return value


def _item(what: str):  # noqa: ANN202 - a tiny checker for map()
    def check(value: Any) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise MalformedMessage(f"{what}: item is not an object: {value!r:.60}")
        return value
    return check


def _str(data: Mapping[str, Any], field: str, what: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value:
        raise MalformedMessage(f"{what}: field {field!r} is missing or not a string")
    return value


def _bool(data: Mapping[str, Any], field: str, what: str) -> bool:
    value = data.get(field, False)
    if not isinstance(value, bool):
        raise MalformedMessage(f"{what}: field {field!r} is not true/false: {value!r}")
    return value


def _decimal_or_zero(data: Mapping[str, Any], field: str, what: str) -> Decimal:
    return decimal_field(data, field, what) if data.get(field) not in (None, "") else Decimal(0)


_PARSERS = {
    "ORDER_TRADE_UPDATE": parse_order_update,
    "ALGO_UPDATE": parse_algo_update,
    "ACCOUNT_UPDATE": parse_account_update,
    "listenKeyExpired": parse_listen_key_expired,
}
