"""The `degradation` actor, started for real: signals -> published gate, logged transitions,
flatten requests to the engine, hysteresis on an injected clock, HARD_SHUTDOWN's exit 3,
the operator's halt/resume, and a crash that restarts into a safe state."""

from __future__ import annotations

import json
import queue
from typing import Any, Callable, Iterator

import pykka
import pytest
from loguru import logger

from actors.core import signals as sig
from actors.core.breakers import BreakerEvent, BreakerState
from actors.core.degradation import DegradationConfig, OrderKind
from actors.core.signals import Effect, Signal
from actors.degradation import DegradationActor, FlattenDone, ReportHealth, SignalMemory
from actors.execution import Flatten
from actors.services import Services
from runtime.config import parse_config
from runtime.logging import add_json_sink
from supervision import ChildSpec, Supervisor
from tests.fakes import ActorWorld, FakeClock
from tests.waiting import eventually

ENTRY, EXIT = OrderKind.ENTRY, OrderKind.EXIT
CONFIG = """
[feeds]
symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
liquid_symbols = ["BTCUSDT"]
"""


class World(ActorWorld):
    def __init__(self) -> None:
        super().__init__(Services(config=parse_config(CONFIG), store=None, venue=None))

    def degradation(self, **kwargs: Any) -> pykka.ActorRef[Any]:
        kwargs.setdefault("revalidate", ())
        kwargs.setdefault("tick_interval", 0.01)
        ref = self.start(DegradationActor, self.services, **kwargs)
        ref.proxy().snapshot().get()  # on_start has run
        return ref

    def gate(self) -> Any:
        return self.services.gate()


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    yield w
    w.close()


@pytest.fixture
def logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Every JSON log line written so far (the sink is fed from actor threads)."""
    lines: list[str] = []
    handler = add_json_sink(lines.append, "DEBUG")
    yield lambda: [json.loads(line) for line in list(lines)]
    logger.remove(handler)


def entries_open(world: World, symbol: str = "BTCUSDT", strategy: str = "s1") -> bool:
    return world.gate().check(strategy, symbol, ENTRY).open


# --------------------------------------------------------------------------- start / restart


def test_starts_closed_until_store_monitor_reports(world):
    ref = world.degradation(revalidate=("monitor:store",))
    gate = world.gate()
    assert not gate.open, "a (re)started degradation must not open entries before the monitors re-report"
    assert any("re-report" in r for r in gate.reasons), gate.reasons
    assert gate.check("s1", "BTCUSDT", EXIT).open, "exits stay open while revalidating"

    ref.tell(sig.feed_status("BTCUSDT", "LIVE"))  # another source reporting does not end it
    assert not ref.proxy().snapshot().get()["gate"]["open"]

    ref.tell(sig.store(True))
    eventually(lambda: entries_open(world), timeout=2.0, what="gate open once monitor:store reported")
    snap = ref.proxy().snapshot().get()
    assert snap["mode"] == "NORMAL" and snap["trading"] == "ACTIVE" and _open_and_reasons(snap["gate"]) == {"open": True, "reasons": []}


def test_restart_after_crash_rebuilds_closed_state_with_earlier_causes(world):
    memory = SignalMemory()
    engine = world.recorder("execution-engine")
    feed = world.recorder("feed:BTCUSDT")
    sup_ref = world.start(Supervisor, strategy="one_for_one", intensity=3, period=60.0, children=[
        ChildSpec(id="degradation", factory=DegradationActor, args=(world.services,),
                  kwargs={"memory": memory, "revalidate": ("monitor:store",), "tick_interval": 0.01})])
    sup = sup_ref.proxy()
    directory = world.services.directory
    directory.tell("degradation", sig.store(True))
    directory.tell("degradation", sig.feed_status("BTCUSDT", "STALE", "data age 1.4s"))
    eventually(lambda: entries_open(world, "ETHUSDT") and not entries_open(world, "BTCUSDT"))
    first_generation = sup.which_children().get()[0]["generation"]

    class Poison(Signal):
        @property
        def identity(self):  # the core cannot apply it: the actor crashes on it
            raise RuntimeError("poison signal")

    directory.tell("degradation", Poison("feed:ETHUSDT", "feed_health", True, Effect.BLOCK_ENTRIES, reason="x"))

    def restarted() -> bool:
        child = sup.which_children().get()[0]
        return child["state"] == "running" and child["generation"] != first_generation

    eventually(restarted, what="degradation restarted by its supervisor")
    assert directory.ref("degradation").proxy().replayed.get() == 1, "the STALE feed's signal replayed; not the poison"
    eventually(lambda: any(isinstance(m, ReportHealth) for m in feed), what="feeds asked to re-report")
    gate = world.gate()
    assert not gate.open and any("re-report" in r for r in gate.reasons), \
        "after a restart entries stay closed until monitor:store re-reports"
    assert not gate.check("s1", "BTCUSDT", ENTRY).open

    directory.tell("degradation", sig.store(True))
    eventually(lambda: entries_open(world, "ETHUSDT"), what="node gate reopened after the re-report")
    assert not entries_open(world, "BTCUSDT"), "the stale feed's block survived the crash (memory replay)"
    assert not any(isinstance(m, Flatten) for m in engine)


# --------------------------------------------------------------------------- signals -> gate


def test_f18_store_down_closes_entries_and_logs_the_transition_with_its_cause(world, logs):
    ref = world.degradation()
    eventually(lambda: entries_open(world))

    ref.tell(sig.store(False, "PING timeout"))
    eventually(lambda: not world.gate().open, timeout=1.0, what="gate closed within 1 s of the signal")
    assert world.gate().check("s1", "BTCUSDT", EXIT).open, "risk-reducing exits still run"
    assert _open_and_reasons(ref.proxy().snapshot().get()["gate"]) == {"open": False, "reasons": ["monitor:store: PING timeout"]}

    halted = eventually(lambda: [line for line in logs() if line["event"] == "transition"
                                 and line["details"]["kind"] == "trading" and line["details"]["to"] == "HALTED"])
    assert halted[-1]["component"] == "degradation" and halted[-1]["level"] == "WARNING"
    assert halted[-1]["details"]["from"] == "ACTIVE"
    assert halted[-1]["details"]["cause"] == "monitor:store: PING timeout", "every transition is logged with its cause"
    assert halted[-1]["action_taken"] == "trading HALTED"

    ref.tell(sig.store(True))
    eventually(lambda: world.gate().open)


def test_f7_stale_feed_closes_only_its_symbol_and_reduced_mode_keeps_liquid_symbols(world):
    ref = world.degradation()
    ref.tell(sig.feed_status("ETHUSDT", "STALE", "data age 1.2s"))
    eventually(lambda: not entries_open(world, "ETHUSDT"))
    assert entries_open(world, "BTCUSDT") and entries_open(world, "SOLUSDT")

    ref.tell(sig.feed_degraded("SOLUSDT", "corrupt_rate", True, "corrupt 7%"))
    eventually(lambda: ref.proxy().snapshot().get()["mode"] == "REDUCED")
    decision = world.gate().check("s1", "BTCUSDT", ENTRY)
    assert decision.open and decision.size_factor == 0.5, "REDUCED: liquid symbols at half size"
    assert not entries_open(world, "SOLUSDT"), "REDUCED: no entries on illiquid symbols"


def test_hysteresis_mode_holds_for_clean_period_on_injected_clock(world):
    clock = FakeClock()
    ref = world.degradation(clock=clock, config=DegradationConfig(liquid_symbols=frozenset({"BTCUSDT"}),
                                                                 clean_period=60.0))
    proxy = ref.proxy()
    ref.tell(sig.rate_limited(True, "429 storm", clean_period=60.0))
    eventually(lambda: proxy.snapshot().get()["mode"] == "REDUCED")
    ref.tell(sig.rate_limited(False, clean_period=60.0))
    proxy.snapshot().get()  # the clear was applied at t0
    clock.advance(59.0)
    ticks = proxy.ticks.get()
    eventually(lambda: proxy.ticks.get() >= ticks + 3, what="a few hysteresis ticks at t+59s")
    assert proxy.snapshot().get()["mode"] == "REDUCED", "cleared causes hold their effect for the clean period"

    clock.advance(2.0)
    eventually(lambda: proxy.snapshot().get()["mode"] == "NORMAL", what="the tick alone expires the cause")
    assert proxy.snapshot().get()["gate"]["open"]


# --------------------------------------------------------------------------- flatten, HARD_SHUTDOWN


def test_f23_emergency_from_breaker_tells_engine_to_flatten_everything(world):
    engine = world.recorder("execution-engine")
    ref = world.degradation()
    event = BreakerEvent("rapid_loss", None, BreakerState.TRIPPED, "5 losses in a row", 0.0)
    ref.tell(sig.from_breaker(event))
    flatten = eventually(lambda: [m for m in engine if isinstance(m, Flatten)])
    assert flatten[0].symbol is None and flatten[0].strategy_id is None, "EMERGENCY flattens every position"
    assert "5 losses in a row" in flatten[0].reason
    snap = ref.proxy().snapshot().get()
    assert (snap["mode"], snap["trading"], snap["gate"]["open"]) == ("EMERGENCY", "REDUCING", False)
    assert world.gate().check("s1", "BTCUSDT", EXIT).open, "flatten and stop-loss exits are allowed"


def test_f10_stale_exit_policy_flattens_that_symbol_only(world):
    engine = world.recorder("execution-engine")
    ref = world.degradation()
    ref.tell(sig.stale_exit("ETHUSDT", True, "stale 11s with positions"))
    flatten = eventually(lambda: [m for m in engine if isinstance(m, Flatten)])
    assert flatten[0].symbol == "ETHUSDT" and "stale 11s" in flatten[0].reason
    assert ref.proxy().snapshot().get()["mode"] == "NORMAL"


def test_flatten_is_retried_when_the_engine_was_down(world):
    ref = world.degradation()
    ref.tell(sig.stale_exit("ETHUSDT", True))
    eventually(lambda: not entries_open(world, "ETHUSDT"))
    engine = world.recorder("execution-engine")  # the engine comes back
    eventually(lambda: any(isinstance(m, Flatten) and m.symbol == "ETHUSDT" for m in engine),
               what="flatten re-sent at the next tick")


def test_hard_shutdown_flattens_then_flushes_and_calls_back_with_exit_code_3(world):
    engine = world.recorder("execution-engine")
    codes: queue.Queue[int] = queue.Queue()
    clock = FakeClock()
    ref = world.degradation(on_hard_shutdown=codes.put, clock=clock, flatten_timeout=30.0)
    ref.tell(sig.supervisor_escalation("root: restart intensity 3 in 600s exceeded"))

    eventually(lambda: any(isinstance(m, Flatten) and m.symbol is None for m in engine))
    assert codes.empty(), "no exit before the flatten is done"
    assert world.gate().check("s1", "BTCUSDT", EXIT).open, "flatten exits still allowed before the final flush"

    ref.tell(FlattenDone("all positions closed"))
    assert codes.get(timeout=2.0) == 3
    assert not world.gate().check("s1", "BTCUSDT", EXIT).open, "final flush: no more orders"
    snap = ref.proxy().snapshot().get()
    assert (snap["mode"], snap["trading"]) == ("HARD_SHUTDOWN", "HALTED")

    ref.tell(sig.supervisor_escalation("again"))
    ref.proxy().snapshot().get()  # processed
    assert codes.empty(), "the callback runs once"


def test_hard_shutdown_flushes_after_flatten_timeout_without_confirmation(world):
    codes: queue.Queue[int] = queue.Queue()
    clock = FakeClock()
    ref = world.degradation(on_hard_shutdown=codes.put, clock=clock, flatten_timeout=15.0)
    ref.tell(sig.supervisor_escalation("root tripped"))
    eventually(lambda: ref.proxy().snapshot().get()["mode"] == "HARD_SHUTDOWN")
    assert codes.empty()
    clock.advance(15.0)
    assert codes.get(timeout=2.0) == 3


# --------------------------------------------------------------------------- operator


def test_operator_halt_and_resume_through_the_proxy(world):
    proxy = world.degradation().proxy()
    snap = proxy.halt("exchange maintenance").get()
    assert _open_and_reasons(snap["gate"]) == {"open": False, "reasons": ["operator: halt: exchange maintenance"]}
    assert not world.gate().open
    with pytest.raises(ValueError):
        proxy.resume("  ").get()
    assert not world.gate().open, "a resume without a reason changes nothing"
    assert proxy.resume("maintenance over").get()["gate"]["open"]
    assert world.gate().open


def test_status_tree_node_carries_mode_trading_and_gate(world):
    """The status server reads these from the supervision tree, never through the mailbox."""
    sup = world.start(Supervisor, strategy="one_for_one", children=[
        ChildSpec(id="degradation", factory=DegradationActor, args=(world.services,), kwargs={"revalidate": ()})])
    world.services.directory.tell("degradation", sig.store(False, "PING timeout"))
    node = eventually(lambda: next((n for n in sup.proxy().snapshot().get()["children"]
                                    if n.get("details", {}).get("gate", {}).get("open") is False), None))
    assert node["id"] == "degradation"
    assert _open_and_reasons(node["details"]["gate"]) == {"open": False, "reasons": ["monitor:store: PING timeout"]}
    assert (node["details"]["mode"], node["details"]["trading"]) == ("NORMAL", "HALTED")


def _open_and_reasons(gate: dict) -> dict:
    """The node-wide part of the status gate (per-symbol gates are tests/safety/test_symbol_gates.py's)."""
    return {"open": gate["open"], "reasons": gate["reasons"]}
