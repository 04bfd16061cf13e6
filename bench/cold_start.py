"""Cold start with 1,000 strategies, reconciled (F19): settle the journal, load and
schema-check every runtime, re-arm stops, compare positions with the venue, re-check stops
against the last price. Half the strategies hold a position with a stop; 50 intents are
journaled without an outcome (the crash case) and are settled by lookup at the venue.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from actors.recovery import cold_start
from actors.services import Services
from bench.stop_path import PRICE, SYMBOL, start_exchange
from runtime.config import Config, FeedsConfig, NodeConfig, StrategyConfig
from runtime.simexchange import DEFAULT_API_KEY, DEFAULT_API_SECRET
from runtime.store.embedded import EmbeddedRedis
from runtime.store.runtime_state import Position, Runtime
from runtime.store.store import Store
from runtime.venue import BinanceFuturesConnector

QTY = 0.001


def run(n: int = 1000, unsettled: int = 50) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        redis = EmbeddedRedis(Path(tmp)).start()
        exchange, rest_url = start_exchange()
        try:
            store = Store(redis.url, "cold")
            venue = BinanceFuturesConnector(rest_url, DEFAULT_API_KEY, DEFAULT_API_SECRET)
            strategies = tuple(StrategyConfig(id=f"c{i}", kind="scheduled", symbol=SYMBOL, account="bench")
                               for i in range(n))
            held = 0
            for i, strategy in enumerate(strategies):
                if i % 2 == 0:
                    runtime = Runtime(position=Position.BOUGHT, quantity=QTY, entry_price=PRICE,
                                      stop_loss=PRICE * 0.9, entry_seq=1)
                    held += 1
                    store.write_runtime(strategy.id, runtime)
            venue.place_order(SYMBOL, "BUY", "MARKET", round(QTY * held, 6), "cold:seed")
            for i in range(unsettled):  # crashed between "journaled" and "sent": never reached the venue
                sid = f"c{2 * i + 1}"
                store.journal_intent(f"{sid}:e1", {"strategy_id": sid, "symbol": SYMBOL, "purpose": "entry",
                                                   "account": "bench", "side": "BUY", "quantity": repr(QTY)})
            config = Config(node=NodeConfig(name="bench"), feeds=FeedsConfig(symbols=(SYMBOL,)),
                            strategies=strategies)
            services = Services(config=config, store=store, venue=venue)
            started = time.perf_counter()
            report = cold_start(services)
            elapsed = time.perf_counter() - started
            services.timers.stop()
            venue.close()
            store.close()
        finally:
            exchange.kill()
            exchange.wait(10)
            redis.stop()
    return {
        "strategies": n,
        "unsettled_intents": unsettled,
        "cold_start_s": round(elapsed, 3),
        "stops_rearmed": len(report.armed),
        "settled": len(report.settled),
        "drift": report.drift,
    }
