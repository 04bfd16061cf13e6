"""Violations the soak found (chaos/soak_seeds.txt), each reproduced deterministically.

Real Redis, the simulated exchange over HTTP and WebSocket, the real engine and position
manager. Each test is named after the seed and the invariant its violation broke.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from loguru import logger

from actors import crash_windows
from actors.core.retry import RetryConfig
from actors.messages import CancelStrategy, StopsTriggered
from actors.orders import OrderIntent, Purpose
from actors.protection import open_positions, place_protective_stops
from actors.recovery import RecoveryReport, load_and_arm
from runtime.alerts import alert_for
from runtime.store.runtime_state import Position
from runtime.venue.budget import Priority, WeightBudget
from tests.execution.conftest import LATE_LANDING_S, SETTLE_WINDOW_S, start_tree
from tests.waiting import eventually


def buy(trading, strategy_id="s1", qty=0.01, stop_loss=95_000.0):
    strategy = trading.services.config.strategy(strategy_id)
    assert trading.services.submit(OrderIntent(strategy_id, strategy.account, "BTCUSDT", Purpose.ENTRY, qty,
                                               stop_loss))


def ticks_below_stop(trading, seconds: float, price: float = 94_000.0) -> None:
    """A feed that keeps ticking under the stop, as the state builder delivers it: every armed
    stop crossed is popped from the book and told to the engine, tick after tick."""
    engine = trading.services.directory.ref("execution-engine")
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        hits = trading.services.stops.triggered("BTCUSDT", price)
        if hits:
            engine.tell(StopsTriggered("BTCUSDT", tuple(hits), time.perf_counter()))
        time.sleep(0.01)


def exit_requests(trading, strategy_id: str) -> list[dict]:
    return [e for e in trading.exchange.ledger() if e.get("action") == "place"
            and str(e.get("client_order_id")).startswith(f"{strategy_id}:x")]


def test_seed21_I3_reduce_only_rejection_is_final_never_a_resend_storm(make_trading):
    """Seeds 21/31: an exit refused -2022 ("ReduceOnly Order is rejected": the venue holds nothing
    to reduce on that side) was re-armed and re-sent on every tick: 3,543 rejections in 5 min."""
    t = make_trading()
    buy(t)
    assert t.wait_update("s1").verdict == "FILLED"
    # Someone else closes the venue's position (a protective stop, a sibling's double exit).
    closed = t.services.venue.place_order("BTCUSDT", "SELL", "MARKET", 0.01, "ops:close1", reduce_only=True)
    assert closed.ok, closed.describe()
    reconciles_before = sum(1 for s in t.signals if getattr(s, "cause", "") == "reconcile_barrier")
    alerts: list[dict] = []
    sink = logger.add(lambda m: alerts.append(alert_for(m.record["extra"], m.record["level"].name, "n", 0.0)))
    try:
        ticks_below_stop(t, 2.0)
    finally:
        logger.remove(sink)
    time.sleep(LATE_LANDING_S)
    sent = exit_requests(t, "s1")
    assert [(e["client_order_id"], e["code"]) for e in sent] == [("s1:x1", -2022)], \
        f"I3: an exit the venue refuses -2022 is a final outcome, sent once, never re-sent per tick: " \
        f"{len(sent)} requests {[e['client_order_id'] for e in sent][:5]}..."
    runtime = t.runtime("s1")
    assert runtime.position is not Position.BOUGHT and runtime.quantity == 0 and not runtime.pending_order, \
        f"the runtime follows the venue (nothing to reduce): {runtime}"
    assert t.services.stops.armed("BTCUSDT", "s1") is None, "the stop is not re-armed to ask again per tick"
    assert t.store.unsettled() == [], "the refused exit has a final outcome in the journal"
    assert [a["event"] for a in alerts if a and a["details"].get("strategy") == "s1"] == ["exit_nothing_to_reduce"], \
        "the operator is alerted once that the position is gone at the venue"
    eventually(lambda: sum(1 for s in t.signals if getattr(s, "cause", "") == "reconcile_barrier")
               > reconciles_before, timeout=10, what="the symbol reconciled with the venue after the -2022")


def sells(trading, strategy_id: str) -> list[str]:
    """Every SELL the exchange executed for the strategy: its orders and its triggered venue stops."""
    time.sleep(LATE_LANDING_S)
    return [str(e["client_order_id"]) for e in trading.exchange.ledger() if e.get("executed")
            and e.get("side") == "SELL" and e.get("action") in ("place", "trigger")
            and str(e.get("client_order_id")).startswith(f"{strategy_id}:")]


def test_seed21_I1_an_exit_takes_back_the_protective_stop_first_never_two_exits(make_trading):
    """Seed 21: the protective stops SIGTERM placed were not all taken back after the restart
    (their lookups were rate limited); t15's own exit x7 executed while t15:p7 stayed live, and
    p7 triggered later, selling a sibling's position (venue net short for t15)."""
    t = make_trading()
    buy(t, "s1")
    buy(t, "s2", qty=0.02, stop_loss=None)  # a sibling on the symbol: the venue's net stays long
    assert t.wait_update("s1").verdict == "FILLED" and t.wait_update("s2").verdict == "FILLED"
    placed = place_protective_stops(t.services, [(t.services.config.strategy("s1"), t.runtime("s1"))],
                                    "test: as a graceful stop leaves it", component="test")
    assert placed.placed == {"s1": "s1:p1"}
    assert t.services.submit(OrderIntent("s1", "alice", "BTCUSDT", Purpose.EXIT, reason="target reached"))
    eventually(lambda: t.runtime("s1").position is Position.SOLD, timeout=10, what="s1 sold")
    t.exchange.set_price("BTCUSDT", 94_000.0)  # through s1's stop level: a live p1 would trigger now
    assert sells(t, "s1") == ["s1:x1"], "I1: one position, one exit: the protective stop is taken back first"
    assert t.exchange.engine.open_algos({}) == [], "no protective stop left live at the venue"
    assert float(t.exchange.position("BTCUSDT")["positionAmt"]) == 0.02, "the sibling's position is untouched"
    assert not t.services.protective.holds("s1") and t.store.unsettled() == []


def test_seed31_I1_protective_stop_triggered_first_then_no_exit_of_our_own(make_trading):
    """Seed 31: t27:p2 (left by SIGTERM, not taken back) triggered; the engine, not knowing,
    still sent its own exit t27:x2 later: the venue sold twice for one position."""
    t = make_trading()
    buy(t, "s1")
    buy(t, "s2", qty=0.02, stop_loss=None)
    assert t.wait_update("s1").verdict == "FILLED" and t.wait_update("s2").verdict == "FILLED"
    place_protective_stops(t.services, [(t.services.config.strategy("s1"), t.runtime("s1"))],
                           "test: as a graceful stop leaves it", component="test")
    t.exchange.set_price("BTCUSDT", 94_000.0)  # p1 triggers at the venue
    eventually(lambda: t.exchange.engine.open_algos({}) == [], timeout=10, what="s1:p1 triggered")
    assert t.services.submit(OrderIntent("s1", "alice", "BTCUSDT", Purpose.EXIT, reason="target reached"))
    eventually(lambda: t.runtime("s1").position is not Position.BOUGHT, timeout=10, what="s1 no longer long")
    assert sells(t, "s1") == ["s1:p1"], "I1: the protective stop exited the position; no exit of our own"
    assert t.runtime("s1").position is Position.EXITED_BY_SL, "the runtime learns the protective stop exited it"
    assert float(t.exchange.position("BTCUSDT")["positionAmt"]) == 0.02, "the sibling's position is untouched"
    assert not t.services.protective.holds("s1") and t.store.unsettled() == []


def test_seed11_I3_a_stop_loss_never_waits_behind_strategy_exits(make_trading):
    """Seed 11 (+131 s): stop-losses crossed with the daemon up went out 18-22 s late. Strategy
    exits stuck in long waits (rate-limit pacing, lookups of a send still in flight) held every
    worker of the pool that stop-losses share with them; the stop-losses queued behind."""
    t = make_trading(start=False)
    start_tree(t, stop_workers=2)
    for strategy_id in ("s1", "s2", "s3"):
        buy(t, strategy_id, stop_loss=95_000.0 if strategy_id == "s1" else None)
        assert t.wait_update(strategy_id).verdict == "FILLED"
    # The two exits are delayed 3 s in flight: each holds its worker until its send can no longer land.
    t.exchange.set_fault("network_delay", count=2, ms=3000, scope="place")
    for strategy_id in ("s2", "s3"):
        assert t.services.submit(OrderIntent(strategy_id, t.services.config.strategy(strategy_id).account,
                                             "BTCUSDT", Purpose.EXIT, reason="target reached"))
    eventually(lambda: t.runtime("s2").pending_order == "s2:x1" and t.runtime("s3").pending_order == "s3:x1",
               timeout=10, what="both exits sent (and in flight)")
    hits = t.services.stops.triggered("BTCUSDT", 94_000.0)
    t.services.directory.ref("execution-engine").tell(StopsTriggered("BTCUSDT", tuple(hits), time.perf_counter()))
    eventually(lambda: t.runtime("s2").position is Position.SOLD and t.runtime("s3").position is Position.SOLD
               and t.runtime("s1").position is Position.EXITED_BY_SL, timeout=20, what="all three flat")
    order = [e["client_order_id"] for e in t.exchange.ledger() if e.get("executed") and e.get("side") == "SELL"]
    assert order[0] == "s1:x1", f"I3: the stop-loss goes out at once, never queued behind slow exits: {order} " \
        f"{[(e['client_order_id'], e['time_ms'] % 100000, e['outcome']) for e in t.exchange.ledger()]}"


def stop_placed_beside_the_exit(trading, strategy_id: str = "s1") -> None:
    """A venue-side protective stop live while the strategy's exit is in progress, as monitor:store
    placed it before seed 4242 (without the strategy's serialization): journaled, held, local stop
    disarmed. It can no longer happen that way; the exit's resend still takes such a stop back first."""
    strategy = trading.services.config.strategy(strategy_id)
    runtime = trading.services.runtime_cache.get(strategy_id)
    client_id = f"{strategy_id}:p{runtime.entry_seq}"
    trading.store.journal_intent_or_buffer(client_id, {"strategy_id": strategy_id, "account": strategy.account,
                                                       "symbol": strategy.symbol, "side": "SELL",
                                                       "quantity": repr(runtime.quantity),
                                                       "purpose": "protective_stop",
                                                       "stop_loss": repr(runtime.stop_loss), "reason": "test"})
    outcome = trading.services.venue.place_stop(strategy.symbol, "SELL", runtime.stop_loss, runtime.quantity,
                                                client_id)
    assert outcome.ok, outcome.describe()
    trading.store.journal_outcome_or_buffer(client_id, "ACCEPTED", {"strategy_id": strategy_id}, final=False)
    trading.services.protective.hold(strategy_id, client_id)
    trading.services.stops.disarm(strategy.symbol, strategy_id)


def test_seed296462_I1_an_exit_resent_after_a_protective_stop_was_placed_takes_it_back_first(make_trading):
    """Seed 296462: t04's exit x17 was waiting to be sent again (rate limits) when the store outage
    passed protect_after_s and t04:p17 was placed at the venue; x17 went out later and p17 triggered
    too: two exits for one position."""
    t = make_trading()
    buy(t, "s1")
    buy(t, "s2", qty=0.02, stop_loss=None)
    assert t.wait_update("s1").verdict == "FILLED" and t.wait_update("s2").verdict == "FILLED"
    t.exchange.set_fault("unknown_503", count=1, execute=False, scope="place")  # x1 in doubt, never ran
    assert t.services.submit(OrderIntent("s1", "alice", "BTCUSDT", Purpose.EXIT, reason="target reached"))
    eventually(lambda: t.runtime("s1").pending_order == "s1:x1", timeout=10, what="s1:x1 in doubt")
    placed = place_protective_stops(t.services, [(t.services.config.strategy("s1"), t.runtime("s1"))],
                                    "test: the store outage passed protect_after_s", component="test")
    assert placed.placed == {} and "in progress" in placed.unprotected["s1"], \
        "seed 4242: no venue-side stop is placed beside an exit in progress"
    stop_placed_beside_the_exit(t)  # as before seed 4242: the resend's own defence must hold too
    eventually(lambda: t.runtime("s1").position is Position.SOLD, timeout=15, what="x1 settled and sent again")
    t.exchange.set_price("BTCUSDT", 94_000.0)  # through s1's stop level: a live p1 would trigger now
    assert sells(t, "s1") == ["s1:x1"], "I1: one position, one exit: the resend takes the protective stop back"
    assert float(t.exchange.position("BTCUSDT")["positionAmt"]) == 0.02, "the sibling's position is untouched"


def test_seed1001_I1_I4_an_unknown_exit_that_executes_while_the_resend_waits_is_never_sent_again(
        make_trading, redis_server):
    """Seed 1001 (+1010 s): t49:x77 got 503 "unknown" and executed 5.77 s after it arrived. The
    lookups said NOT_FOUND until the settle window passed (+5.0 s, final), then the engine waited
    its retry backoff (1.1 s) and resent the same client id without looking again: the late
    execution landed inside that backoff, the venue took the resend as a new order, and the exit
    sold twice. The extra 0.004 was a sibling's position: when Redis was then killed and t25's
    stop-loss crossed, the venue held nothing left for it ("no long position: nothing to exit")."""
    backoff_s = 3.0  # the resend waits this long after the final NOT_FOUND (the daemon's: 1-1.2 s)
    t = make_trading(retry=RetryConfig(backoff=(backoff_s,), jitter=0.0))
    buy(t, "s1", stop_loss=None)
    buy(t, "s3")  # a sibling on the same account and symbol: one venue position for both
    assert t.wait_update("s1").verdict == "FILLED" and t.wait_update("s3").verdict == "FILLED"
    # x1 answered "unknown"; it executes after the settle window, before the resend's backoff ends.
    t.exchange.set_fault("unknown_503", count=1, execute=True, execute_after_s=SETTLE_WINDOW_S + 1.0,
                         scope="place")
    assert t.services.submit(OrderIntent("s1", "alice", "BTCUSDT", Purpose.EXIT, reason="target reached"))
    eventually(lambda: t.runtime("s1").position is Position.SOLD, timeout=20, what="s1:x1 settled")
    assert sells(t, "s1") == ["s1:x1"], \
        "I1: one intent, at most one executed order: the resend looks the order up once more first"
    assert float(t.exchange.position("BTCUSDT")["positionAmt"]) == 0.01, "the sibling's position is untouched"
    # t25's half: Redis dies, the sibling's stop crosses; its exit runs from the last known runtime.
    redis_server.kill()
    ticks_below_stop(t, 1.0)
    eventually(lambda: float(t.exchange.position("BTCUSDT")["positionAmt"]) == 0.0, timeout=10,
               what="I3: the sibling's stop-loss exited its position with Redis down")
    redis_server.restart()
    assert sells(t, "s3") == ["s3:x1"], "I4: the sibling's exit sold its own position, once"


def test_seed1001_I1_an_exit_whose_resend_is_refused_learns_the_late_execution_first(make_trading):
    """Seed 1001 replayed 3 min (unknown_late, redis_kill, price_spike): t49:x8 got 503 "unknown"
    and executed 5.81 s later. Its lookups settled NOT_FOUND; the store outage placed t49:p8 meanwhile;
    the resend took p8 back first, whose cancel got "unknown" too, so the resend was refused and x8
    recorded as never executed, though it had executed during the backoff: the runtime stayed long
    and the strategy's next exit x8.2 sold again."""
    t = make_trading(retry=RetryConfig(backoff=(3.0,), jitter=0.0))
    buy(t, "s1")
    buy(t, "s3", stop_loss=None)
    assert t.wait_update("s1").verdict == "FILLED" and t.wait_update("s3").verdict == "FILLED"
    t.exchange.set_fault("unknown_503", count=1, execute=True, execute_after_s=SETTLE_WINDOW_S + 1.0,
                         scope="place")
    assert t.services.submit(OrderIntent("s1", "alice", "BTCUSDT", Purpose.EXIT, reason="target reached"))
    eventually(lambda: t.runtime("s1").pending_order == "s1:x1", timeout=10, what="s1:x1 in doubt")
    stop_placed_beside_the_exit(t)  # the store outage placed p1 (before seed 4242's fix)
    t.exchange.set_fault("unknown_503", count=1, execute=False, scope="DELETE /fapi/v1/algoOrder")
    update = t.wait_update("s1", count=2, timeout=20)
    assert t.runtime("s1").position is Position.SOLD, \
        f"the late execution of s1:x1 is learned before the resend is given up: {update.verdict} {update.reason}"
    assert t.services.submit(OrderIntent("s1", "alice", "BTCUSDT", Purpose.EXIT, reason="target reached again"))
    t.wait_update("s1", count=3, timeout=20)
    assert sells(t, "s1") == ["s1:x1"], "I1: one position, one exit: no second exit after the late one"
    assert float(t.exchange.position("BTCUSDT")["positionAmt"]) == 0.01, "the sibling's position is untouched"


EXIT_TOKEN_WAIT_S = 80.0  # how long an EXIT-priority request waits for a token in paced_after_a_429_flood


def paced_after_a_429_flood(trading) -> None:
    """The request budget as a long 429 flood leaves it: the minimum rate and the bucket in debt.
    A stop may still borrow (STOP_BORROW_TOKENS); an exit waits EXIT_TOKEN_WAIT_S for its token."""
    budget = WeightBudget(min_rate_per_s=0.05)
    for _ in range(10):
        budget.observe(status=429, used_weight=None, retry_after_s=0.0)
    for _ in range(4):
        assert budget.acquire(Priority.STOP).allowed
    assert budget.acquire(Priority.EXIT).wait_s >= EXIT_TOKEN_WAIT_S - 1
    trading.services.venue.budget = budget


def dip_with_reconcile_rounds(trading, prices: list[tuple[float, float]], until) -> None:
    """Ticks at each (price, seconds), as the state builder delivers them, while the position
    manager's reconcile rounds run every 0.25 s (monitor:store asks for one after each buffer
    replay while they fail): each round re-arms the stop of every position the store says is long."""
    engine = trading.services.directory.ref("execution-engine")
    for price, seconds in prices:
        ends = time.monotonic() + seconds
        next_round = 0.0
        while time.monotonic() < ends and not until():
            if time.monotonic() >= next_round:
                load_and_arm(trading.services, RecoveryReport())
                next_round = time.monotonic() + 0.25
            hits = trading.services.stops.triggered("BTCUSDT", price)
            if hits:
                engine.tell(StopsTriggered("BTCUSDT", tuple(hits), time.perf_counter()))
            time.sleep(0.02)


def three_long(make_trading, stop_workers: int, stops: tuple[float, float, float]):
    """s1, s2 (twice s1's size) and s3 long on BTCUSDT with these stop levels; `stop_workers` stop workers."""
    t = make_trading(start=False)
    start_tree(t, stop_workers=stop_workers)
    for (sid, qty), level in zip((("s1", 0.01), ("s2", 0.02), ("s3", 0.01)), stops):
        buy(t, sid, qty=qty, stop_loss=level)
    assert all(t.wait_update(sid).verdict == "FILLED" for sid in ("s1", "s2", "s3"))
    return t


def stop_loss_refusals(records: list[dict]) -> list[str]:
    return [f"{r['details']['strategy']}: {r['details']['reason']}" for r in records
            if r.get("event") == "order_refused" and r.get("details", {}).get("purpose") == "stop_loss"]


def test_seed1001_I3_a_stop_loss_is_never_queued_behind_duplicates_of_busy_strategies(make_trading):
    """Seed 1001 (+939..956 s, after a 6.3 s 429 flood): the budget paced everything at 1.25 req/s
    and several strategies' own exits waited out the pacing, each holding its strategy's lock. Their
    stops crossed; every reconcile round (4 a second while reconciles failed) re-armed them, and
    every tick sent another stop-loss for them, each waiting lock_wait_s (2 s) in a stop worker
    for a lock it could not get. The stop pool filled with them: t25's and t34's stop-losses (no
    order of their own in flight) went out 12-13 s after their crossing."""
    t = three_long(make_trading, stop_workers=4, stops=(95_000.0, 96_000.0, 96_000.0))
    records: list[dict] = []
    sink = logger.add(lambda m: records.append({"event": m.record["extra"].get("event"),
                                                "details": m.record["extra"].get("details") or {}}))
    try:
        paced_after_a_429_flood(t)
        for sid in ("s2", "s3"):  # their own exits wait out the pacing, holding their locks
            assert t.services.submit(OrderIntent(sid, t.services.config.strategy(sid).account, "BTCUSDT",
                                                 Purpose.EXIT, reason="target reached"))
        eventually(lambda: t.runtime("s2").pending_order and t.runtime("s3").pending_order, timeout=10,
                   what="s2's and s3's exits waiting out the pacing")
        dip_with_reconcile_rounds(t, [(95_500.0, 2.0), (94_000.0, 10.0)],
                                  until=lambda: t.runtime("s1").position is not Position.BOUGHT)
        assert t.runtime("s1").position is Position.EXITED_BY_SL, "I3: s1's stop-loss exited its position"
        assert stop_loss_refusals(records) == [], \
            "I3: one crossing, one stop-loss in progress: no second stop-loss is queued for a strategy whose " \
            "stop-loss or exit is already in progress (each held a stop worker for lock_wait_s)"
    finally:
        logger.remove(sink)
        for sid in ("s2", "s3"):
            t.services.directory.ref("execution-engine").tell(CancelStrategy(sid))


def test_seed1001_I3_a_stop_crossing_hurries_the_strategys_own_exit_in_flight(make_trading):
    """Seed 1001 (+941..955 s): t37's exit x65 waited out the pacing at EXIT priority (attempt 8 by
    +950 s) when its stop crossed; its stop-loss could not run while x65 held the strategy's lock, so
    the position exited only when x65 got an exit's token, 11.8 s after the crossing (t07, t22 alike).
    The crossing makes that exit a stop's: it goes at STOP priority at once."""
    t = make_trading(start=False)
    start_tree(t, stop_workers=4)
    buy(t, "s2", qty=0.02, stop_loss=96_000.0)
    assert t.wait_update("s2").verdict == "FILLED"
    try:
        paced_after_a_429_flood(t)
        assert t.services.submit(OrderIntent("s2", "bob", "BTCUSDT", Purpose.EXIT, reason="target reached"))
        eventually(lambda: t.runtime("s2").pending_order == "s2:x1", timeout=10,
                   what="s2's exit waiting out the pacing")
        crossed = time.monotonic()
        dip_with_reconcile_rounds(t, [(95_500.0, 30.0)],
                                  until=lambda: t.runtime("s2").position is not Position.BOUGHT)
        assert time.monotonic() - crossed < EXIT_TOKEN_WAIT_S / 2 and sells(t, "s2") == ["s2:x1"], \
            f"I3: the crossing sends s2's exit in flight at once, at STOP priority (an exit's token is " \
            f"{EXIT_TOKEN_WAIT_S:g} s away), and it is the position's one exit: {sells(t, 's2')}"
    finally:
        t.services.directory.ref("execution-engine").tell(CancelStrategy("s2"))


def long_with_a_sibling(trading):
    """s1 bought with a stop and s3 without, on one account and symbol: one venue position for both."""
    buy(trading, "s1")
    buy(trading, "s3", stop_loss=None)
    assert trading.wait_update("s1").verdict == "FILLED" and trading.wait_update("s3").verdict == "FILLED"
    return trading


@contextmanager
def redis_hung(trading, redis_server) -> Iterator[None]:
    """Redis SIGSTOPped (hung, not refused) and marked down, as monitor:store does when its probe
    times out; SIGCONT after (still marked down: the test says when monitor:store marks it up)."""
    pid = redis_server.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        trading.store.mark_down("test: Redis SIGSTOPped")
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_seed295_I1_an_exit_after_redis_returns_reads_no_runtime_older_than_the_disk_buffer(
        make_trading, redis_server):
    """Seed 295 (+45 s): Redis was SIGSTOPped for 8 s; t19's exit x5 ran from the last known runtime
    and sold, its outcome written to the disk buffer. When Redis answered again, monitor:store
    marked it up and only then replayed the buffer; in between, t19's next exit read `runtime:t19`
    from Redis (still long, x5 not recorded there), sent x5 again, and the venue sold twice: the
    extra 0.004 was a sibling's position (t46's later exit was rejected -2022, its stop never ran)."""
    t = long_with_a_sibling(make_trading())
    with redis_hung(t, redis_server):
        ticks_below_stop(t, 0.5)
        eventually(lambda: float(t.exchange.position("BTCUSDT")["positionAmt"]) == 0.01, timeout=10,
                   what="s1's stop-loss exit sold from the last known runtime with Redis hung")
        assert t.store.buffer_pending(), "the exit's outcome waits in the disk buffer"
    t.store.mark_up()  # monitor:store's first step when Redis answers again; the replay comes after it
    assert t.services.submit(OrderIntent("s1", "alice", "BTCUSDT", Purpose.EXIT, reason="target reached"))
    update = t.wait_update("s1", count=2, timeout=10)
    assert t.store.buffer_pending(), "the exit above ran before the replay, as in the soak"
    assert sells(t, "s1") == ["s1:x1"], \
        f"I1: one position, one exit: nothing is read from Redis while the disk buffer holds newer records " \
        f"({update.verdict}: {update.reason})"
    assert float(t.exchange.position("BTCUSDT")["positionAmt"]) == 0.01, "the sibling's position is untouched"
    t.store.replay_buffer()
    assert t.runtime("s1").position is not Position.BOUGHT, "the replayed buffer records the exit"


def test_seed1001_I3_a_queued_stop_loss_is_not_queued_again_on_every_tick(make_trading):
    """Seed 1001, what is left once an exit in progress is promoted: a stop-loss still waiting for a
    stop worker (every worker busy waiting out the pacing) holds no lock, so nothing is promoted, and
    each tick and each reconcile round queued another stop-loss for it. Once it ran, each duplicate
    waited lock_wait_s for its lock or was refused: a stop worker per duplicate, other stops behind."""
    t = three_long(make_trading, stop_workers=1, stops=(96_000.0, 96_000.0, 95_000.0))
    records: list[dict] = []
    sink = logger.add(lambda m: records.append({"event": m.record["extra"].get("event"),
                                                "details": m.record["extra"].get("details") or {}}))
    try:
        budget = WeightBudget(min_rate_per_s=0.5)  # a stop's token is 2 s away: the one worker waits
        for _ in range(10):
            budget.observe(status=429, used_weight=None, retry_after_s=0.0)
        while budget.acquire(Priority.STOP).allowed:
            pass
        t.services.venue.budget = budget
        dip_with_reconcile_rounds(t, [(95_500.0, 2.0), (94_000.0, 30.0)],
                                  until=lambda: all(t.runtime(sid).position is not Position.BOUGHT
                                                    for sid in ("s1", "s2", "s3")))
        assert [t.runtime(sid).position for sid in ("s1", "s2", "s3")] == [Position.EXITED_BY_SL] * 3, \
            "I3: every crossed stop exited its position"
        assert stop_loss_refusals(records) == [], \
            "I3: one crossing, one stop-loss: a stop-loss waiting for a worker is not queued again per tick"
    finally:
        logger.remove(sink)


def test_seed4242_I1_exits_triggered_again_before_the_replay_never_resend_a_buffered_exit(
        make_trading, redis_server):
    """Seed 4242 (+1713..+1716 s, load average 128): Redis hung; t42's exit x63 ran from the last
    known runtime, its send timed out ("unknown", it executed later) and a lookup settled it FILLED,
    the outcome going to the disk buffer. A replay was interrupted by the next hang; when Redis
    answered again two more "soak trader sell" exits read `runtime:t42` from Redis (long, x63 never
    recorded there) and sent x63 twice more: the venue sold three times (t48:x63, t25:x92, t18:x124,
    t07:x66 the same). The last known runtime was current all along: the reads bypassed it."""
    t = long_with_a_sibling(make_trading())
    with redis_hung(t, redis_server):
        # x1's reply is "unknown"; it executes shortly after, and the lookup finds it FILLED.
        t.exchange.set_fault("unknown_503", count=1, execute=True, execute_after_s=0.3, scope="place")
        assert t.services.submit(OrderIntent("s1", "alice", "BTCUSDT", Purpose.EXIT, reason="soak trader sell"))
        eventually(lambda: float(t.exchange.position("BTCUSDT")["positionAmt"]) == 0.01, timeout=15,
                   what="s1's exit sold from the last known runtime with Redis hung")
        eventually(lambda: t.services.runtime_cache.get("s1").position is Position.SOLD, timeout=15,
                   what="the lookup settled x1 FILLED and the last known runtime says so")
        assert t.store.buffer_pending(), "the exit's outcome waits in the disk buffer"
    t.store.mark_up()  # monitor:store's first step when Redis answers again; the replay comes after it
    assert t.services.submit(OrderIntent("s1", "alice", "BTCUSDT", Purpose.EXIT, reason="soak trader sell"))
    ticks_below_stop(t, 0.5)  # and the stop-loss crosses: a third trigger for the same position
    assert t.services.submit(OrderIntent("s1", "alice", "BTCUSDT", Purpose.EXIT, reason="soak trader sell"))
    assert t.store.buffer_pending(), "the exits above ran before the replay, as in the soak"
    assert sells(t, "s1") == ["s1:x1"], \
        "I1: one position, one exit, whatever the store does: exits triggered again before the replay " \
        "read the last known runtime, which recorded x1's fill"
    assert float(t.exchange.position("BTCUSDT")["positionAmt"]) == 0.01, "the sibling's position is untouched"
    t.store.replay_buffer()
    assert t.runtime("s1").position is not Position.BOUGHT, "the replayed buffer records the exit"


def test_seed4242_I1_a_protective_stop_is_never_placed_beside_an_exit_in_progress(make_trading, redis_server):
    """Seed 4242 (+386..+397 s): Redis killed; t36's stop-loss exit x19 expired half-executed
    (market_expire), and so did its remainder x19.2. Between two remainder rounds monitor:store,
    Redis down for protect_after_s, read t36's last known runtime (long 0.002) and placed the
    venue-side stop p19 for it; p19 triggered, and the exit's next round x19.3 sold the 0.002 too:
    t36#19 exited 0.006 for 0.004, the extra a sibling's position."""
    t = make_trading()
    buy(t, "s1")
    buy(t, "s3", stop_loss=None)  # a sibling on the same account and symbol: one venue position for both
    assert t.wait_update("s1").verdict == "FILLED" and t.wait_update("s3").verdict == "FILLED"
    redis_server.kill()
    t.store.mark_down("test: Redis killed")
    exit_done = threading.Event()

    def monitor_store_protects() -> None:
        """monitor:store's F28 round, as often as it could come: every open position in the cache."""
        while not exit_done.is_set():
            positions = open_positions([t.services.config.strategy("s1")], t.services.runtime_cache.get)
            place_protective_stops(t.services, positions, "store down: venue-side protective stop",
                                   component="monitor:store")
            time.sleep(0.005)

    protector = threading.Thread(target=monitor_store_protects, daemon=True)
    try:
        t.exchange.set_fault("market_expire", count=2, ratio=0.5)  # x1 and x1.2 expire half-executed
        protector.start()
        ticks_below_stop(t, 0.3)
        eventually(lambda: t.services.runtime_cache.get("s1").position is Position.EXITED_BY_SL, timeout=20,
                   what="s1's stop-loss exit and its remainders ran from the last known runtime")
    finally:
        exit_done.set()
        protector.join(timeout=10)
    assert sells(t, "s1") == ["s1:x1", "s1:x1.2", "s1:x1.3"], "I1: one position, one exit"
    stops = sorted(a["clientAlgoId"] for a in t.exchange.engine.open_algos({}))
    assert stops == [], f"I1: no venue-side stop was placed beside the exit in progress: {stops} live"
    assert float(t.exchange.position("BTCUSDT")["positionAmt"]) == 0.01, "the sibling's position is untouched"
    redis_server.restart()


def test_seed4242_I1_an_exit_remainder_takes_back_a_stop_placed_beside_it_first(make_trading, monkeypatch):
    """Seed 4242 t36#19, the exit's side: a venue-side stop that came to hold the position between two
    F30 remainder rounds (the graceful stop still places beside the orders it abandons) is taken back
    before the next round, as a resend does (seed 296462); x19.3 went out beside a live p19."""
    t = long_with_a_sibling(make_trading())
    placed: list[str] = []

    def between_rounds(name: str, client_order_id: str) -> None:
        if name == "after_write" and client_order_id == "s1:x1" and not placed:
            stop_placed_beside_the_exit(t)  # x1's outcome is written; the remainder goes next
            placed.append("s1:p1")

    monkeypatch.setattr(crash_windows, "reached", between_rounds)
    t.exchange.set_fault("market_expire", count=1, ratio=0.5)  # x1 expires half-executed
    ticks_below_stop(t, 0.3)
    eventually(lambda: t.runtime("s1").position is Position.EXITED_BY_SL, timeout=20, what="s1 exited")
    assert placed == ["s1:p1"], "the stop was placed between the rounds"
    t.exchange.set_price("BTCUSDT", 94_000.0)  # through s1's stop level: a live p1 would trigger now
    assert sells(t, "s1") == ["s1:x1", "s1:x1.2"], "I1: one position, one exit"
    assert t.exchange.engine.open_algos({}) == [], "p1 was taken back before x1.2"
    assert float(t.exchange.position("BTCUSDT")["positionAmt"]) == 0.01, "the sibling's position is untouched"


def test_seed724076_I3_a_deferred_exit_is_recorded_off_the_wire_and_on_it_again_before_it_goes(
        make_trading, monkeypatch):
    """Seed 724076: the budget deferred an exit's first attempt locally and a SIGKILL then left the
    next start unable to tell that nothing had left. The deferral is recorded (pending_sends 0), and
    the attempt that does go is recorded as possibly on the wire (1) before it is sent."""
    t = make_trading(start=False)
    start_tree(t, stop_workers=4)
    buy(t, "s2", qty=0.02, stop_loss=96_000.0)
    assert t.wait_update("s2").verdict == "FILLED"
    on_the_wire: list[int] = []

    def replied(name: str, client_order_id: str) -> None:
        if name == "after_reply" and client_order_id == "s2:x1" and t.exchange.ledger("s2:x1"):
            on_the_wire.append(t.runtime("s2").pending_sends)  # a send the venue saw: what was recorded for it

    monkeypatch.setattr(crash_windows, "reached", replied)
    try:
        paced_after_a_429_flood(t)
        assert t.services.submit(OrderIntent("s2", "bob", "BTCUSDT", Purpose.EXIT, reason="target reached"))
        eventually(lambda: (r := t.runtime("s2")).pending_order == "s2:x1" and r.pending_sends == 0, timeout=10,
                   what="s2's exit deferred by the budget, recorded as not on the wire")
        assert on_the_wire == [], "the deferred attempt never reached the venue"
        dip_with_reconcile_rounds(t, [(95_500.0, 30.0)],
                                  until=lambda: t.runtime("s2").position is not Position.BOUGHT)
        assert sells(t, "s2") == ["s2:x1"], "one position, one exit"
        assert on_the_wire == [1], \
            f"I1: the attempt that went was recorded as possibly on the wire before it was sent: {on_the_wire}"
    finally:
        t.services.directory.ref("execution-engine").tell(CancelStrategy("s2"))
