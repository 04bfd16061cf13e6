"""The `Runtime` record of `runtime:{id}` and its schema check (F14).

Pure code: no Redis here. `Runtime.to_redis()` gives the hash fields to store;
`parse_runtime(raw, key)` is the only way back and accepts nothing it could not
have written: a missing, unexpected, duplicated or malformed field raises
`CorruptState(key, field, problem)`, and the caller SAFETY_ABORTs that strategy
only. Must never raise anything but CorruptState on bad input.

Stored form (a Redis hash, every field always present):
  position         none | bought | sold | exited_by_sl | failed
  status           active | paused | stopped | disabled | failed
  last_orders      comma-separated client order ids, oldest first ("" = none);
                   client order ids cannot contain commas ([.A-Za-z0-9:/_-]{1,36})
  generation       canonical decimal integer (no sign, no leading zeros)
  updated_at       epoch seconds, repr() of a finite float >= 0
  reason           free text, "" when there is none
  quantity         open quantity, finite float >= 0 (0 when flat)
  entry_price      average entry price, finite float >= 0 (0 when unknown/flat)
  stop_loss        protective stop level, finite float > 0, "" = none
  entry_seq        how many entries were sent: the deterministic client order
                   ids are derived from it (canonical integer)
  pending_order    client order id whose outcome is not settled yet, "" = none;
                   while set, the strategy may not send again (DESIGN §3 UNKNOWN)
  pending_purpose  what the pending order was for (entry | exit | stop_loss |
                   flatten); set exactly when pending_order is
  pending_since    venue-clock epoch seconds by which the pending order's last send
                   had completed (0 = unknown): a lookup's NOT_FOUND is final only once
                   its recvWindow / settle window has passed after it (DESIGN §3).
                   Optional on load (records written before it existed read as 0).
  pending_sends    how many sends of the pending order may have left this process
                   (canonical integer): 1 from the journaled intent on (its first attempt);
                   0 only once every attempt so far was deferred locally (the request
                   budget) with nothing on the wire, so a restart settles it by one
                   NOT_FOUND instead of waiting out the settle window; raised again before
                   a later attempt goes. Meaningful while pending_order is set. Optional
                   on load: records written before it existed read as 1 (may have left).

The last seven fields carry what a cold start (F19) needs to re-arm stops and to
refuse a second send of an unsettled order. PURPOSES mirrors
`actors.orders.Purpose`; the store does not import the actors layer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from enum import StrEnum

from runtime.store._codec import nonnegative_float, show, text
from runtime.store.errors import CorruptState

CLIENT_ORDER_ID = re.compile(r"[.A-Za-z0-9:/_-]{1,36}")
MAX_LAST_ORDERS = 16
MAX_REASON_CHARS = 1000
MAX_INT = 2**63 - 1
PURPOSES = ("entry", "exit", "stop_loss", "flatten")
_CANONICAL_INT = re.compile(r"0|[1-9][0-9]{0,18}")


class Position(StrEnum):
    NONE = "none"
    BOUGHT = "bought"
    SOLD = "sold"
    EXITED_BY_SL = "exited_by_sl"
    FAILED = "failed"


class Status(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    STOPPED = "stopped"
    DISABLED = "disabled"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Runtime:
    """One strategy's runtime state. Constructing an invalid one raises ValueError."""

    position: Position = Position.NONE
    status: Status = Status.ACTIVE
    last_orders: tuple[str, ...] = ()
    generation: int = 0
    updated_at: float = 0.0
    reason: str = ""
    quantity: float = 0.0
    entry_price: float = 0.0
    stop_loss: float | None = None
    entry_seq: int = 0
    pending_order: str = ""
    pending_purpose: str = ""
    pending_since: float = 0.0
    pending_sends: int = 1  # unknown counts as "may have left": only a proven local deferral says 0

    def __post_init__(self) -> None:
        # Accept the plain strings / lists / ints a caller naturally has; keep canonical types.
        for name, enum in (("position", Position), ("status", Status)):
            value = getattr(self, name)
            if isinstance(value, str) and not isinstance(value, enum) and value in enum._value2member_map_:
                object.__setattr__(self, name, enum(value))
        if isinstance(self.last_orders, list):
            object.__setattr__(self, "last_orders", tuple(self.last_orders))
        for name in FLOAT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
        for name in FIELDS:
            problem = _CHECKS[name](getattr(self, name))
            if problem:
                raise ValueError(f"Runtime.{name}: {problem}")
        problem = _pending_pair(self.pending_order, self.pending_purpose)
        if problem:
            raise ValueError(f"Runtime.pending_purpose: {problem}")

    def to_redis(self) -> dict[str, str]:
        """The hash fields to store (all of them, always)."""
        return {
            "position": self.position.value,
            "status": self.status.value,
            "last_orders": ",".join(self.last_orders),
            "generation": str(self.generation),
            "updated_at": repr(self.updated_at),
            "reason": self.reason,
            "quantity": repr(self.quantity),
            "entry_price": repr(self.entry_price),
            "stop_loss": "" if self.stop_loss is None else repr(self.stop_loss),
            "entry_seq": str(self.entry_seq),
            "pending_order": self.pending_order,
            "pending_purpose": self.pending_purpose,
            "pending_since": repr(self.pending_since),
            "pending_sends": str(self.pending_sends),
        }

    def with_order(self, client_order_id: str) -> Runtime:
        """A copy with `client_order_id` appended to last_orders (bounded, oldest dropped)."""
        orders = (*self.last_orders, client_order_id)[-MAX_LAST_ORDERS:]
        return replace(self, last_orders=orders)


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Runtime))
FLOAT_FIELDS = ("updated_at", "quantity", "entry_price", "stop_loss", "pending_since")
OPTIONAL_FIELDS = {"pending_since": "0.0", "pending_sends": "1"}  # added later: older records lack them


# -- per-field checks: value -> problem or None ---------------------------------------
def _enum(enum: type[StrEnum]) -> Callable[[object], str | None]:
    return lambda v: None if isinstance(v, enum) else f"{show(v)} is not one of {', '.join(enum)}"


def _integer(v: object) -> str | None:
    if not isinstance(v, int) or isinstance(v, bool):
        return f"expected an integer, found {type(v).__name__}"
    return None if 0 <= v <= MAX_INT else f"{v} outside 0..2**63-1"


def _nonnegative(v: object) -> str | None:
    if not isinstance(v, float):
        return f"expected a float, found {type(v).__name__}"
    return None if math.isfinite(v) and v >= 0.0 else f"{v!r} is not a finite number >= 0"


def _stop_level(v: object) -> str | None:
    if v is None:
        return None
    if not isinstance(v, float):
        return f"expected a float or None, found {type(v).__name__}"
    return None if math.isfinite(v) and v > 0.0 else f"{v!r} is not a finite price > 0"


def _order_id(v: object, allow_empty: bool = False) -> str | None:
    if allow_empty and v == "":
        return None
    if isinstance(v, str) and CLIENT_ORDER_ID.fullmatch(v):
        return None
    return f"{show(v)} is not a client order id ([.A-Za-z0-9:/_-]{{1,36}})"


def _last_orders(v: object) -> str | None:
    if not isinstance(v, tuple):
        return f"expected a tuple of client order ids, found {type(v).__name__}"
    if len(v) > MAX_LAST_ORDERS:
        return f"{len(v)} entries, at most {MAX_LAST_ORDERS} allowed"
    return next((p for p in map(_order_id, v) if p), None)


def _reason(v: object) -> str | None:
    if not isinstance(v, str):
        return f"expected text, found {type(v).__name__}"
    if len(v) > MAX_REASON_CHARS:
        return f"{len(v)} characters, at most {MAX_REASON_CHARS} allowed"
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return "not encodable as UTF-8"
    return None


def _purpose(v: object) -> str | None:
    return None if v == "" or v in PURPOSES else f"{show(v)} is not empty or one of {', '.join(PURPOSES)}"


def _pending_pair(order: str, purpose: str) -> str | None:
    if (order == "") != (purpose == ""):
        return f"pending_order {order!r} and pending_purpose {purpose!r} must be set together"
    return None


_CHECKS: dict[str, Callable[[object], str | None]] = {
    "position": _enum(Position),
    "status": _enum(Status),
    "last_orders": _last_orders,
    "generation": _integer,
    "updated_at": _nonnegative,
    "reason": _reason,
    "quantity": _nonnegative,
    "entry_price": _nonnegative,
    "stop_loss": _stop_level,
    "entry_seq": _integer,
    "pending_order": lambda v: _order_id(v, allow_empty=True),
    "pending_purpose": _purpose,
    "pending_since": _nonnegative,
    "pending_sends": _integer,
}
assert set(_CHECKS) == set(FIELDS)


# -- parsing ---------------------------------------------------------------------------
def parse_runtime(raw: Mapping[bytes | str, bytes | str], key: str = "runtime") -> Runtime:
    """Schema-check a raw `runtime:{id}` hash and build the record.

    Raises CorruptState(key, field, problem) on the first problem found
    (unexpected/duplicate fields first, then fields in declaration order).
    """
    if not isinstance(raw, Mapping):
        raise CorruptState(key, "type", f"expected a hash, found {type(raw).__name__}")
    values: dict[str, str] = {}
    for raw_name, raw_value in raw.items():
        name = text(raw_name, key, show(raw_name))
        if name not in FIELDS:
            raise CorruptState(key, name if name.isidentifier() else show(name), "unexpected field")
        if name in values:
            raise CorruptState(key, name, "appears twice")
        values[name] = text(raw_value, key, name)
    for name, default in OPTIONAL_FIELDS.items():
        values.setdefault(name, default)
    for name in FIELDS:
        if name not in values:
            raise CorruptState(key, name, "missing")

    candidate: dict[str, object] = {}
    for name in FIELDS:
        candidate[name] = _decode(name, values[name], key)
        problem = _CHECKS[name](candidate[name])
        if problem:
            raise CorruptState(key, name, problem)
    problem = _pending_pair(values["pending_order"], values["pending_purpose"])
    if problem:
        raise CorruptState(key, "pending_purpose", problem)
    return Runtime(**candidate)  # type: ignore[arg-type]


def _decode(name: str, value: str, key: str) -> object:
    """The stored text of one field -> its Python value (checked afterwards by _CHECKS)."""
    if name == "position":
        return Position(value) if value in Position._value2member_map_ else value
    if name == "status":
        return Status(value) if value in Status._value2member_map_ else value
    if name == "last_orders":
        return tuple(value.split(",")) if value else ()
    if name in ("generation", "entry_seq", "pending_sends"):
        if not _CANONICAL_INT.fullmatch(value) or int(value) > MAX_INT:
            raise CorruptState(key, name, f"not a canonical integer in 0..2**63-1: {show(value)}")
        return int(value)
    if name == "stop_loss" and value == "":
        return None
    if name in FLOAT_FIELDS:
        return nonnegative_float(value, key, name)
    return value  # reason, pending_order, pending_purpose
