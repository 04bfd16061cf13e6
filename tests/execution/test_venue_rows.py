"""F3, F5, F14, F25 regressions found by the chaos scenarios of chaos/scenarios/venue.py.

Real Redis and the simulated exchange over HTTP, the real engine (fast retry backoff);
the strategy-side cases drive the actor or the scheduled kind directly, with no venue.
Invariant checked everywhere: the exchange never executes two orders for one intent.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from actors.core.signals import Effect, Signal
from supervision import ChildSpec, SupervisedActor, Supervisor
from actors.core.stop_index import StopHit, StopSide
from actors.messages import StopsTriggered
from actors.orders import OrderIntent, Purpose
from actors.services import Services
from actors.messages import OrderUpdate
from actors.strategy import ScheduledStrategy, StrategyActor
from runtime.config import Config, StrategyConfig
from runtime.store.runtime_state import Position, Runtime, Status
from runtime.venue.budget import WeightBudget
from supervision import actor_of
from tests.waiting import eventually


def buy(trading, strategy_id="s1", qty=0.01, stop_loss=95_000.0):
    strategy = trading.services.config.strategy(strategy_id)
    intent = OrderIntent(strategy_id, strategy.account, "BTCUSDT", Purpose.ENTRY, qty, stop_loss)
    assert trading.services.submit(intent)
    return intent


def places(trading, prefix: str) -> list[str]:
    return [e["client_order_id"] for e in trading.exchange.ledger()
            if e.get("action") == "place" and str(e.get("client_order_id")).startswith(prefix)]


def unpaced(trading) -> None:
    """The connector's budget without pacing, so a test waits only for what the venue says."""
    trading.services.venue.budget = WeightBudget(max_rate_per_s=1000.0, min_rate_per_s=1000.0)


def test_f5_rate_limit_flood_is_waited_out_not_safety_aborted(make_trading):
    t = make_trading()
    unpaced(t)
    t.exchange.set_fault("http_429", count=5, retry_after_s=0, scope="place")
    buy(t)
    update = t.wait_update("s1", timeout=15)
    assert update.verdict == "FILLED", f"a rate limit is backed off, never counted as F1's 3 retries: {update.reason}"
    assert places(t, "s1:") == ["s1:e1"] * 6, "five 429s, then placed, always with the same client id"
    assert len(t.executed("s1:e1")) == 1
    assert t.runtime("s1").status is Status.ACTIVE


def test_f5_stop_loss_rides_out_a_rate_limit_flood(make_trading):
    t = make_trading()
    buy(t)
    assert t.wait_update("s1").verdict == "FILLED"
    unpaced(t)
    t.exchange.set_fault("http_429", count=6, retry_after_s=0, scope="place")
    hit = StopHit("s1", StopSide.LONG, 95_000.0, 0.01, 94_000.0)
    t.services.directory.ref("execution-engine").tell(StopsTriggered("BTCUSDT", (hit,), 0.0))
    eventually(lambda: t.runtime("s1").position is Position.EXITED_BY_SL, timeout=15,
               what="the stop-loss exit placed after the flood, not given up")
    assert len(t.executed("s1:x1")) == 1, "exactly one exit for one stop"


def test_f3_token_invalid_pauses_every_strategy_of_the_account(make_trading):
    t = make_trading()
    t.exchange.set_fault("token_invalid", count=1, scope="place")
    buy(t)
    assert t.wait_update("s1").verdict == "ACCOUNT_PAUSED"
    paused = t.wait_update("s3")
    assert paused.verdict == "ACCOUNT_PAUSED" and paused.runtime.status is Status.PAUSED, \
        "the account's other strategy is told it is paused"
    assert t.runtime("s1").status is Status.PAUSED and t.runtime("s3").status is Status.PAUSED
    assert t.runtime("s2") is None, "account bob is untouched"
    buy(t, "s3", stop_loss=None)
    refused = t.wait_update("s3", count=2)
    assert refused.verdict == "REFUSED" and "paused" in refused.reason, refused.reason
    buy(t, "s2", qty=0.02, stop_loss=None)
    assert t.wait_update("s2").verdict == "FILLED", "the other account keeps trading"
    assert places(t, "s1:") == ["s1:e1"] and places(t, "s3:") == [], "no retry, nothing from the paused account"


def test_f25_stop_also_refuses_the_order_queued_behind_and_leaves_nothing_in_flight(make_trading):
    t = make_trading()
    t.exchange.set_fault("internal_error", count=100)
    buy(t)
    buy(t)  # the strategy asked again (as the scheduled kind does each second): waits for the first
    eventually(lambda: places(t, "s1:"), what="the first BUY is being retried")
    t.services.engine_cancel("s1")
    verdicts = sorted(u.verdict for u in (t.wait_update("s1"), t.wait_update("s1", count=2)))
    assert verdicts == ["CANCELLED", "REFUSED"], verdicts
    assert all(cid == "s1:e1" for cid in places(t, "s1:")), "nothing new sent after the stop (no s1:e2)"
    engine = t.services.directory.ref("execution-engine")
    eventually(lambda: engine.proxy().status_details().get()["in_flight"] == [], what="nothing left in flight")
    t.exchange.clear_faults()
    buy(t)  # after a restart: a fresh order is not cancelled by the old stop
    assert t.wait_update("s1", count=3).verdict == "FILLED"


class _Store:
    def load_runtime(self, strategy_id: str) -> None:
        return None


def test_f14_strategy_shows_failed_when_the_engine_could_not_load_its_record():
    services = Services(config=Config(), store=_Store(), venue=None)
    config = StrategyConfig(id="c1", kind="scheduled", symbol="BTCUSDT", quantity=0.01,
                            buy_at=datetime.now(timezone.utc) + timedelta(hours=1))
    ref = StrategyActor.start(config, lambda: ScheduledStrategy(config), services)
    try:
        eventually(lambda: services.directory.ref("strategy:c1") is not None)
        actor = actor_of(ref)
        eventually(lambda: actor.status_details()["timers"] == ["buy"], what="buy timer armed")
        reason = "SAFETY_ABORT: corrupt state at 'w:runtime:{c1}' field 'position': 'sideways' is not one of ..."
        ref.tell(OrderUpdate("SAFETY_ABORT", reason, None, None))
        details = eventually(lambda: (d := actor.status_details())["status"] == "failed" and d)
        assert details["reason"] == reason and details["timers"] == [], "failed + reason shown, timers cancelled"
    finally:
        ref.stop()
        services.timers.stop()


class _Ctx:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime, self.bought, self.timers = runtime, 0, []

    def schedule(self, name: str, at: Any) -> None:
        self.timers.append(name)

    def buy(self, qty: float, stop_loss: float | None = None, reason: str = "") -> None:
        self.bought += 1

    def cancel(self, name: str) -> None:
        pass


def test_scheduled_entry_is_tried_once_per_start_and_again_after_enable():
    config = StrategyConfig(id="a1", kind="scheduled", symbol="BTCUSDT", quantity=0.01,
                            buy_at=datetime.now(timezone.utc), sell_at=datetime.now(timezone.utc) + timedelta(hours=1))
    strategy, ctx = ScheduledStrategy(config), _Ctx(Runtime())
    strategy.on_start(ctx)
    strategy.on_timer(ctx, "buy")
    assert ctx.bought == 1
    ctx.runtime = Runtime(entry_seq=1, status=Status.PAUSED, reason="TOKEN_INVALID")  # F3: e1 refused
    strategy.on_timer(ctx, "buy")
    ctx.runtime = replace(ctx.runtime, status=Status.ACTIVE, reason="")  # e1 settled, never reached the venue
    strategy.on_timer(ctx, "buy")
    assert ctx.bought == 1, "one entry per incarnation: a failed one is not resent behind the operator's back"
    enabled, ctx2 = ScheduledStrategy(config), _Ctx(replace(ctx.runtime))  # operator enable = a fresh start
    enabled.on_start(ctx2)
    assert ctx2.timers == ["buy"]
    enabled.on_timer(ctx2, "buy")
    assert ctx2.bought == 1, "after enable the scheduled entry is tried again (it will be a1:e2)"
    ctx2.runtime = Runtime(entry_seq=2, pending_order="a1:e2", pending_purpose="entry")
    enabled.on_timer(ctx2, "buy")
    assert ctx2.bought == 1, "never while an entry is pending"



class DegradationRecorder(SupervisedActor):
    """Registers as `degradation` and records the signals the engine sends it."""

    def __init__(self, services: Services, seen: list[Any]) -> None:
        super().__init__()
        self.services, self.seen = services, seen

    def on_start(self) -> None:
        self.services.directory.register("degradation", self.generation, self.actor_ref)

    def on_receive(self, message: Any) -> Any:
        self.seen.append(message)


def test_f5_persistent_rate_limiting_signals_reduced(make_trading):
    t = make_trading()
    seen: list[Any] = []
    recorder = Supervisor.start(children=[ChildSpec("degradation", DegradationRecorder, args=(t.services, seen))])
    try:
        t.exchange.set_fault("http_429", count=6, retry_after_s=0)
        t.services.submit(OrderIntent("s1", "alice", "BTCUSDT", Purpose.ENTRY, 0.01, 95_000.0))
        assert t.wait_update("s1", timeout=20).verdict == "FILLED", "rate limits delay an order, never abort it"
        reduced = eventually(lambda: [m for m in seen if isinstance(m, Signal) and m.effect is Effect.REDUCED],
                             what="a REDUCED signal for persistent rate limiting")
        assert reduced[0].active and reduced[0].cause == "rate_limit"
    finally:
        recorder.stop()
