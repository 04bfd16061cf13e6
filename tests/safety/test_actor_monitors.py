"""The monitors, started for real: monitor:store against a redis-server SIGKILLed for real
(F18), monitor:resources on a fake psutil and clock (F20, F22), monitor:heartbeat over a
real supervisor whose child hangs (F16)."""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator

import pykka
import pytest

from actors.circuit_breaker import CircuitBreakerActor
from actors.core.degradation import OrderKind
from actors.degradation import DegradationActor, ReportHealth
from actors.monitors import (
    DISK_EMERGENCY,
    DISK_NO_COLD_WRITES,
    DISK_OK,
    DISK_WARN,
    HeartbeatMonitor,
    Reconcile,
    Reconciled,
    ResourceMonitor,
    ResourceSample,
    StoreMonitor,
)
from actors.directory import Directory
from actors.services import Services
from runtime.config import parse_config
from runtime.store.disk_buffer import ReplayReport
from runtime.store.health import Health
from runtime.store.runtime_state import Position, Runtime
from supervision import ChildSpec, Supervisor
from tests.redis_fixture import redis_server, redis_url, store  # noqa: F401
from tests.supervision.workers import Worker
from tests.fakes import ActorWorld, FakeClock
from tests.waiting import eventually

ENTRY, EXIT = OrderKind.ENTRY, OrderKind.EXIT


class PositionManager(pykka.ThreadingActor):
    """Stands in for position-manager: records each Reconcile with what the world looked like then."""

    use_daemon_thread = True

    def __init__(self, services: Services, box: list[dict[str, Any]], reply: bool = False) -> None:
        super().__init__()
        self.services = services
        self.box = box
        self.reply = reply

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Reconcile):
            store = self.services.store
            self.box.append({"message": message, "buffer_pending": store.buffer_pending(),
                             "cached": self.services.runtime_cache.get("s1")})
            if self.reply:
                self.services.directory.tell(message.reply_to, Reconciled(message.request_id, True, "no drift"))
        return None


class RecordingDirectory(Directory):
    """Records every tell at send time, on the sender's thread: the order a monitor acts in."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, Any]] = []

    def tell(self, node_id: str, message: Any) -> bool:
        self.sent.append((node_id, message))
        return super().tell(node_id, message)


class World(ActorWorld):
    def __init__(self, config_text: str = "", store: Any = None) -> None:
        config = parse_config(config_text + '\n[feeds]\nsymbols = ["BTCUSDT"]\n')
        self.directory = RecordingDirectory()
        super().__init__(Services(config=config, store=store, venue=None, directory=self.directory))

    def start(self, factory: type, *args: Any, **kwargs: Any) -> Any:
        return super().start(factory, *args, **kwargs).proxy()

    def degradation(self, **kwargs: Any) -> Any:
        kwargs.setdefault("tick_interval", 0.01)
        proxy = self.start(DegradationActor, self.services, **kwargs)
        proxy.snapshot().get()
        return proxy

    def position_manager(self, reply: bool = False) -> list[dict[str, Any]]:
        box: list[dict[str, Any]] = []
        ref = PositionManager.start(self.services, box, reply)
        self.refs.append(ref)
        self.services.directory.register("position-manager", 0, ref)
        return box

    def entries_open(self) -> bool:
        return self.services.gate().check("s1", "BTCUSDT", ENTRY).open


@pytest.fixture
def make_world() -> Iterator[Any]:
    worlds: list[World] = []

    def make(config_text: str = "", store: Any = None) -> World:
        worlds.append(World(config_text, store))
        return worlds[-1]

    yield make
    for w in worlds:
        w.close()


# =========================================================================== monitor:store


def test_f18_redis_killed_closes_gate_within_1s_then_replay_reconcile_reopen_cache_kept(
        make_world, store, redis_server):  # noqa: F811
    world = make_world(store=store)
    degradation = world.degradation(revalidate=("monitor:store",))
    reconciles = world.position_manager()
    monitor = world.start(StoreMonitor, world.services)
    eventually(world.entries_open, timeout=2.0, what="gate open once monitor:store reported Redis up")
    world.services.runtime_cache.put("s1", Runtime(position=Position.BOUGHT, generation=1))

    killed_at = time.monotonic()
    redis_server.kill()
    eventually(lambda: not world.entries_open(), timeout=1.0, what="F18: gate closed within 1 s of the kill")
    assert time.monotonic() - killed_at < 1.0
    assert world.services.gate().check("s1", "BTCUSDT", EXIT).open, "risk-reducing exits still run"
    assert any(r.startswith("monitor:store") for r in degradation.snapshot().get()["gate"]["reasons"])

    recorded = store.journal_intent_or_buffer("s1:x1", {"strategy_id": "s1", "side": "SELL", "purpose": "stop_loss"})
    assert recorded.where == "buffer" and store.buffer_pending()
    assert reconciles == []

    redis_server.restart()
    eventually(world.entries_open, timeout=3.0, what="gate reopened after the recovery sequence")

    assert len(reconciles) == 1, "position-manager asked to reconcile once"
    sent = [(node_id, m) for node_id, m in world.directory.sent if node_id in ("degradation", "position-manager")]
    down_at = next(i for i, (_, m) in enumerate(sent) if getattr(m, "cause", "") == "store_down" and m.active)
    reconcile_at = next(i for i, (_, m) in enumerate(sent) if isinstance(m, Reconcile))
    up_at = next(i for i, (_, m) in enumerate(sent[down_at:], down_at)
                 if getattr(m, "cause", "") == "store_down" and not m.active)
    assert down_at < reconcile_at < up_at, "Reconcile is asked before degradation hears the store is back"
    seen = reconciles[0]
    assert seen["buffer_pending"] is False, "the disk buffer was replayed before the Reconcile"
    assert seen["cached"] == Runtime(position=Position.BOUGHT, generation=1), \
        "F28: the runtime cache is never dropped across an outage (reconcile refreshes it from the store)"
    assert seen["message"].reason.startswith("store back after outage")
    journal = store.entries()
    assert [(e.client_order_id, e.kind, e.source) for e in journal] == [("s1:x1", "intent", "buffer")], \
        "the buffered exit was replayed to Redis"
    details = monitor.status_details().get()
    assert details["state"] == "up" and details["outages"] == 1 and details["replays"] >= 1


def test_seed295_a_disk_buffer_left_by_a_write_that_failed_while_redis_was_up_is_replayed(
        make_world, store):  # noqa: F811
    """A single write can time out and go to the disk buffer without monitor:store ever seeing Redis
    down. Runtime reads refuse while the buffer holds records (seed 295: Redis is older than the
    buffer), so monitor:store replays it at its next probe, not at the next outage."""
    world = make_world(store=store)
    world.degradation(revalidate=("monitor:store",))
    reconciles = world.position_manager(reply=True)
    monitor = world.start(StoreMonitor, world.services, 0.01)
    eventually(lambda: monitor.status_details().get()["state"] == "up", what="monitor:store saw Redis up")
    store.buffer.append("journal_intent", {"client_order_id": "s1:x1", "fields": {"strategy_id": "s1"}})
    assert store.buffer_pending()
    eventually(lambda: not store.buffer_pending(), timeout=3.0,
               what="the buffer a failed write left is replayed with Redis up, not kept until an outage")
    assert [(e.client_order_id, e.source) for e in store.entries()] == [("s1:x1", "buffer")]
    eventually(lambda: len(reconciles) == 1, what="reconciled after the replay, as after an outage")
    assert store.load_runtime("s1") is None, "runtime reads work again once the buffer is replayed"


class FakeStore:
    """Only what monitor:store touches: health, replay, buffer state, the fast-fail mark."""

    def __init__(self) -> None:
        self.up = True
        self.replays = 0
        self.marked_down: str | None = None

    def mark_down(self, reason: str) -> None:
        self.marked_down = reason

    def mark_up(self) -> None:
        self.marked_down = None

    def health(self) -> Health:
        return Health(self.up, 0.1 if self.up else None, None if self.up else "ConnectionError: refused", 0.0)

    def replay_buffer(self) -> ReplayReport:
        self.replays += 1
        return ReplayReport()

    def buffer_pending(self) -> bool:
        return False


def test_f18_with_reconcile_timeout_the_gate_waits_for_reconciled(make_world):
    fake = FakeStore()
    world = make_world(store=fake)
    world.degradation(revalidate=())
    reconciles = world.position_manager(reply=False)
    clock = FakeClock()
    monitor = world.start(StoreMonitor, world.services, 0.01, reconcile_timeout=5.0, clock=clock)
    eventually(lambda: monitor.status_details().get()["state"] == "up")

    fake.up = False
    eventually(lambda: not world.entries_open(), timeout=1.0)
    fake.up = True
    eventually(lambda: len(reconciles) == 1, what="Reconcile asked once Redis answered")
    samples = monitor.samples.get()
    eventually(lambda: monitor.samples.get() >= samples + 5, what="more probes while waiting")
    assert not world.entries_open(), "no Reconciled yet: the gate stays closed"
    assert len(reconciles) == 1, "not re-asked before the timeout"

    clock.advance(5.0)
    eventually(lambda: len(reconciles) == 2, what="re-asked after reconcile_timeout")
    first, second = (r["message"].request_id for r in reconciles)
    assert second != first
    world.services.directory.tell("monitor:store", Reconciled(first, True))
    assert not world.entries_open(), "a stale reply does not reopen"
    world.services.directory.tell("monitor:store", Reconciled(second, True, "no drift"))
    eventually(world.entries_open, what="reopened on the matching Reconciled")
    assert fake.replays >= 2


def test_store_monitor_answers_report_health(make_world):
    fake = FakeStore()
    world = make_world(store=fake)
    seen: list[Any] = []

    class Degradation(pykka.ThreadingActor):
        use_daemon_thread = True

        def on_receive(self, message: Any) -> Any:
            seen.append(message)

    world.services.directory.register("degradation", 0, Degradation.start())
    world.refs.append(world.services.directory.ref("degradation"))
    world.position_manager()
    world.start(StoreMonitor, world.services, 0.01)
    eventually(lambda: len(seen) == 1)
    assert seen[0].cause == "store_down" and seen[0].active is False, "first probe: store up"
    world.services.directory.tell("monitor:store", ReportHealth())
    eventually(lambda: len(seen) == 2)
    assert seen[1].cause == "store_down" and seen[1].active is False


# =========================================================================== monitor:resources


class Sampler:
    """Fake psutil: the test sets the numbers and the clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.cpu, self.memory, self.disk = 10.0, 40.0, 50.0

    def __call__(self) -> ResourceSample:
        return ResourceSample(self.cpu, self.memory, self.disk, self.clock())


def wait_samples(monitor: Any, n: int = 3) -> None:
    start = monitor.samples.get()
    eventually(lambda: monitor.samples.get() >= start + n, what=f"{n} more samples")


def test_f22_cpu_over_95_for_30s_and_memory_over_90_reduce_the_node(make_world):
    world = make_world()
    clock = FakeClock()
    degradation = world.degradation(revalidate=(), clock=clock)
    breaker = world.start(CircuitBreakerActor, world.services, clock=clock, poll_interval=0.01)
    sampler = Sampler(clock)
    monitor = world.start(ResourceMonitor, world.services, 0.01, sampler=sampler, clock=clock)

    def mode() -> str:
        return degradation.snapshot().get()["mode"]

    sampler.cpu = 97.0
    wait_samples(monitor)
    clock.advance(29.0)
    wait_samples(monitor)
    assert mode() == "NORMAL", "CPU high for 29 s: not yet"
    clock.advance(2.0)
    eventually(lambda: mode() == "REDUCED", what="CPU > 95 % for 30 s -> resources breaker -> REDUCED")
    assert any(s["name"] == "resources" and s["state"] == "TRIPPED" for s in breaker.statuses().get())

    sampler.cpu = 30.0
    eventually(lambda: any(s["name"] == "resources" and s["state"] == "CLOSED" for s in breaker.statuses().get()))
    assert mode() == "REDUCED", "ramps back only after the clean period"
    clock.advance(61.0)
    eventually(lambda: mode() == "NORMAL")

    sampler.memory = 93.0
    eventually(lambda: mode() == "REDUCED", what="memory > 90 % trips at once")
    assert monitor.status_details().get()["memory_percent"] == 93.0


def test_f20_disk_levels_rotate_stop_cold_writes_then_clean_old_logs(make_world, tmp_path):
    data_dir = tmp_path / "data"
    logs = data_dir / "logs"
    logs.mkdir(parents=True)
    for name in ("warden.log", "warden.2025-01-01_00-00-00_000000.log", "warden.2025-01-02_00-00-00_000000.log.gz",
                 "notes.txt"):
        (logs / name).write_text("x" * 100)
    world = make_world(f"[node]\ndata_dir = '{data_dir}'\n")
    clock = FakeClock()
    sampler = Sampler(clock)
    rotations: list[float] = []
    cold_writes = threading.Event()
    monitor = world.start(ResourceMonitor, world.services, 0.01, sampler=sampler, clock=clock,
                          rotate_logs=lambda: rotations.append(clock()), cold_writes_allowed=cold_writes)

    def level() -> str:
        return monitor.status_details().get()["disk_level"]

    sampler.disk = 91.0
    eventually(lambda: level() == DISK_WARN)
    wait_samples(monitor)
    assert rotations == [1_000.0], "90 %: logs rotated once"
    assert cold_writes.is_set()

    sampler.disk = 96.0
    eventually(lambda: level() == DISK_NO_COLD_WRITES)
    assert not cold_writes.is_set(), "95 %: cold writes stopped"
    assert len(list(logs.iterdir())) == 4, "nothing deleted before 98 %"

    sampler.disk = 98.5
    eventually(lambda: level() == DISK_EMERGENCY)
    assert sorted(p.name for p in logs.iterdir()) == ["notes.txt", "warden.log"], \
        "98 %: rotated logs deleted, the active log and other files kept"

    sampler.disk = 60.0
    eventually(lambda: level() == DISK_OK)
    assert cold_writes.is_set(), "alerts clear: cold writes allowed again"


# =========================================================================== monitor:heartbeat


def node(node_id: str, state: str = "running", children: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "kind": "supervisor" if children is not None else "worker", "state": state,
            "restarts": 0, "last_error": None, "last_exit_at": None, "generation": 1,
            "children": children or [], **extra}


def test_heartbeat_counts_states_and_alerts_once_per_incident(make_world):
    world = make_world()
    tree = node("root", children=[node("market", children=[node("feed:BTCUSDT"), node("state-builder")]),
                                  node("strategies", children=[node("strategy:s1"), node("strategy:s2")])])
    snapshot = {"tree": tree}
    monitor = world.start(HeartbeatMonitor, world.services, lambda: snapshot["tree"], 0.01)
    details = eventually(lambda: monitor.status_details().get() if monitor.samples.get() else None)
    assert details["counts"] == {"running": 7} and details["alerts"] == 0

    broken = node("root", children=[
        node("market", children=[node("feed:BTCUSDT", "failed", last_error={"type": "ConnectionError",
                                                                            "message": "x", "at": 5.0},
                                      last_exit_at=5.0), node("state-builder", "killed", last_exit_at=6.0)]),
        node("strategies", children=[node("strategy:s1", "restarting", last_error={
            "type": "hung", "message": "no progress for more than 3.0s", "at": 7.0}, last_exit_at=7.0),
            node("strategy:s2", "disabled")])])
    snapshot["tree"] = broken
    details = eventually(lambda: (d := monitor.status_details().get())["alerts"] == 2 and d)
    wait_samples(monitor)
    details = monitor.status_details().get()
    assert details["alerts"] == 2, "one alert per incident, not one per sample"
    assert details["hangs"] == 1 and details["restarting"] == ["strategy:s1"]
    assert sorted(u["id"] for u in details["unhealthy"]) == ["feed:BTCUSDT", "state-builder"]
    assert details["counts"] == {"running": 3, "failed": 1, "killed": 1, "restarting": 1, "disabled": 1}


def test_f16_heartbeat_reports_a_hung_child_replaced_by_its_supervisor(make_world):
    world = make_world()
    release = threading.Event()
    sup = world.start(Supervisor, strategy="one_for_one", intensity=5, period=60.0, children=[
        ChildSpec(id="strategy:s1", factory=Worker, kwargs={"release": release}, hang_timeout=0.2)])
    try:
        monitor = world.start(HeartbeatMonitor, world.services, lambda: sup.snapshot().get(), 0.02)
        first = sup.which_children().get()[0]
        first["ref"].tell("hang")
        details = eventually(lambda: (d := monitor.status_details().get())["hangs"] == 1 and d, timeout=5.0,
                             what="the hang the supervisor detected is reported")
        assert details["hangs"] == 1
        child = sup.which_children().get()[0]
        assert child["generation"] != first["generation"], "a replacement incarnation runs"
        eventually(lambda: monitor.status_details().get()["counts"].get("running") == 2)
    finally:
        release.set()
