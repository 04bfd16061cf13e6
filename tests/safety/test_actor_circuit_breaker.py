"""The `circuit-breaker` actor, started for real next to a real `degradation` actor:
order results -> breakers -> degradation signals -> the published gate; operator reset."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from actors.circuit_breaker import (
    AbnormalPrice,
    CircuitBreakerActor,
    Escalated,
    Mark,
    PriceValidity,
)
from actors.core.degradation import OrderKind
from actors.degradation import DegradationActor, ReportHealth
from actors.execution import Flatten
from actors.orders import OrderIntent, Purpose
from actors.pipeline import OrderResult, Verdict
from actors.services import Services
from runtime.config import parse_config
from tests.fakes import ActorWorld, FakeClock
from tests.waiting import eventually

ENTRY, EXIT = OrderKind.ENTRY, OrderKind.EXIT
CONFIG = """
[feeds]
symbols = ["BTCUSDT", "ETHUSDT"]
[risk]
capital = 10000.0
max_trade_loss_pct = 5.0
max_session_loss_pct = 10.0
max_consecutive_losses = 5
"""


class World(ActorWorld):
    def __init__(self) -> None:
        super().__init__(Services(config=parse_config(CONFIG), store=None, venue=None))
        self.clock = FakeClock()
        self.disabled: list[tuple[str, str]] = []

    def degradation(self) -> Any:
        proxy = self.start(DegradationActor, self.services, revalidate=(), clock=self.clock,
                           tick_interval=0.01).proxy()
        proxy.snapshot().get()
        return proxy

    def breaker(self, **kwargs: Any) -> Any:
        kwargs.setdefault("clock", self.clock)
        kwargs.setdefault("poll_interval", 0.01)
        proxy = self.start(CircuitBreakerActor, self.services,
                           lambda sid, why: self.disabled.append((sid, why)), **kwargs).proxy()
        proxy.statuses().get()
        return proxy

    def tell(self, message: Any) -> None:
        assert self.services.directory.tell("circuit-breaker", message)

    def entries_open(self, symbol: str = "BTCUSDT", strategy: str = "s1") -> bool:
        return self.services.gate().check(strategy, symbol, ENTRY).open


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    yield w
    w.close()


def entry(strategy: str, price: float, qty: float = 1.0, verdict: Verdict = Verdict.FILLED,
          symbol: str = "BTCUSDT", seq: int = 1) -> OrderResult:
    intent = OrderIntent(strategy, "alice", symbol, Purpose.ENTRY, quantity=qty)
    filled = verdict is Verdict.FILLED
    return OrderResult(intent, verdict, "filled" if filled else "in doubt", f"{strategy}:e{seq}", "BUY",
                       qty if filled else 0.0, price if filled else 0.0)


def exit_(strategy: str, price: float, qty: float = 1.0, purpose: Purpose = Purpose.EXIT,
          symbol: str = "BTCUSDT", seq: int = 1) -> OrderResult:
    intent = OrderIntent(strategy, "alice", symbol, purpose)
    return OrderResult(intent, Verdict.FILLED, "filled", f"{strategy}:x{seq}", "SELL", qty, price)


def trade(w: World, strategy: str, buy: float, sell: float, seq: int, purpose: Purpose = Purpose.EXIT) -> None:
    w.tell(entry(strategy, buy, seq=seq))
    w.tell(exit_(strategy, sell, purpose=purpose, seq=seq))


def state_of(statuses: list[dict[str, Any]], name: str) -> str | None:
    return next((s["state"] for s in statuses if s["name"] == name), None)


# --------------------------------------------------------------------------- F23


def test_f23_five_losing_trades_in_a_row_trip_until_operator_reset(world):
    engine = world.recorder("execution-engine")
    degradation = world.degradation()
    breaker = world.breaker()
    for seq in range(1, 5):
        trade(world, "s1", 100.0, 99.0, seq, Purpose.STOP_LOSS if seq % 2 else Purpose.EXIT)
    assert state_of(breaker.statuses().get(), "rapid_loss") == "CLOSED", "4 losses: not yet"
    assert world.entries_open()

    trade(world, "s2", 50.0, 49.5, 5)
    rows = breaker.statuses().get()
    rapid = next(s for s in rows if s["name"] == "rapid_loss")
    assert rapid["state"] == "TRIPPED" and rapid["reason"] == "5 losses in a row"
    assert rapid["tripped_at"] == world.clock.now

    eventually(lambda: degradation.snapshot().get()["mode"] == "EMERGENCY", what="degradation told of the trip")
    assert not world.entries_open("ETHUSDT", "s9"), "halt all entries"
    eventually(lambda: any(isinstance(m, Flatten) and m.symbol is None for m in engine), what="flatten everything")

    trade(world, "s1", 100.0, 130.0, 6)  # a win does not reopen it
    world.clock.advance(3600.0)
    assert state_of(breaker.statuses().get(), "rapid_loss") == "TRIPPED", "operator reset only"
    assert degradation.snapshot().get()["mode"] == "EMERGENCY"

    with pytest.raises(ValueError):
        breaker.reset("rapid_loss", " ").get()
    with pytest.raises(KeyError):
        breaker.reset("no_such_breaker", "typo").get()
    assert state_of(breaker.reset("rapid_loss", "losses reviewed").get(), "rapid_loss") == "CLOSED"
    eventually(lambda: degradation.snapshot().get()["mode"] == "NORMAL", what="reset reaches degradation")
    assert world.entries_open()


def test_f23_unknown_entry_counts_as_filled_against_the_trade_loss_limit(world):
    degradation = world.degradation()
    breaker = world.breaker()
    world.tell(Mark("BTCUSDT", 100.0))
    world.tell(entry("s1", 0.0, qty=10.0, verdict=Verdict.UNKNOWN))  # outcome in doubt: no fill price
    world.tell(Mark("BTCUSDT", 60.0))  # -400 < 5 % of 10,000
    assert state_of(breaker.statuses().get(), "rapid_loss") == "CLOSED"
    world.tell(Mark("BTCUSDT", 45.0))  # -550 > 500
    rapid = next(s for s in breaker.statuses().get() if s["name"] == "rapid_loss")
    assert rapid["state"] == "TRIPPED" and "UNKNOWN order counted as filled" in rapid["reason"]
    eventually(lambda: degradation.snapshot().get()["mode"] == "EMERGENCY")


def test_restarted_breaker_reset_still_clears_degradation(world):
    degradation = world.degradation()
    first = world.breaker()
    for seq in range(1, 6):
        trade(world, "s1", 100.0, 99.0, seq)
    eventually(lambda: degradation.snapshot().get()["mode"] == "EMERGENCY")
    assert state_of(first.statuses().get(), "rapid_loss") == "TRIPPED"
    world.refs[-1].stop()  # the first incarnation ends
    fresh = world.breaker()  # a new incarnation: its board never saw the trip
    assert state_of(fresh.statuses().get(), "rapid_loss") == "CLOSED"
    assert degradation.snapshot().get()["mode"] == "EMERGENCY", "degradation still holds the trip"
    fresh.reset("rapid_loss", "reviewed after restart").get()
    eventually(lambda: degradation.snapshot().get()["mode"] == "NORMAL")


# --------------------------------------------------------------------------- F24, F13, F15


def test_f24_malfunction_disables_that_strategy_only(world):
    world.degradation()
    breaker = world.breaker()
    for seq in range(1, 21):  # wins +1, losses -3, alternating: never 5 losses in a row
        trade(world, "s1", 100.0, 101.0 if seq % 2 else 97.0, seq)
    rows = breaker.statuses().get()
    assert state_of(rows, "strategy_malfunction:s1") == "TRIPPED"
    assert state_of(rows, "rapid_loss") == "CLOSED"
    assert world.disabled and world.disabled[0][0] == "s1" and "avg loss" in world.disabled[0][1]
    eventually(lambda: not world.entries_open("BTCUSDT", "s1"), what="s1's entries closed")
    assert world.entries_open("BTCUSDT", "s2"), "other strategies keep trading"

    breaker.reset("strategy_malfunction:s1", "fixed the bug").get()
    eventually(lambda: world.entries_open("BTCUSDT", "s1"))


def test_f13_abnormal_price_pauses_the_symbol_60s_then_resumes_once_valid(world):
    world.degradation()
    breaker = world.breaker()
    world.tell(AbnormalPrice("ETHUSDT", "+24% in 40s"))
    world.tell(PriceValidity("ETHUSDT", False))
    eventually(lambda: not world.entries_open("ETHUSDT"), what="entries paused on ETHUSDT")
    assert world.entries_open("BTCUSDT")

    world.clock.advance(61.0)
    polls = breaker.polls.get()
    eventually(lambda: breaker.polls.get() >= polls + 3, what="polls after the 60 s pause")
    assert state_of(breaker.statuses().get(), "abnormal_price:ETHUSDT") == "TRIPPED"

    world.tell(PriceValidity("ETHUSDT", True))
    eventually(lambda: world.entries_open("ETHUSDT"), what="resumed after 60 s and validation")
    assert state_of(breaker.statuses().get(), "abnormal_price") == "CLOSED"


def test_f15_escalated_strategy_closes_its_entries_until_reset(world):
    world.degradation()
    breaker = world.breaker()
    world.tell(Escalated("strategy:s1", "restart intensity 3 in 600s exceeded", strategy_id="s1"))
    eventually(lambda: not world.entries_open("BTCUSDT", "s1"))
    assert world.entries_open("BTCUSDT", "s2")
    assert state_of(breaker.statuses().get(), "escalation:strategy:s1") == "TRIPPED"
    breaker.reset("escalation:strategy:s1", "strategy fixed").get()
    eventually(lambda: world.entries_open("BTCUSDT", "s1"))


def test_signals_are_redelivered_when_degradation_was_down_and_on_report_request(world):
    breaker = world.breaker()
    for seq in range(1, 6):
        trade(world, "s1", 100.0, 99.0, seq)
    assert breaker.status_details().get()["undelivered"] == 1
    degradation = world.recorder("degradation")
    eventually(lambda: any(getattr(m, "cause", "") == "rapid_loss" and m.active for m in degradation),
               what="re-sent at the next poll")
    eventually(lambda: breaker.status_details().get()["undelivered"] == 0)
    before = len(degradation)
    world.tell(ReportHealth())
    eventually(lambda: any(getattr(m, "cause", "") == "rapid_loss" for m in degradation[before:]),
               what="active trips re-sent when degradation asks")
