"""When may an order in doubt be called settled? Pure rules of DESIGN §3 / F29 / F30.

The client id is a lookup handle, not a duplicate guard: Binance accepts a second order
with the id of one that already filled, expired or was cancelled. So a NOT_FOUND from a
lookup proves nothing while the first send may still execute:

- a send that timed out or failed on the network may still be on the wire; the venue
  rejects it (-1021) only once its `recvWindow` has passed on the venue's clock;
- a send answered "unknown" (-1007/-1006/5xx) may still execute inside the venue; it is
  settled over a settle window, by the user-data stream or repeated lookups.

`final_not_found_at` says from when a NOT_FOUND is final; `order_state` turns an order
reply into what the position holds (`executedQty`, whatever the status). Never does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Mapping

from runtime.venue.outcomes import UNKNOWN_CODES, VenueOutcome

CLOCK_MARGIN_MS = 250  # venue clock estimate error we tolerate (ServerClock syncs to ~rtt/2)
LOOKUP_BACKOFF_S = (0.2, 0.4, 0.8, 1.6, 3.2, 5.0)  # between lookups of one order in doubt


class Doubt(StrEnum):
    NETWORK = "network"  # timeout / connection error: the request may still arrive
    VENUE = "venue"  # "unknown" reply (-1007/-1006/5xx): may still execute inside the venue


def doubt_of(outcome: VenueOutcome) -> Doubt:
    if outcome.code in UNKNOWN_CODES or (outcome.http_status or 0) >= 500:
        return Doubt.VENUE
    return Doubt.NETWORK


@dataclass(frozen=True)
class SettleTiming:
    """recv_window_ms: what every order carries; settle_window_s: how long an "unknown"
    reply may still execute (Binance gives no bound: `[venue] settle_window_s`, which must
    exceed the venue's late-execution horizon; a fill later than that is an excess to correct)."""

    recv_window_ms: int = 1000
    settle_window_s: float = 12.0

    def final_not_found_at(self, last_send_ms: float, doubt: Doubt | None) -> float:
        """Venue-clock ms from which a NOT_FOUND for a send completed at `last_send_ms` is final.

        `last_send_ms` is an upper bound of the request's signed timestamp (taken on the venue
        clock after the call returned). `doubt` None: unknown kind (after a restart): the stricter.
        """
        window = self.recv_window_ms + CLOCK_MARGIN_MS
        if doubt is not Doubt.NETWORK:
            window = max(window, self.settle_window_s * 1000.0)
        return last_send_ms + window


def lookup_delay(attempt: int) -> float:
    """Seconds before lookup number `attempt` (1-based) of an order in doubt."""
    return LOOKUP_BACKOFF_S[min(attempt, len(LOOKUP_BACKOFF_S)) - 1]


FINAL_LOOKUP_MARGIN_S = 0.01  # a lookup meant for the final moment goes this much after it


def until_next_lookup(backoff_s: float, final_at_ms: float | None, now_ms: float) -> float:
    """Seconds before the next lookup of an order in doubt: its backoff, but never past the moment
    its NOT_FOUND becomes final (issue 14, seed 4242: an exit waited 2.7 s past it for the backoff).
    Once that moment has passed, the backoff alone (a lookup that failed is not retried in a spin)."""
    if final_at_ms is None or final_at_ms <= now_ms:
        return backoff_s
    return min(backoff_s, (final_at_ms - now_ms) / 1000.0 + FINAL_LOOKUP_MARGIN_S)


FINAL_STATUSES = frozenset({"FILLED", "CANCELED", "EXPIRED", "EXPIRED_IN_MATCH", "REJECTED"})


@dataclass(frozen=True)
class OrderState:
    status: str
    executed_qty: float
    avg_price: float

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


def order_state(order: Mapping[str, Any] | None) -> OrderState | None:
    """The order's status and executedQty from a venue order object; None without one."""
    if not order or not order.get("status"):
        return None
    executed = float(order.get("executedQty") or 0.0)
    if order.get("status") == "FILLED" and not executed:
        executed = float(order.get("origQty") or 0.0)
    price = float(order.get("avgPrice") or order.get("price") or 0.0)
    return OrderState(str(order["status"]), executed, price)


QTY_EPSILON = 1e-12


def remainder(wanted: float, executed: float) -> float:
    """What an exit still has to sell after `executed` of `wanted` (0 when done)."""
    left = wanted - executed
    return left if left > QTY_EPSILON * max(1.0, wanted) else 0.0
