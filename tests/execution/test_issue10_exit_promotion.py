"""Issue 10, soak seed 11 t18: a stop crossing promotes the exit already in progress.

A strategy's own exit (priority EXIT) was waiting out the venue budget's pacing, or its
backoff before a resend, when its position's stop crossed. The stop-loss found the strategy's
lock held by that exit, waited 2 s and was refused; the exit closed the position only when
its wait ended, at EXIT priority. Now the crossing raises the in-flight exit to stop priority
(the budget lets stops borrow tokens) and ends its wait: the same intent, the same client id,
never a second exit order.

Real Redis, the simulated exchange over HTTP and WebSocket, the real engine.
"""

from __future__ import annotations

import time
from typing import Any

from loguru import logger

from actors.core.retry import RetryConfig
from actors.messages import StopsTriggered
from actors.orders import OrderIntent, Purpose
from runtime.store.runtime_state import Position
from runtime.venue.budget import WeightBudget
from tests.execution.conftest import LATE_LANDING_S
from tests.waiting import eventually

CROSSED_PRICE = 94_000.0  # under s1's stop (95,000)
EXITED_WITHIN_S = 10.0  # the bound: far shorter than the wait the exit was in (about 50 s, or 60 s)


def _buy_s1_and_sibling(t: Any) -> None:
    for strategy_id, qty, stop in (("s1", 0.01, 95_000.0), ("s3", 0.01, None)):  # s3: same account, one venue net
        assert t.services.submit(OrderIntent(strategy_id, "alice", "BTCUSDT", Purpose.ENTRY, qty, stop))
        assert t.wait_update(strategy_id).verdict == "FILLED"


def _events(records: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [r["details"] for r in list(records) if r.get("event") == event]


def _crossing_until_exited(t: Any, bound_s: float) -> float:
    """A feed ticking under s1's stop, as the state builder delivers it (every armed stop crossed is
    popped and told to the engine), until s1 is no longer long or `bound_s` passed; the seconds it took."""
    engine = t.services.directory.ref("execution-engine")
    started = time.monotonic()
    while time.monotonic() - started < bound_s:
        hits = t.services.stops.triggered("BTCUSDT", CROSSED_PRICE)
        if hits:
            engine.tell(StopsTriggered("BTCUSDT", tuple(hits), time.perf_counter()))
        if t.runtime("s1").position is not Position.BOUGHT:
            break
        time.sleep(0.01)
    return time.monotonic() - started


def _exit_orders(t: Any) -> list[tuple[str, bool]]:
    """(client id, executed) of every exit order of s1 the venue received, after no late one can land."""
    time.sleep(LATE_LANDING_S)
    return [(str(e["client_order_id"]), bool(e.get("executed"))) for e in t.exchange.ledger()
            if e.get("action") == "place" and str(e.get("client_order_id")).startswith("s1:x")]


def _assert_one_exit_promoted(t: Any, took_s: float, waiting_s: float, records: list[dict[str, Any]]) -> None:
    runtime = t.runtime("s1")
    refused = {d.get("reason") for d in _events(records, "order_refused") if d.get("purpose") == "stop_loss"}
    assert runtime.position is not Position.BOUGHT and runtime.quantity == 0, \
        f"I3: once the stop crosses, the exit in progress is promoted and exits the position within " \
        f"{EXITED_WITHIN_S:g}s, not after its {waiting_s:.0f}s wait at EXIT priority: after {took_s:.1f}s " \
        f"{runtime.position.value} {runtime.quantity:g}, pending {runtime.pending_order!r}; " \
        f"stop-losses refused meanwhile: {refused}"
    executed = [cid for cid, done in _exit_orders(t) if done]
    assert executed == ["s1:x1"], f"I1: one intent, one exit order, under the exit's own client id: {executed}"
    assert float(t.exchange.position("BTCUSDT")["positionAmt"]) == 0.01, "the sibling's position is untouched"
    assert t.store.unsettled() == [], "the promoted exit has its final outcome in the journal"
    promoted = _events(records, "exit_promoted")
    assert promoted and promoted[0]["client_order_id"] == "s1:x1", f"the promotion is logged: {promoted}"


def _log_records() -> tuple[list[dict[str, Any]], int]:
    records: list[dict[str, Any]] = []
    sink = logger.add(lambda m: records.append(dict(m.record["extra"])), level="DEBUG")
    return records, sink


def test_issue10_seed11_t18_stop_crossing_promotes_the_exit_waiting_on_budget_pacing(make_trading):
    """The exit's send got 429 (Retry-After 1 s); the halved pacing (0.02 req/s) then defers its
    resend about 50 s at EXIT priority. The stop crosses: promoted to STOP, which may borrow tokens."""
    t = make_trading()
    _buy_s1_and_sibling(t)
    t.services.venue.budget = WeightBudget(max_rate_per_s=0.04, min_rate_per_s=0.02)  # a slow venue budget
    t.exchange.set_fault("http_429", count=1, retry_after_s=1, scope="place")
    records, sink = _log_records()
    try:
        assert t.services.submit(OrderIntent("s1", "alice", "BTCUSDT", Purpose.EXIT, reason="target reached"))
        paced = eventually(lambda: [d for d in _events(records, "order_retry")
                                    if d.get("client_order_id") == "s1:x1" and "paced" in d.get("outcome", "")],
                           timeout=15, what="s1:x1 deferred by the budget's pacing")
        waiting_s = float(paced[0]["delay_s"])
        assert waiting_s > 3 * EXITED_WITHIN_S, f"the exit waits far longer than the bound: {paced}"
        took_s = _crossing_until_exited(t, EXITED_WITHIN_S)
    finally:
        logger.remove(sink)
    _assert_one_exit_promoted(t, took_s, waiting_s, records)


def test_issue10_seed11_t18_stop_crossing_ends_the_exits_backoff_before_its_resend(make_trading):
    """The exit's send got 503 "unknown" and never executed; its lookups settled NOT_FOUND, and it
    backs off 60 s before the resend. The stop crosses: the resend goes now, looked up first."""
    t = make_trading(retry=RetryConfig(backoff=(60.0,), jitter=0.0))
    _buy_s1_and_sibling(t)
    t.exchange.set_fault("unknown_503", count=1, execute=False, scope="place")
    records, sink = _log_records()
    try:
        assert t.services.submit(OrderIntent("s1", "alice", "BTCUSDT", Purpose.EXIT, reason="target reached"))
        backoff = eventually(lambda: [d for d in _events(records, "order_retry")
                                      if d.get("client_order_id") == "s1:x1"],
                             timeout=15, what="s1:x1 settled NOT_FOUND and backing off before its resend")
        took_s = _crossing_until_exited(t, EXITED_WITHIN_S)
    finally:
        logger.remove(sink)
    _assert_one_exit_promoted(t, took_s, float(backoff[0]["delay_s"]), records)
