"""The simulated exchange's depth book and its diff-depth sequencing.

Invariant the whole module exists for: a snapshot taken at ``last_update_id = X``
equals the result of applying, in order, every ``depthUpdate`` with ``u <= X``.
So a client that follows Binance's "How to manage a local order book correctly"
(buffer, snapshot, drop ``u < lastUpdateId``, first applied event has
``U <= lastUpdateId <= u``, then ``pu == previous u``) ends with this book.

Like Binance futures, update ids advance by more than one between events, so a
client checking ``U == previous u + 1`` (the spot rule) instead of ``pu`` is
caught here. Pure data: no lock (the matching engine's lock guards it), no I/O.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from decimal import Decimal
from typing import Any


class DepthBook:
    """Price -> quantity on each side, plus the id of the last applied update."""

    def __init__(self, symbol: str, first_update_id: int = 1) -> None:
        self.symbol = symbol
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.last_update_id = first_update_id

    def apply(
        self,
        bid_changes: Mapping[Decimal, Decimal],
        ask_changes: Mapping[Decimal, Decimal],
        *,
        event_ms: int,
        rng: random.Random,
    ) -> dict[str, Any] | None:
        """Apply absolute quantities (0 deletes) and return the ``depthUpdate`` event, or None if nothing changed."""
        bids = {p: q for p, q in bid_changes.items() if self.bids.get(p, Decimal(0)) != q}
        asks = {p: q for p, q in ask_changes.items() if self.asks.get(p, Decimal(0)) != q}
        if not bids and not asks:
            return None
        for side, changes in ((self.bids, bids), (self.asks, asks)):
            for price, qty in changes.items():
                if qty == 0:
                    side.pop(price, None)
                else:
                    side[price] = qty
        previous = self.last_update_id
        first = previous + 1 + rng.randint(0, 3)  # futures ids skip: only pu links events
        final = first + rng.randint(0, len(bids) + len(asks))
        self.last_update_id = final
        return {
            "e": "depthUpdate",
            "E": event_ms,
            "T": event_ms - rng.randint(0, 5),
            "s": self.symbol,
            "U": first,
            "u": final,
            "pu": previous,
            "b": [[str(p), str(q)] for p, q in sorted(bids.items(), reverse=True)],
            "a": [[str(p), str(q)] for p, q in sorted(asks.items())],
        }

    def snapshot(self, limit: int | None = None) -> dict[str, Any]:
        """``/fapi/v1/depth`` body (without E/T): best levels first, as strings."""
        bids = sorted(self.bids.items(), reverse=True)[:limit]
        asks = sorted(self.asks.items())[:limit]
        return {
            "lastUpdateId": self.last_update_id,
            "bids": [[str(p), str(q)] for p, q in bids],
            "asks": [[str(p), str(q)] for p, q in asks],
        }

    def ticker(self, event_ms: int) -> dict[str, Any] | None:
        """``bookTicker``: best bid and ask with their quantities, or None while a side is empty."""
        bid, ask = self.best_bid(), self.best_ask()
        if bid is None or ask is None:
            return None
        return {"e": "bookTicker", "u": self.last_update_id, "s": self.symbol, "b": str(bid),
                "B": str(self.bids[bid]), "a": str(ask), "A": str(self.asks[ask]), "T": event_ms, "E": event_ms}

    def best_bid(self) -> Decimal | None:
        return max(self.bids) if self.bids else None

    def best_ask(self) -> Decimal | None:
        return min(self.asks) if self.asks else None
