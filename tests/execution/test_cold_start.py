"""F19 / F26 cold start: protective stops taken back, buffered records replayed before settling."""

from __future__ import annotations

from actors.recovery import PROTECTIVE_STOP, cold_start, protective_stop_id
from runtime.store.runtime_state import Position, Runtime
from tests.waiting import eventually

QTY = 0.01


def hold_position_with_protective_stop(t, stop: float) -> str:
    """What a graceful stop leaves behind: a bought runtime and a journaled venue-side stop."""
    venue = t.services.venue
    assert venue.place_order("BTCUSDT", "BUY", "MARKET", QTY, "s1:e1").ok
    t.store.write_runtime("s1", Runtime(position=Position.BOUGHT, quantity=QTY, entry_price=100_000.0,
                                        stop_loss=stop, entry_seq=1))
    client_id = protective_stop_id("s1", 1)
    t.store.journal_intent(client_id, {"strategy_id": "s1", "symbol": "BTCUSDT", "purpose": PROTECTIVE_STOP})
    assert venue.place_stop("BTCUSDT", "SELL", stop, QTY, client_id).ok
    return client_id


def test_f26_live_protective_stop_is_cancelled_local_stop_takes_over(make_trading):
    t = make_trading(start=False)
    client_id = hold_position_with_protective_stop(t, stop=95_000.0)
    report = cold_start(t.services)
    assert report.settled[client_id].startswith("CANCELED")
    assert t.services.venue.query_stop(client_id).order_status == "CANCELED"
    assert t.services.stops.armed("BTCUSDT", "s1").level == 95_000.0, "the local stop book took over"
    assert client_id not in {e.client_order_id for e in t.store.unsettled()}


def test_f26_protective_stop_triggered_while_down_marks_exited_by_sl(make_trading):
    t = make_trading(start=False)
    client_id = hold_position_with_protective_stop(t, stop=99_900.0)
    t.exchange.set_price("BTCUSDT", 99_000.0)
    eventually(lambda: t.services.venue.query_stop(client_id).order_status in ("TRIGGERED", "FINISHED"), timeout=5,
               what="the venue-side stop triggered")
    report = cold_start(t.services)
    assert report.settled[client_id].startswith("FILLED")
    assert t.runtime("s1").position is Position.EXITED_BY_SL
    assert t.services.stops.armed("BTCUSDT", "s1") is None, "no local stop for a position already closed"
    assert report.drift == {}


def test_f19_buffered_intent_is_replayed_before_the_journal_is_settled(make_trading, redis_server):
    t = make_trading(start=False)
    redis_server.kill()
    t.store.journal_intent_or_buffer("s1:e1", {"strategy_id": "s1", "symbol": "BTCUSDT", "purpose": "entry",
                                               "account": "alice"})
    redis_server.restart()
    report = cold_start(t.services)
    assert report.settled.get("s1:e1") == "REFUSED", \
        "the buffered intent reached the journal and was settled: no runtime recorded it pending, so it was never sent"
    assert not t.store.buffer_pending()
    assert t.store.unsettled() == []
    assert [e.outcome for e in t.store.entries() if e.kind == "outcome"] == ["NOT_SENT"]


def test_f31_protective_stop_kept_when_the_runtime_cannot_be_read(make_trading):
    t = make_trading(start=False)
    client_id = hold_position_with_protective_stop(t, stop=95_000.0)
    t.store.client.hset(t.store.keys.runtime("s1"), "position", "sideways")
    report = cold_start(t.services)
    assert "kept at the venue" in report.settled[client_id], "no runtime to re-arm locally: the venue stop stays"
    assert t.services.venue.query_stop(client_id).order_status == "NEW"
    assert t.services.stops.armed("BTCUSDT", "s1") is None and t.services.protective.holds("s1")
    assert client_id in {e.client_order_id for e in t.store.unsettled()}, "taken back once the record is repaired"


def exit_left_pending(t, sends: int) -> str:
    """What a SIGKILL leaves while a position's exit waits for an attempt: the exit journaled and
    recorded pending; `sends`: how many of its sends the record says may have left the process."""
    venue = t.services.venue
    assert venue.place_order("BTCUSDT", "BUY", "MARKET", QTY, "s1:e1").ok
    strategy = t.services.config.strategy("s1")
    client_id = "s1:x1"
    t.store.journal_intent(client_id, {"strategy_id": "s1", "account": strategy.account, "symbol": "BTCUSDT",
                                       "side": "SELL", "quantity": repr(QTY), "purpose": "exit"})
    t.store.write_runtime("s1", Runtime(
        position=Position.BOUGHT, quantity=QTY, entry_price=100_000.0, stop_loss=90_000.0, entry_seq=1,
        last_orders=("s1:e1", client_id), pending_order=client_id, pending_purpose="exit",
        pending_since=venue.clock.now_ms() / 1000.0 + venue.timeout_s, pending_sends=sends))
    return client_id


def sells(t) -> list[str]:
    return [e["client_order_id"] for e in t.exchange.ledger() if e.get("action") == "place"
            and e.get("side") == "SELL"]


def test_seed724076_I3_an_exit_that_never_left_the_process_is_settled_by_one_not_found_and_sent_at_once(
        make_trading):
    t = make_trading(start=False, settle_window_s=None)  # the default 12 s settle window
    client_id = exit_left_pending(t, sends=0)
    report = cold_start(t.services)
    assert report.settled[client_id] == "FILLED" and report.in_doubt == [], \
        f"I3: nothing of it left the process: one NOT_FOUND settles it and the exit goes at once: {report.settled}"
    assert sells(t) == ["s1:x1.2"] and t.runtime("s1").position is Position.SOLD, sells(t)
    (outcome,) = [e for e in t.store.entries() if e.kind == "outcome" and e.client_order_id == client_id]
    assert (outcome.outcome, outcome.fields["reason"]) == ("NOT_FOUND", "settled: never left this process")


def test_seed724076_I1_an_exit_that_may_have_left_the_process_still_waits_the_settle_window(make_trading):
    t = make_trading(start=False, settle_window_s=None)
    client_id = exit_left_pending(t, sends=1)
    report = cold_start(t.services)
    assert report.settled[client_id] == "UNKNOWN" and report.in_doubt == ["s1"], \
        f"I1: a send that may have left is never resent on one NOT_FOUND inside its settle window: {report.settled}"
    assert sells(t) == [] and t.runtime("s1").pending_order == client_id
    assert t.store.is_unsettled(client_id)
