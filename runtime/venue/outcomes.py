"""Every venue reply becomes exactly one typed ``VenueOutcome`` here, at the edge.

Nothing above the connector looks at an HTTP status or a Binance error code:
the execution engine branches on ``OutcomeKind`` alone (DESIGN §4, §5 F1-F5).
``classify`` is a pure function of (status, body, headers) plus what the caller
was doing, so the whole table is unit-testable without a socket.

The one rule that matters most: for a request that changes venue state
(``mutating=True``: place or cancel), any reply that does not *prove* the
request was refused is ``UNKNOWN`` — the order may exist. The engine must look
the client id up before it sends again. For reads the same situations are
merely ``REJECTED_TRANSIENT``: nothing changed, ask again.

Deliberate deviations from a naive table (argued in the module's tests):
- -1022 (bad signature) is ``TOKEN_INVALID``: the secret is wrong for every
  strategy of the account, retrying cannot help, an operator must act.
- a 5xx without an explicit failure message is ``UNKNOWN`` for mutating calls
  (Binance: "the execution status is UNKNOWN and could have been a success"),
  ``REJECTED_TRANSIENT`` for reads. 503 "Service Unavailable" and -1008 are
  documented failures, hence transient.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import requests


class OutcomeKind(str, Enum):
    """What happened to one request, in the words of the failure matrix."""

    ACCEPTED = "ACCEPTED"  # the venue has it (order open/closed, or a read answered)
    FILLED = "FILLED"  # the order executed (fully)
    REJECTED_PERMANENT = "REJECTED_PERMANENT"  # refused; retrying the same request cannot succeed (F2)
    REJECTED_TRANSIENT = "REJECTED_TRANSIENT"  # refused or unanswered but nothing changed; retry as F1
    RATE_LIMITED = "RATE_LIMITED"  # 429/418 or local budget; wait retry_after_s (F5)
    UNKNOWN = "UNKNOWN"  # a mutating request may or may not have executed: look up before resend (F1/F4)
    TOKEN_INVALID = "TOKEN_INVALID"  # credentials refused: no retry, SAFETY_ABORT, pause the account (F3)
    DUPLICATE = "DUPLICATE"  # -4116: an order with this client id already exists
    NOT_FOUND = "NOT_FOUND"  # the venue has no order with this id


class Expect(Enum):
    """The shape a successful reply must have, checked before it is trusted."""

    ANY = "any"  # any JSON value
    ORDER = "order"  # an order object from /fapi/v1/order
    ALGO_ORDER = "algo_order"  # an algo (conditional) order object from /fapi/v1/algoOrder


ORDER_STATUSES_FILLED = frozenset({"FILLED"})
ORDER_STATUSES_LIVE = frozenset({"NEW", "PARTIALLY_FILLED"})
ORDER_STATUSES_CLOSED = frozenset({"CANCELED", "EXPIRED", "REJECTED", "EXPIRED_IN_MATCH"})
ALGO_STATUSES_FILLED = frozenset({"TRIGGERED", "FINISHED"})
ALGO_STATUSES_OTHER = frozenset({"NEW", "TRIGGERING", "CANCELED", "EXPIRED", "REJECTED"})

UNKNOWN_CODES = frozenset({-1000, -1006, -1007})  # "execution status unknown"
TOKEN_CODES = frozenset({-1002, -1022, -2014, -2015})
RATE_CODES = frozenset({-1003, -1015})
TRANSIENT_CODES = frozenset({-1001, -1008, -1021})
NOT_FOUND_CODES = frozenset({-2013})
DUPLICATE_CODES = frozenset({-4116})
CLOCK_SKEW_CODE = -1021


@dataclass(frozen=True)
class VenueOutcome:
    """One request's outcome. ``order`` and ``data`` are parsed JSON; treat them as read-only.

    ``sent`` is False only when the request provably never left this process
    (local budget refusal), which is the one case where even a mutating call
    is known not to have executed without asking the venue.
    """

    kind: OutcomeKind
    code: int | None = None
    message: str = ""
    http_status: int | None = None
    retry_after_s: float | None = None
    order: Mapping[str, Any] | None = None
    client_order_id: str | None = None
    clock_skew: bool = False
    sent: bool = True
    data: Any = None

    @property
    def ok(self) -> bool:
        """The request did what was asked (order accepted/filled, read answered)."""
        return self.kind in (OutcomeKind.ACCEPTED, OutcomeKind.FILLED)

    @property
    def order_status(self) -> str | None:
        """``status`` of an order, or ``algoStatus`` of an algo order, if one came back."""
        if not self.order:
            return None
        return self.order.get("status") or self.order.get("algoStatus")

    @property
    def retryable(self) -> bool:
        """Safe to send the same request again after ``retry_after_s`` (if any)."""
        return self.kind in (OutcomeKind.REJECTED_TRANSIENT, OutcomeKind.RATE_LIMITED)

    @property
    def needs_lookup(self) -> bool:
        """The order may exist: query by client id before any resend (DESIGN §3)."""
        return self.kind in (OutcomeKind.UNKNOWN, OutcomeKind.DUPLICATE)

    def describe(self) -> str:
        """One line for logs and the status tree."""
        parts = [self.kind.value]
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.http_status is not None:
            parts.append(f"http={self.http_status}")
        if self.client_order_id:
            parts.append(f"client_order_id={self.client_order_id}")
        if self.retry_after_s is not None:
            parts.append(f"retry_after_s={self.retry_after_s:g}")
        if self.message:
            parts.append(self.message)
        return " ".join(parts)


class MalformedReply(ValueError):
    """A venue reply that does not have the shape the protocol promises; names what is wrong."""


def parse_retry_after(headers: Mapping[str, str] | None, *, now_s: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), else None."""
    if not headers:
        return None
    raw = _header(headers, "Retry-After")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now_s is None else now_s))


def parse_used_weight(headers: Mapping[str, str] | None) -> int | None:
    """``X-MBX-USED-WEIGHT-1M`` as an int, or None when absent or garbled."""
    if not headers:
        return None
    raw = _header(headers, "X-MBX-USED-WEIGHT-1M")
    if raw is None:
        return None
    try:
        return int(raw.strip())
    except ValueError:
        return None


def classify(
    http_status: int,
    body: bytes | str | Any,
    headers: Mapping[str, str] | None = None,
    *,
    mutating: bool = False,
    expect: Expect = Expect.ANY,
    client_order_id: str | None = None,
) -> VenueOutcome:
    """Turn one HTTP reply into one outcome. Pure; never raises on bad input.

    ``body`` may be raw bytes/str (parsed here) or an already-parsed JSON value.
    """
    status = int(http_status)
    retry_after = parse_retry_after(headers)
    payload, parse_error = _parse_body(body)
    code, msg = _error_fields(payload)
    base = {"http_status": status, "client_order_id": client_order_id, "code": code}

    is_error = status >= 400 or (code is not None and code < 0)
    if not is_error:
        return _classify_success(status, payload, parse_error, mutating, expect, client_order_id)

    text = msg or (f"non-JSON error body: {_excerpt(body)!r}" if parse_error else "")
    if status in (418, 429) or code in RATE_CODES:
        what = "IP banned (418)" if status == 418 else "rate limited"
        return VenueOutcome(OutcomeKind.RATE_LIMITED, message=f"{what}: {text}".rstrip(": "),
                            retry_after_s=retry_after, **base)
    if status == 503 and "service unavailable" in text.lower():  # documented as a failure: not executed
        return VenueOutcome(OutcomeKind.REJECTED_TRANSIENT, message=f"HTTP 503 service unavailable: {text}", **base)
    if code is not None:
        return _classify_code(code, status, text, mutating, base)
    if status == 401:
        return VenueOutcome(OutcomeKind.TOKEN_INVALID, message=f"HTTP 401 unauthorized: {text}".rstrip(": "), **base)
    where = "5xx" if status >= 500 else "4xx"
    return _unknown_or_transient(mutating, f"HTTP {status} ({where}) without a venue error code: {text}", **base)


def classify_exception(
    exc: BaseException, *, mutating: bool, client_order_id: str | None = None
) -> VenueOutcome:
    """Transport failures: no reply means no proof, so mutating calls are UNKNOWN (F1, F4)."""
    if isinstance(exc, (requests.Timeout, TimeoutError)):
        what = f"no reply within timeout ({type(exc).__name__})"
    elif isinstance(exc, (requests.ConnectionError, ConnectionError)):
        what = f"connection error ({type(exc).__name__}: {_short(exc)})"
    else:
        what = f"transport error ({type(exc).__name__}: {_short(exc)})"
    return _unknown_or_transient(mutating, what, client_order_id=client_order_id)


def malformed(
    what: str, *, mutating: bool, http_status: int | None = None, client_order_id: str | None = None
) -> VenueOutcome:
    """A reply we cannot trust: UNKNOWN for mutating calls (it may have executed), else transient."""
    return _unknown_or_transient(mutating, f"malformed venue reply: {what}", http_status=http_status,
                                 client_order_id=client_order_id)


# -- internals -----------------------------------------------------------------


def _classify_code(code: int, status: int, text: str, mutating: bool, base: dict[str, Any]) -> VenueOutcome:
    if code == CLOCK_SKEW_CODE:
        return VenueOutcome(OutcomeKind.REJECTED_TRANSIENT, message=f"timestamp outside recvWindow: {text}",
                            clock_skew=True, **base)
    if code in UNKNOWN_CODES:
        return _unknown_or_transient(mutating, f"venue says execution status unknown: {text}", **base)
    if code in TOKEN_CODES:
        return VenueOutcome(OutcomeKind.TOKEN_INVALID, message=f"credentials refused: {text}", **base)
    if code in DUPLICATE_CODES:
        return VenueOutcome(OutcomeKind.DUPLICATE, message=f"client order id already used: {text}", **base)
    if code in NOT_FOUND_CODES or (code == -2011 and "unknown order" in text.lower()) \
            or "does not exist" in text.lower():
        return VenueOutcome(OutcomeKind.NOT_FOUND, message=f"no such order: {text}", **base)
    if code in TRANSIENT_CODES:
        return VenueOutcome(OutcomeKind.REJECTED_TRANSIENT, message=text, **base)
    if status >= 500:
        return _unknown_or_transient(mutating, f"HTTP {status} with code {code}: {text}", **base)
    return VenueOutcome(OutcomeKind.REJECTED_PERMANENT, message=text, **base)


def _classify_success(
    status: int, payload: Any, parse_error: str | None, mutating: bool, expect: Expect, client_order_id: str | None
) -> VenueOutcome:
    if parse_error is not None:
        return malformed(parse_error, mutating=mutating, http_status=status, client_order_id=client_order_id)
    try:
        if expect is Expect.ORDER:
            kind = _order_kind(payload, client_order_id, "clientOrderId", "status", ("orderId", "symbol"))
        elif expect is Expect.ALGO_ORDER:
            kind = _order_kind(payload, client_order_id, "clientAlgoId", "algoStatus", ("algoId", "symbol"))
        else:
            return VenueOutcome(OutcomeKind.ACCEPTED, http_status=status, client_order_id=client_order_id,
                                data=payload)
    except MalformedReply as exc:
        return malformed(str(exc), mutating=mutating, http_status=status, client_order_id=client_order_id)
    state = payload.get("status") or payload.get("algoStatus")
    return VenueOutcome(kind, http_status=status, client_order_id=client_order_id, order=payload,
                        message=f"order {state}")


def _order_kind(
    payload: Any, client_order_id: str | None, id_field: str, status_field: str, required: tuple[str, ...]
) -> OutcomeKind:
    if not isinstance(payload, dict):
        raise MalformedReply(f"expected an order object, got {type(payload).__name__}")
    for field in (id_field, status_field, *required):
        if field not in payload:
            raise MalformedReply(f"order reply missing field {field!r}")
    if client_order_id is not None and payload[id_field] != client_order_id:
        raise MalformedReply(f"order reply is for {id_field}={payload[id_field]!r}, expected {client_order_id!r}")
    state = payload[status_field]
    if status_field == "status":
        if state in ORDER_STATUSES_FILLED:
            return OutcomeKind.FILLED
        if state in ORDER_STATUSES_LIVE or state in ORDER_STATUSES_CLOSED:
            return OutcomeKind.ACCEPTED
    else:
        if state in ALGO_STATUSES_FILLED:
            return OutcomeKind.FILLED
        if state in ALGO_STATUSES_OTHER:
            return OutcomeKind.ACCEPTED
    raise MalformedReply(f"order reply has unknown {status_field} {state!r}")


def _unknown_or_transient(mutating: bool, message: str, **fields: Any) -> VenueOutcome:
    """The one place the UNKNOWN-vs-retry rule lives: doubt about a mutation is UNKNOWN, about a read transient."""
    kind = OutcomeKind.UNKNOWN if mutating else OutcomeKind.REJECTED_TRANSIENT
    return VenueOutcome(kind, message=message, **fields)


def _parse_body(body: Any) -> tuple[Any, str | None]:
    if isinstance(body, (bytes, bytearray)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return None, f"reply is not UTF-8 text: {_excerpt(body)!r}"
    if isinstance(body, str):
        if not body.strip():
            return None, "reply body is empty"
        try:
            return json.loads(body), None
        except json.JSONDecodeError as exc:
            return None, f"reply is not JSON ({exc.msg} at char {exc.pos}): {_excerpt(body)!r}"
    return body, None


def _error_fields(payload: Any) -> tuple[int | None, str]:
    if not isinstance(payload, dict) or "code" not in payload:
        return None, ""
    try:
        code = int(payload["code"])
    except (TypeError, ValueError):
        return None, str(payload.get("msg", ""))
    return code, str(payload.get("msg", ""))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                return candidate
    return value


def _excerpt(body: Any, limit: int = 80) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else str(body)
    return text[:limit]


def _short(exc: BaseException, limit: int = 160) -> str:
    return str(exc)[:limit]
