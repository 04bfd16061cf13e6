"""Services: the shared, thread-safe objects every trading actor is handed at start.

They outlive actor restarts (the stop book, the fence, the runtime cache), which is the
point: a restarted actor finds the world as its predecessor left it. Messages between
actors go through the directory by node id.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from actors.directory import Directory
from actors.gate_board import GateBoard
from actors.messages import CancelStrategy, DirectIntent, Wake
from actors.orders import OrderIntent
from actors.pipeline import RuntimeCache
from actors.protection import ProtectiveStops
from actors.stop_book import StopBook
from actors.ticks import TickSubscriptions
from actors.timers import TimerWheel
from runtime.config import Config
from runtime.store.errors import StoreUnavailable
from runtime.store.queue import Priority as QueuePriority
from supervision import Fence

ENGINE = "execution-engine"


def _allowed() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


@dataclass
class Services:
    config: Config
    store: Any  # runtime.store.Store
    venue: Any  # runtime.venue.BinanceFuturesConnector
    directory: Directory = field(default_factory=Directory)
    fence: Fence = field(default_factory=Fence)
    stops: StopBook = field(default_factory=StopBook)
    timers: TimerWheel = field(default_factory=TimerWheel)
    gate: GateBoard = field(default_factory=GateBoard)
    ticks: TickSubscriptions = field(default_factory=TickSubscriptions)
    runtime_cache: RuntimeCache = field(default_factory=RuntimeCache)
    protective: ProtectiveStops = field(default_factory=ProtectiveStops)  # positions held by a venue-side stop
    cold_writes: threading.Event = field(default_factory=_allowed)  # cleared by the disk monitor at 95 %
    metrics: Any = None  # runtime.metrics.Metrics

    def submit(self, intent: OrderIntent) -> bool:
        """Queue an intent durably and wake the engine. Exits bypass a dead store."""
        priority = QueuePriority.STOP if intent.purpose.reduces_risk else QueuePriority.NORMAL
        try:
            self.store.enqueue(intent.to_fields(), priority)
        except StoreUnavailable:
            if not intent.purpose.reduces_risk:
                logger.bind(component="execution-engine", event="order_refused",
                            details={"strategy": intent.strategy_id, "reason": "store unavailable"},
                            action_taken="entry not queued").warning("order_refused")
                return False
            return self.directory.tell(ENGINE, DirectIntent(intent))
        return self.directory.tell(ENGINE, Wake())

    def engine_cancel(self, strategy_id: str) -> None:
        self.directory.tell(ENGINE, CancelStrategy(strategy_id))
