"""Shared rig for the market actor tests: a real simulated exchange on 127.0.0.1, a real
connector, Services, and recording actors standing in for degradation, the circuit
breaker and the execution engine (registered in the directory under their node ids).

Every wait here is bounded (``tests.waiting.eventually``); intervals are short and
injected so the whole market actor suite runs in seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pykka
import pytest

from actors.core.feed_health import FeedHealthConfig
from actors.core.reconnect import ReconnectConfig
from actors.core.signals import Signal
from actors.feed import FeedActor, FeedTimings
from actors.services import Services
from runtime.config import parse_config
from runtime.simexchange import SimExchange
from runtime.venue import BinanceFuturesConnector
from tests.waiting import eventually

SYMBOL = "BTCUSDT"
FAST_MARKET = {"depth_interval_s": 0.02, "mark_interval_s": 0.05, "volatility": 0.0, "liquidation_rate": 0.0}
FAST_HEALTH = FeedHealthConfig(stale_after=0.3, heartbeat_timeout=0.5, resume_after_clean=0.3,
                               corrupt_window=2.0, corrupt_min_messages=10)
FAST_RECONNECT = ReconnectConfig(base_delay=0.05, max_delay=0.4, jitter=0.0, reduced_after=5, stable_after=0.6)
FAST_TIMINGS = FeedTimings(poll_interval_s=0.02, ping_interval_s=0.1, connect_timeout_s=1.0, recv_timeout_s=0.02,
                           snapshot_retry_s=0.05, market_stale_after_s=0.0)  # marks every 50 ms: stale_after holds

CONFIG = """
[node]
name = "market-test"
namespace = "{namespace}"
[feeds]
symbols = ["BTCUSDT"]
heartbeat_timeout_s = 0.5
stale_after_ms = 300
stale_exit_after_s = {stale_exit_after_s}
stale_policy = "{stale_policy}"
"""


class Recorder(pykka.ThreadingActor):
    """Stands in for a node (degradation, circuit-breaker, execution-engine): records what it is told."""

    use_daemon_thread = True

    def __init__(self, services: Services, node_id: str, log: list[tuple[float, Any]], lock: threading.Lock) -> None:
        super().__init__()
        self.services, self.node_id, self.log, self.lock = services, node_id, log, lock

    def on_start(self) -> None:
        self.services.directory.register(self.node_id, 0, self.actor_ref)

    def on_receive(self, message: Any) -> Any:
        with self.lock:
            self.log.append((time.perf_counter(), message))


@dataclass
class Inbox:
    """What one recorder received, with perf_counter receipt times."""

    node_id: str
    ref: Any = None
    log: list[tuple[float, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def messages(self, kind: type | None = None) -> list[Any]:
        with self.lock:
            return [m for _, m in self.log if kind is None or isinstance(m, kind)]

    def timed(self, kind: type | None = None) -> list[tuple[float, Any]]:
        with self.lock:
            return [(t, m) for t, m in self.log if kind is None or isinstance(m, kind)]

    def signals(self, cause: str | None = None) -> list[Signal]:
        return [s for s in self.messages(Signal) if cause is None or s.cause == cause]

    def feed_statuses(self) -> list[tuple[float, str]]:
        """(receipt perf time, status) of every feed_health signal; status parsed from the signal."""
        out = []
        for t, s in self.timed(Signal):
            if s.cause == "feed_health":
                out.append((t, "LIVE" if not s.active else s.reason))
        return out

    def last_feed_active(self) -> bool | None:
        health = self.signals("feed_health")
        return health[-1].active if health else None


@dataclass
class Rig:
    exchange: SimExchange
    venue: BinanceFuturesConnector
    services: Services
    degradation: Inbox
    breaker: Inbox
    engine: Inbox
    actors: list[Any] = field(default_factory=list)

    def start_feed(self, **overrides: Any) -> pykka.ActorRef[Any]:
        kwargs: dict[str, Any] = {"ws_url": self.exchange.ws_url, "health": FAST_HEALTH,
                                  "reconnect": FAST_RECONNECT, "timings": FAST_TIMINGS, **overrides}
        ref = FeedActor.start(self.services, overrides.pop("symbol", SYMBOL), **kwargs)
        self.actors.append(ref)
        return ref

    def details(self, ref: pykka.ActorRef[Any]) -> dict[str, Any]:
        actor = ref._actor_weakref()  # noqa: SLF001 - the status tree reads details from another thread too
        assert actor is not None, "actor object is gone"
        return actor.status_details()

    def wait_status(self, ref: pykka.ActorRef[Any], status: str, timeout: float = 5.0) -> dict[str, Any]:
        return eventually(lambda: (d := self.details(ref))["status"] == status and d, timeout=timeout,
                          what=f"feed {status}")


def make_services(exchange: SimExchange, venue: BinanceFuturesConnector, store: Any = None, *,
                  namespace: str = "mkt", stale_exit_after_s: float = 10.0, stale_policy: str = "hold") -> Services:
    config = parse_config(CONFIG.format(namespace=namespace, stale_exit_after_s=stale_exit_after_s,
                                        stale_policy=stale_policy), "market-test.toml")
    return Services(config=config, store=store, venue=venue)


def start_recorder(services: Services, node_id: str) -> Inbox:
    inbox = Inbox(node_id)
    inbox.ref = Recorder.start(services, node_id, inbox.log, inbox.lock)
    return inbox


@pytest.fixture
def exchange() -> Iterator[SimExchange]:
    sim = SimExchange([SYMBOL], {SYMBOL: 100_000.0}, seed=5, **FAST_MARKET)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def venue(exchange: SimExchange) -> Iterator[BinanceFuturesConnector]:
    connector = BinanceFuturesConnector(exchange.rest_url, exchange.api_key, exchange.api_secret, timeout_s=0.5)
    yield connector
    connector.close()


@pytest.fixture
def make_rig(exchange: SimExchange, venue: BinanceFuturesConnector) -> Iterator[Callable[..., Rig]]:
    made: list[Rig] = []

    def make(store: Any = None, **config: Any) -> Rig:
        services = make_services(exchange, venue, store, **config)
        rig = Rig(exchange, venue, services, start_recorder(services, "degradation"),
                  start_recorder(services, "circuit-breaker"), start_recorder(services, "execution-engine"))
        made.append(rig)
        return rig

    yield make
    for rig in made:
        for ref in reversed(rig.actors):
            if ref.is_alive():
                ref.stop(timeout=5)
        for inbox in (rig.degradation, rig.breaker, rig.engine):
            if inbox.ref.is_alive():
                inbox.ref.stop(timeout=5)
        rig.services.timers.stop()


def exchange_book(exchange: SimExchange) -> tuple[int, dict[float, float], dict[float, float]]:
    snap = exchange.book_snapshot(SYMBOL)
    return (snap["lastUpdateId"], {float(p): float(q) for p, q in snap["bids"]},
            {float(p): float(q) for p, q in snap["asks"]})


def book_converges(rig: Rig, feed: pykka.ActorRef[Any], timeout: float = 3.0) -> dict[str, Any]:
    """Freeze the market, let the feed catch up with the last event, return its book."""
    rig.exchange.pause_market()
    target, _, _ = exchange_book(rig.exchange)
    return eventually(lambda: (b := feed.proxy().book_depth().get(timeout=2))["state"] == "LIVE"
                      and b["last_update_id"] == target and b, timeout=timeout,
                      what=f"feed book at the exchange's lastUpdateId {target}")
