"""One symbol's simulated market: price path, depth ladder, mark/funding, trades, liquidations.

The price follows a seeded geometric random walk (one step per depth tick), or
a scripted path set through admin, or jumps when told (``set_price``, spikes).
The depth book is a ladder of ``levels`` price levels per side around the
price; every step re-centres it and churns a few quantities, producing one
``depthUpdate`` with exactly the changes (see ``book.DepthBook``).

Pure data guarded by the matching engine's lock; events are returned, not sent.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from runtime.simexchange.book import DepthBook

FUNDING_PERIOD_MS = 8 * 3600 * 1000


@dataclass(frozen=True)
class SymbolSpec:
    """One symbol's contract and filters, as exchangeInfo serves them and the venue enforces them."""

    symbol: str
    tick: Decimal
    step: Decimal
    level_step: Decimal
    min_qty: Decimal = Decimal("0.001")
    max_qty: Decimal = Decimal("1000")
    market_max_qty: Decimal = Decimal("120")
    min_notional: Decimal = Decimal("5")
    min_price: Decimal = Decimal("0.0001")
    max_price: Decimal = Decimal("4529764")
    percent_up: Decimal = Decimal("1.05")
    percent_down: Decimal = Decimal("0.95")
    max_num_orders: int = 200
    max_num_algo_orders: int = 10
    quote_asset: str = "USDT"

    @classmethod
    def for_price(cls, symbol: str, price: float, tick: Decimal | None = None,
                  step: Decimal | None = None) -> SymbolSpec:
        """Filters from the start price, shaped like Binance's (BTC-like: tick 0.1, min notional 100)."""
        if tick is None:
            tick = Decimal("0.1") if price >= 10_000 else Decimal("0.01") if price >= 10 else Decimal("0.0001")
        step = step or Decimal("0.001")
        ticks_per_level = max(1, round(price * 1e-4 / float(tick)))
        big = price >= 10_000
        return cls(symbol, tick, step, tick * ticks_per_level, min_qty=step,
                   max_qty=Decimal(1000) if big else Decimal(round(100_000_000 / price)),
                   market_max_qty=Decimal(120) if big else Decimal(round(12_000_000 / price)),
                   min_notional=Decimal("100") if big else Decimal("5"),
                   min_price=tick, max_price=(Decimal(str(price)) * 50).quantize(tick))

    @property
    def base_asset(self) -> str:
        return self.symbol[: -len(self.quote_asset)] if self.symbol.endswith(self.quote_asset) else self.symbol

    def price(self, value: float | Decimal) -> Decimal:
        """Quantize a price to the tick (half-even; the venue's formatting)."""
        return Decimal(str(value)).quantize(self.tick)

    def qty(self, value: float | Decimal) -> Decimal:
        return Decimal(str(value)).quantize(self.step)

    def filters(self) -> list[dict[str, Any]]:
        """exchangeInfo ``filters`` (futures spell MIN_NOTIONAL's field ``notional``)."""
        return [
            {"filterType": "PRICE_FILTER", "minPrice": str(self.min_price), "maxPrice": str(self.max_price),
             "tickSize": str(self.tick)},
            {"filterType": "LOT_SIZE", "minQty": str(self.min_qty), "maxQty": str(self.max_qty),
             "stepSize": str(self.step)},
            {"filterType": "MARKET_LOT_SIZE", "minQty": str(self.min_qty), "maxQty": str(self.market_max_qty),
             "stepSize": str(self.step)},
            {"filterType": "MAX_NUM_ORDERS", "limit": self.max_num_orders},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": self.max_num_algo_orders},
            {"filterType": "MIN_NOTIONAL", "notional": str(self.min_notional)},
            {"filterType": "PERCENT_PRICE", "multiplierUp": str(self.percent_up),
             "multiplierDown": str(self.percent_down), "multiplierDecimal": "4"},
        ]


class SymbolMarket:
    """Price, book and derived streams of one symbol."""

    def __init__(self, spec: SymbolSpec, start_price: float, rng: random.Random, *, volatility: float,
                 levels: int, funding_rate: float, liquidation_rate: float) -> None:
        if start_price <= 0:
            raise ValueError(f"{spec.symbol}: start price must be > 0, got {start_price}")
        self.spec = spec
        self.symbol = spec.symbol
        self.start_price = float(start_price)
        self.rng = rng
        self.volatility = volatility
        self.levels = levels
        self.funding_rate = funding_rate
        self.liquidation_rate = liquidation_rate
        self._price = float(start_price)
        self._script: deque[float] = deque()
        self.book = DepthBook(spec.symbol, first_update_id=rng.randint(1_000_000, 2_000_000))
        self._agg_id = rng.randint(100_000, 200_000)
        self._trade_id = self._agg_id * 3
        bids, asks = self._ladder_changes()
        self.book.bids.update({p: q for p, q in bids.items() if q})
        self.book.asks.update({p: q for p, q in asks.items() if q})

    # -- price -----------------------------------------------------------------------

    @property
    def price(self) -> Decimal:
        """Last traded price, on the tick."""
        return self.spec.price(self._price)

    def set_price(self, price: float) -> None:
        """Jump to ``price`` now (admin, tests, spikes)."""
        if not math.isfinite(price) or price <= 0:
            raise ValueError(f"{self.symbol}: price must be a positive number, got {price!r}")
        self._price = float(price)

    def script(self, prices: Iterable[float]) -> None:
        """Follow these prices, one per step, then resume the random walk from the last."""
        path = [float(p) for p in prices]
        if any(not math.isfinite(p) or p <= 0 for p in path):
            raise ValueError(f"{self.symbol}: scripted prices must be positive numbers")
        self._script = deque(path)

    def step_price(self) -> None:
        """Advance one step: the next scripted price, else one random-walk move."""
        if self._script:
            self._price = self._script.popleft()
        elif self.volatility > 0:
            self._price *= math.exp(self.volatility * self.rng.gauss(0.0, 1.0))

    # -- book --------------------------------------------------------------------------

    def recenter(self, now_ms: int) -> dict[str, Any] | None:
        """Move the ladder to the current price and churn a few levels; the depthUpdate, or None."""
        bids, asks = self._ladder_changes()
        return self.book.apply(bids, asks, event_ms=now_ms, rng=self.rng)

    def _ladder_changes(self) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
        step = self.spec.level_step
        mid = Decimal(str(self._price))
        best_bid = (mid / step).to_integral_value(rounding=ROUND_FLOOR) * step
        if best_bid >= mid:
            best_bid -= step
        target_bids = [best_bid - k * step for k in range(self.levels)]
        target_asks = [best_bid + (k + 1) * step for k in range(self.levels)]
        changes = []
        for side, target in ((self.book.bids, target_bids), (self.book.asks, target_asks)):
            wanted = {self.spec.price(p) for p in target if p > 0}
            diff = {p: Decimal(0).quantize(self.spec.step) for p in side if p not in wanted}
            for price in wanted:
                if price not in side:
                    diff[price] = self._random_qty()
            kept = sorted(p for p in side if p in wanted)
            for price in self.rng.sample(kept, min(len(kept), 2)):
                diff[price] = self._random_qty()
            changes.append(diff)
        return changes[0], changes[1]

    def _random_qty(self) -> Decimal:
        return self.spec.qty(max(float(self.spec.step), round(self.rng.uniform(0.001, 5.0), 3)))

    # -- streams -------------------------------------------------------------------------

    def mark_event(self, now_ms: int) -> dict[str, Any]:
        """``markPriceUpdate``: mark = last price, index a hair below, funding ~ configured rate."""
        mark = self.price
        index = self.spec.price(self._price * (1 - 0.0001))
        funding = self.funding_rate + self.rng.uniform(-0.00001, 0.00001)
        next_funding = (now_ms // FUNDING_PERIOD_MS + 1) * FUNDING_PERIOD_MS
        return {"e": "markPriceUpdate", "E": now_ms, "s": self.symbol, "p": str(mark), "i": str(index),
                "P": str(index), "r": f"{funding:.8f}", "T": next_funding}

    def trade_event(self, now_ms: int, price: Decimal, qty: Decimal, buyer_is_maker: bool) -> dict[str, Any]:
        """``aggTrade`` for one (aggregated) trade."""
        self._agg_id += 1
        first = self._trade_id + 1
        self._trade_id += self.rng.randint(1, 3)
        return {"e": "aggTrade", "E": now_ms, "a": self._agg_id, "s": self.symbol, "p": str(price),
                "q": str(qty), "f": first, "l": self._trade_id, "T": now_ms, "m": buyer_is_maker}

    def noise_trade(self, now_ms: int) -> dict[str, Any]:
        """A market participant's trade at the current price."""
        return self.trade_event(now_ms, self.price, self._random_qty(), self.rng.random() < 0.5)

    def maybe_liquidation(self, now_ms: int) -> dict[str, Any] | None:
        """A random liquidation with probability ``liquidation_rate`` per step."""
        if self.liquidation_rate <= 0 or self.rng.random() >= self.liquidation_rate:
            return None
        side = "SELL" if self.rng.random() < 0.5 else "BUY"
        return self.liquidation_event(now_ms, side, self._random_qty(), None)

    def liquidation_event(self, now_ms: int, side: str, qty: Decimal, price: Decimal | None) -> dict[str, Any]:
        """``forceOrder`` for one liquidation order."""
        px = price if price is not None else self.price
        return {"e": "forceOrder", "E": now_ms, "o": {
            "s": self.symbol, "S": side, "o": "LIMIT", "f": "IOC", "q": str(qty), "p": str(px), "ap": str(px),
            "X": "FILLED", "l": str(qty), "z": str(qty), "T": now_ms}}
