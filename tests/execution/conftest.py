"""A real execution subtree for tests: embedded Redis, the simulated exchange over HTTP,
the execution engine and position manager under a rest_for_one supervisor."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from actors.core.degradation import Gate, Mode
from actors.core.retry import RetryConfig
from actors.execution import ExecutionEngine
from actors.position_manager import PositionManager
from actors.services import Services
from actors.core.signals import Signal
from actors.messages import OrderUpdate
from runtime.config import parse_config
from runtime.simexchange import SimExchange
from runtime.store.store import Store
from runtime.venue import BinanceFuturesConnector
from supervision import ChildSpec, SupervisedActor, Supervisor
from tests.redis_fixture import redis_client, redis_server, redis_url  # noqa: F401
from tests.waiting import eventually

CONFIG = """
[node]
name = "test-node"
namespace = "{namespace}"
[venue]
{settle_window}
[feeds]
symbols = ["BTCUSDT"]
[[strategies]]
id = "s1"
kind = "scheduled"
account = "alice"
symbol = "BTCUSDT"
quantity = 0.01
buy_at = "+1h"
sell_at = "+2h"
stop_loss = 95000.0
[[strategies]]
id = "s2"
kind = "scheduled"
account = "bob"
symbol = "BTCUSDT"
quantity = 0.02
buy_at = "+1h"
sell_at = "+2h"
[[strategies]]
id = "s3"
kind = "scheduled"
account = "alice"
symbol = "BTCUSDT"
quantity = 0.01
buy_at = "+1h"
sell_at = "+2h"
"""

FAST_RETRY = RetryConfig(backoff=(0.05, 0.1, 0.2), jitter=0.0)
RECV_WINDOW_MS = 500  # what every order carries in these tests
SETTLE_WINDOW_S = 1.0  # how long an "unknown" reply may still execute, in these tests
LATE_LANDING_S = RECV_WINDOW_MS / 1000 + SETTLE_WINDOW_S + 0.5  # after this no late request can land
OPEN_GATE = Gate(Mode.NORMAL, False, frozenset(), 0.5, (), {})


class Inbox(SupervisedActor):
    """Stands in for a strategy actor: records the engine's OrderUpdates."""

    def __init__(self, services: Services, node_id: str, updates: list[OrderUpdate]) -> None:
        super().__init__()
        self.services, self.node_id, self.updates = services, node_id, updates

    def on_start(self) -> None:
        self.services.directory.register(self.node_id, self.generation, self.actor_ref)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, (OrderUpdate, Signal)):
            self.updates.append(message)


@dataclass
class Trading:
    services: Services
    exchange: SimExchange
    store: Store
    root: Any
    updates: dict[str, list[OrderUpdate]] = field(default_factory=dict)
    generations: Any = None  # runtime.store.Generations of this "process"
    signals: list[Any] = field(default_factory=list)  # what the engine and position-manager told degradation

    def wait_update(self, strategy_id: str, count: int = 1, timeout: float = 10.0) -> OrderUpdate:
        got = eventually(lambda: len(self.updates[strategy_id]) >= count and self.updates[strategy_id],
                         timeout=timeout, what=f"{count} order update(s) for {strategy_id}")
        return got[count - 1]

    def executed(self, client_order_id: str | None = None) -> list[dict[str, Any]]:
        """Ledger entries of orders the exchange actually executed (the duplicate-order invariant)."""
        return [e for e in self.exchange.ledger(client_order_id) if e.get("executed")]

    def runtime(self, strategy_id: str) -> Any:
        return self.store.load_runtime(strategy_id)


@pytest.fixture
def exchange() -> Iterator[SimExchange]:
    sim = SimExchange(["BTCUSDT"], {"BTCUSDT": 100_000.0}, seed=3, volatility=0.0, depth_interval_s=0.05,
                      mark_interval_s=0.1, liquidation_rate=0.0)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def make_trading(redis_url, exchange, tmp_path) -> Iterator[Any]:  # noqa: F811
    made: list[Trading] = []

    def make(namespace: str = "t", start: bool = True, recv_window_ms: int = RECV_WINDOW_MS,
             retry: RetryConfig = FAST_RETRY, settle_window_s: float | None = SETTLE_WINDOW_S) -> Trading:
        """`settle_window_s` None: the daemon's default [venue] settle_window_s."""
        window = "" if settle_window_s is None else f"settle_window_s = {settle_window_s}"
        config = parse_config(CONFIG.format(namespace=namespace, settle_window=window), "test.toml")
        store = Store(redis_url, namespace, buffer_path=tmp_path / f"{namespace}-buffer.jsonl")
        venue = BinanceFuturesConnector(exchange.rest_url, exchange.api_key, exchange.api_secret, timeout_s=0.5,
                                        recv_window_ms=recv_window_ms)
        generations = store.generations()  # as the node does: Redis-reserved, monotonic across processes
        services = Services(config=config, store=store, venue=venue, retry=retry, generation=generations(),
                            ws_url=exchange.ws_url)
        services.gate.publish(OPEN_GATE)
        trading = Trading(services, exchange, store, None, {s.id: [] for s in config.strategies}, generations)
        if start:
            start_tree(trading)
        made.append(trading)
        return trading

    yield make
    for trading in made:
        if trading.root is not None and trading.root.is_alive():
            trading.root.stop(timeout=15)
        trading.services.timers.stop()
        trading.services.venue.close()
        trading.store.close()


def start_tree(trading: Trading, **engine: Any) -> None:
    """The execution subtree; `engine`: ExecutionEngine keyword arguments (pool sizes)."""
    services = trading.services
    inboxes = [ChildSpec(f"strategy:{sid}", Inbox, args=(services, f"strategy:{sid}", updates))
               for sid, updates in trading.updates.items()]
    inboxes.append(ChildSpec("degradation", Inbox, args=(services, "degradation", trading.signals)))
    trading.root = Supervisor.start(name="root", children=[
        ChildSpec("execution", Supervisor, kind="supervisor", kwargs={"strategy": "rest_for_one", "children": [
            ChildSpec("execution-engine", ExecutionEngine, args=(services,), kwargs=engine),
            ChildSpec("position-manager", PositionManager, args=(services,)),
        ]}),
        ChildSpec("inboxes", Supervisor, kind="supervisor", kwargs={"children": inboxes}),
    ])
    eventually(lambda: services.directory.ref("execution-engine") is not None)

