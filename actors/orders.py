"""Order intents and their deterministic client order ids.

One position has one entry id and ONE exit id, whatever asks for the exit (a SELL,
the stop index, a flatten): `{strategy}:e{n}` opens it and `{strategy}:x{n}` closes it.
So a stop-loss racing a scheduled SELL, or two ticks triggering the same stop, can
never become two exit orders at the venue: the engine serializes orders per strategy and
the second finds the position closed or the first exit pending.

The client id is a lookup handle, not a duplicate guard (Binance accepts a reused id once
the earlier order is closed), so the engine never resends while an earlier send may still
execute. When an exit closes partly executed (EXPIRED on a thin book), the remainder goes
out as a new order of the same intent, `{strategy}:x{n}.{k}` (k = 2, 3, ...): a lookup by
id then always names one order.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any, Mapping

from runtime.venue.budget import Priority
from runtime.venue.ids import validate_client_order_id


class Purpose(StrEnum):
    ENTRY = "entry"  # opens risk: asks the gate
    EXIT = "exit"  # the strategy closes its position (scheduled SELL)
    STOP_LOSS = "stop_loss"  # the stop index fired
    FLATTEN = "flatten"  # degradation / breaker / stale-data policy closes at market

    @property
    def reduces_risk(self) -> bool:
        return self is not Purpose.ENTRY

    @property
    def priority(self) -> Priority:
        if self is Purpose.STOP_LOSS:
            return Priority.STOP
        return Priority.ENTRY if self is Purpose.ENTRY else Priority.EXIT


SYSTEM_GENERATION = 0  # intents raised by the engine itself (stops, flatten): never fenced


def entry_order_id(strategy_id: str, seq: int) -> str:
    return validate_client_order_id(f"{strategy_id}:e{seq}")


def exit_order_id(strategy_id: str, seq: int) -> str:
    return validate_client_order_id(f"{strategy_id}:x{seq}")


def next_exit_id(strategy_id: str, seq: int, last_orders: tuple[str, ...]) -> str:
    """The id of the next exit order of position `seq`: `x{n}` first, then `x{n}.2`, `x{n}.3`, ..."""
    first = exit_order_id(strategy_id, seq)
    sent = sum(1 for order in last_orders if order == first or order.startswith(first + "."))
    return first if sent == 0 else validate_client_order_id(f"{first}.{sent + 1}")


def entry_seq_of(client_order_id: str) -> int:
    """The position number n of `{strategy}:e{n}` / `{strategy}:x{n}[.k]`; raises ValueError otherwise."""
    _, _, tail = client_order_id.rpartition(":")
    tail = tail.split(".", 1)[0] if tail.startswith("x") else tail
    if len(tail) < 2 or tail[0] not in "ex" or not tail[1:].isdigit():
        raise ValueError(f"{client_order_id!r} is not a Warden client order id")
    return int(tail[1:])


@dataclass(frozen=True)
class OrderIntent:
    """What someone wants done; the engine turns it into one venue order (or refuses)."""

    strategy_id: str
    account: str
    symbol: str
    purpose: Purpose
    quantity: float = 0.0  # entries: the size; exits: 0 = the whole position
    stop_loss: float | None = None  # entries: arm this stop level when filled
    generation: int = SYSTEM_GENERATION
    reason: str = ""
    created_at: float = field(default_factory=time.time)
    # Entries: the runtime's entry_seq when the intent was made. Single use: the engine sends
    # it only while the runtime is still there, so a stale queue entry never opens position n+1.
    position_seq: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "purpose", Purpose(self.purpose))
        if self.purpose is Purpose.ENTRY and not self.quantity > 0:
            raise ValueError(f"entry intent of {self.strategy_id} needs quantity > 0, got {self.quantity!r}")
        if self.quantity < 0:
            raise ValueError(f"intent of {self.strategy_id}: quantity must be >= 0, got {self.quantity!r}")
        if self.stop_loss is not None and not self.stop_loss > 0:
            raise ValueError(f"intent of {self.strategy_id}: stop_loss must be > 0, got {self.stop_loss!r}")

    def to_fields(self) -> dict[str, str]:
        """Flat string fields for the Redis queue."""
        return {k: ("" if v is None else str(v)) for k, v in asdict(self).items()}

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> OrderIntent:
        """Parse queue fields; raises ValueError naming the field that is wrong."""
        def text(name: str) -> str:
            value = fields.get(name)
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if value is None:
                raise ValueError(f"order intent: missing field {name!r}")
            return str(value)

        def number(name: str, kind: type = float) -> Any:
            raw = text(name)
            try:
                return kind(raw)
            except ValueError:
                raise ValueError(f"order intent: field {name!r} is not a {kind.__name__}: {raw!r}") from None

        stop = text("stop_loss") if "stop_loss" in fields else ""
        return cls(
            strategy_id=text("strategy_id"),
            account=text("account"),
            symbol=text("symbol"),
            purpose=Purpose(text("purpose")),
            quantity=number("quantity"),
            stop_loss=float(stop) if stop else None,
            generation=number("generation", int),
            reason=text("reason") if "reason" in fields else "",
            created_at=number("created_at"),
            position_seq=number("position_seq", int) if fields.get("position_seq") not in (None, "", b"") else None,
        )

    def with_quantity(self, quantity: float) -> OrderIntent:
        return replace(self, quantity=quantity)
