"""Tick crossing a stop → exit order on the wire, with 100 / 1,000 / 10,000 strategies on one symbol.

Measured path: the state builder's work for one tick (`StopBook.triggered`) → the
`StopsTriggered` message → the execution engine's pipeline (lock, load runtime,
preconditions, journal intent in Redis) → the instant the HTTP request starts. The
venue is the simulated exchange in its own process; Redis is the embedded redis-server.
The Redis round trips each order makes before the wire are counted too (target: 1). The
runtime cache is filled from the store first, as the daemon's cold start does.

Baseline, measured in the same run: the naive design, where every tick is told to every
strategy actor and each checks its own stop; latency is tick → the crossing actor's
decision (it would then still have to reach the engine, so the baseline is generous).

The garbage collector is set as the daemon sets it once started (`runtime.heap`).

Per-tick cost ratio: the stop book's cost for a tick that crosses nothing (the common
case) with 10,000 armed stops over that with 100.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pykka
import requests

from actors.core.degradation import Gate, Mode
from actors.execution import ExecutionEngine
from actors.messages import StopsTriggered
from actors.services import Services
from actors.stop_book import StopBook
from bench.round_trips import RoundTrips, per_order_summary
from bench.stats import summary_ms
from runtime.config import Config, FeedsConfig, NodeConfig, StrategyConfig
from runtime.heap import settle_after_start
from runtime.simexchange import DEFAULT_API_KEY, DEFAULT_API_SECRET
from runtime.store.embedded import EmbeddedRedis
from runtime.store.runtime_state import Position, Runtime
from runtime.store.store import Store
from runtime.venue import BinanceFuturesConnector
from supervision import ChildSpec, SupervisedActor, Supervisor

SYMBOL = "BTCUSDT"
PRICE = 100_000.0
QTY = 0.001
SIZES = (100, 1000, 10000)


class LatencyProbe:
    """Stands in for Metrics: collects tick→wire samples from the engine."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.done = threading.Semaphore(0)

    def observe_tick_to_order(self, seconds: float) -> None:
        self.samples.append(seconds)

    def record_order_outcome(self, verdict: str) -> None:
        self.done.release()


def start_exchange() -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen([sys.executable, "-m", "runtime.simexchange", "--symbols", SYMBOL, "--price",
                             f"{SYMBOL}={PRICE}", "--volatility", "0", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = re.search(r"http://127\.0\.0\.1:\d+", proc.stdout.readline().decode(errors="replace"))
        if found:
            return proc, found.group(0)
    proc.kill()
    raise RuntimeError("the simulated exchange did not announce its REST url")


def levels(n: int) -> list[float]:
    """Distinct stop levels below the price, 0.5 apart, so one tick crosses exactly one."""
    return [PRICE - 10.0 - 0.5 * i for i in range(n)]


def setup_strategies(store: Store, n: int) -> tuple[list[StrategyConfig], dict[str, Runtime]]:
    strategies, runtimes = [], {}
    pipe = store.client.pipeline(transaction=False)
    for i, level in enumerate(levels(n)):
        sid = f"b{i}"
        strategies.append(StrategyConfig(id=sid, kind="scheduled", symbol=SYMBOL, account="bench"))
        runtime = Runtime(position=Position.BOUGHT, quantity=QTY, entry_price=PRICE, stop_loss=level, entry_seq=1)
        pipe.hset(store.keys.runtime(sid), mapping=runtime.to_redis())
        runtimes[sid] = runtime
    pipe.execute()
    return strategies, runtimes


WARMUP_ORDERS = 20  # first connections, Lua script loads; excluded and reported


def measure_stop_path(redis_url: str, rest_url: str, n: int, samples: int) -> dict[str, Any]:
    store = Store(redis_url, f"bench{n}")
    store.client.flushdb()
    strategies, runtimes = setup_strategies(store, n)
    venue = BinanceFuturesConnector(rest_url, DEFAULT_API_KEY, DEFAULT_API_SECRET, timeout_s=2.0)
    venue.place_order(SYMBOL, "BUY", "MARKET", round(QTY * n, 6), f"bench{n}:seed")  # the position the stops close
    config = Config(node=NodeConfig(name="bench"), feeds=FeedsConfig(symbols=(SYMBOL,)), strategies=tuple(strategies))
    probe = LatencyProbe()
    stops = StopBook([SYMBOL])
    for strategy, level in zip(strategies, levels(n)):
        stops.arm(SYMBOL, strategy.id, level, QTY)
    services = Services(config=config, store=store, venue=venue, stops=stops, metrics=probe)
    for sid, runtime in runtimes.items():
        services.runtime_cache.put(sid, runtime)
    round_trips = RoundTrips()
    services.gate.publish(Gate(Mode.NORMAL, False, frozenset(), 0.5, (), {}))
    root = Supervisor.start(name=f"bench{n}", children=[ChildSpec("execution-engine", ExecutionEngine, args=(services,))])
    settle_after_start()  # as the node does once its tree is up (runtime/heap.py)
    try:
        # Levels descend 0.5 apart and ticks walk down them in order: each tick crosses exactly
        # the next armed stop, as a falling market does.
        with round_trips.counting(services.pipeline):
            for level in levels(n)[:samples + WARMUP_ORDERS]:
                tick_perf = time.perf_counter()
                hits = tuple(stops.triggered(SYMBOL, level - 0.25))
                services.directory.tell("execution-engine", StopsTriggered(SYMBOL, hits, tick_perf))
                for _ in hits:
                    probe.done.acquire(timeout=10)
        summary = summary_ms(probe.samples[WARMUP_ORDERS:])
        summary["warmup_orders_excluded"] = WARMUP_ORDERS
        summary["redis_round_trips_per_order"] = per_order_summary(round_trips.per_order[WARMUP_ORDERS:])
        return summary
    finally:
        root.stop(timeout=30)
        services.timers.stop()
        venue.close()
        store.close()


def tick_cost_us(n: int, ticks: int = 20000) -> float:
    """Mean cost of one non-crossing tick in the stop book with n armed stops."""
    stops = StopBook([SYMBOL])
    for i, level in enumerate(levels(n)):
        stops.arm(SYMBOL, f"s{i}", level, QTY)
    started = time.perf_counter()
    for k in range(ticks):
        stops.triggered(SYMBOL, PRICE + (k % 7))  # above every stop: nothing crosses
    return (time.perf_counter() - started) / ticks * 1e6


class NaiveStrategy(SupervisedActor):
    """The baseline: every strategy actor receives every tick and checks its own stop.

    Each checks a 0.5-wide band under its level so that one tick makes exactly one fire,
    which isolates the cost being compared: delivering the tick to every actor.
    """

    def __init__(self, level: float, fired: list[float]) -> None:
        super().__init__()
        self.level, self.fired = level, fired

    def on_receive(self, message: Any) -> Any:
        price, sent = message
        if self.level - 0.5 < price <= self.level:
            self.fired.append(time.perf_counter() - sent)
        return None


def measure_fanout(n: int, samples: int) -> dict[str, Any]:
    fired: list[float] = []
    root = Supervisor.start(strategy="dynamic", name=f"naive{n}")
    sup = root.proxy()
    try:
        refs = [sup.start_child(ChildSpec(f"n{i}", NaiveStrategy, args=(level, fired))).get()
                for i, level in enumerate(levels(n))]
        for k in range(samples):
            price = levels(n)[(k * 7919) % n] - 0.25
            sent = time.perf_counter()
            for ref in refs:
                ref.tell((price, sent))
            deadline = time.monotonic() + 10
            while len(fired) <= k and time.monotonic() < deadline:
                time.sleep(0.0001)
        return summary_ms(fired)
    finally:
        root.stop(timeout=60)


def run(sizes: tuple[int, ...] = SIZES, samples: int = 200) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        redis = EmbeddedRedis(Path(tmp)).start()
        exchange, rest_url = start_exchange()
        try:
            requests.get(f"{rest_url}/fapi/v1/time", timeout=5)
            stop_path = {str(n): measure_stop_path(redis.url, rest_url, n, samples) for n in sizes}
        finally:
            exchange.kill()
            exchange.wait(10)
            redis.stop()
    costs = {str(n): round(tick_cost_us(n), 3) for n in sizes}
    fanout = {str(n): measure_fanout(n, 50 if n < 10000 else 20) for n in sizes}  # 10,000: seconds per sample
    pykka.ActorRegistry.stop_all()
    return {
        "stop_path": stop_path,
        # DESIGN §6 target 1: the worst of the sizes' typical order
        "redis_round_trips_per_order": max(v["redis_round_trips_per_order"].get("median", 0)
                                           for v in stop_path.values()),
        "tick_cost_us": costs,
        "cost_ratio_10000_100": round(costs[str(sizes[-1])] / costs[str(sizes[0])], 3),
        "baseline_fanout": fanout,
    }
