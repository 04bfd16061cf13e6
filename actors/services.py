"""Services: the shared, thread-safe objects every trading actor is handed at start.

They outlive actor restarts (the stop book, the fence, the runtime cache), which is the
point: a restarted actor finds the world as its predecessor left it. Messages between
actors go through the directory by node id.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from actors.cold_stops import SnapshotWriter
from actors.core.retry import RetryConfig, RetryPolicy
from actors.core.settle import SettleTiming
from actors.directory import Directory
from actors.gate_board import GateBoard
from actors.node_ids import ENGINE
from actors.messages import CancelStrategy, DirectIntent, RateLimited, Wake
from actors.orders import OrderIntent, Purpose
from actors.pipeline import OrderPipeline, RuntimeCache
from actors.ports import OrderStore, Venue
from actors.protection import ProtectiveStops
from actors.stop_book import StopBook
from actors.ticks import TickSubscriptions
from actors.timers import TimerWheel
from runtime.config import Config
from runtime.logging import log_event
from runtime.metrics import Metrics
from runtime.store.errors import StoreUnavailable
from runtime.store.queue import Priority as QueuePriority
from supervision import Fence


def _allowed() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


@dataclass
class Services:
    config: Config
    store: OrderStore  # runtime.store.Store
    venue: Venue  # runtime.venue.BinanceFuturesConnector
    directory: Directory = field(default_factory=Directory)
    fence: Fence = field(default_factory=Fence)
    stops: StopBook = field(default_factory=StopBook)
    timers: TimerWheel = field(default_factory=TimerWheel)
    gate: GateBoard = field(default_factory=GateBoard)
    ticks: TickSubscriptions = field(default_factory=TickSubscriptions)
    runtime_cache: RuntimeCache = field(default_factory=RuntimeCache)
    protective: ProtectiveStops = field(default_factory=ProtectiveStops)  # positions held by a venue-side stop
    cold_writes: threading.Event = field(default_factory=_allowed)  # cleared by the disk monitor at 95 %
    metrics: Metrics | None = None
    retry: RetryConfig = field(default_factory=RetryConfig)
    ws_url: str = ""  # the venue's WebSocket base: the engine's user-data stream (/private)
    generation: int = 0  # this process's writer generation (runtime.store.Generations), 0 = unfenced
    generation_deferred: bool = False  # Redis was down at start: the cold start reserves the generation
    snapshot_path: Path | None = None  # the local snapshot of the last known runtimes (actors.cold_stops)
    pipeline: OrderPipeline = field(init=False)
    snapshots: SnapshotWriter | None = field(init=False)

    def __post_init__(self) -> None:
        # The one OrderPipeline: the engine, the settle loop, the cold start, operator commands
        # and the account pause all change runtimes through its per-strategy serialization.
        venue = self.config.venue
        self.pipeline = OrderPipeline(
            self.store, self.venue, self.gate, self.fence, self.stops, RetryPolicy(self.retry),
            cache=self.runtime_cache,
            timing=SettleTiming(getattr(self.venue, "recv_window_ms", venue.recv_window_ms), venue.settle_window_s),
            entry_bound_s=venue.entry_bound_s,
            on_rate_limited=lambda: self.directory.tell(ENGINE, RateLimited(time.time())),
            generation=self.generation,
            protective=self.protective,
        )
        self.snapshots = None if self.snapshot_path is None else \
            SnapshotWriter(self.snapshot_path, self.runtime_cache, self.protective)

    def claim_generation(self) -> None:
        """A process started while Redis was down writes unfenced (generation 0: a number of its
        own could be below the stored ones, and every write would be refused as stale once Redis
        is back). Its writer generation, above every earlier process's, is reserved here, by the
        cold start, before anything is written. Raises StoreUnavailable."""
        if not self.generation_deferred:
            return
        self.generation = self.pipeline.generation = self.store.generations()()
        self.generation_deferred = False

    def submit(self, intent: OrderIntent) -> bool:
        """Queue an intent durably and wake the engine. Exits bypass a dead store.

        An entry is stamped with the position it is meant for (single use, case 6 of issue 10).
        """
        if intent.purpose is Purpose.ENTRY and intent.position_seq is None:
            intent = replace(intent, position_seq=self._entry_seq(intent.strategy_id))
        priority = QueuePriority.STOP if intent.purpose.reduces_risk else QueuePriority.NORMAL
        try:
            self.store.enqueue(intent.to_fields(), priority)
        except StoreUnavailable:
            if not intent.purpose.reduces_risk:
                log_event(ENGINE, "order_refused",
                          details={"strategy": intent.strategy_id, "reason": "store unavailable"},
                          action_taken="entry not queued", level="WARNING")
                return False
            return self.directory.tell(ENGINE, DirectIntent(intent))
        return self.directory.tell(ENGINE, Wake())

    def _entry_seq(self, strategy_id: str) -> int:
        try:
            runtime = self.store.load_runtime(strategy_id)
        except Exception:  # noqa: BLE001 - unreadable or unreachable: the engine decides on its own load
            runtime = self.runtime_cache.get(strategy_id)
        return runtime.entry_seq if runtime is not None else 0

    def engine_cancel(self, strategy_id: str) -> None:
        self.directory.tell(ENGINE, CancelStrategy(strategy_id))
