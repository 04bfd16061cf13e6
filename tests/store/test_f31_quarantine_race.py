"""F14/F31 races, against a real redis-server: a key is judged bad, and before it is set aside a
second writer repairs it. Whatever the interleaving, no record is moved aside or lost, what was
bad stays readable under its quarantine key, and the second writer's record stays live.

The second writer is run deterministically at a seam of the first: right after a chosen Redis
reply the first one gets, or one command later (for the journal, before the fix, that command was
the TYPE check, so the second writer's fresh stream was then renamed aside)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from runtime.store import Runtime, StaleGeneration, Store

JOURNAL = "test:journal:{orders}"
OPEN = "test:journal:{orders}:open"
PRICE = "test:price:{BTCUSDT}"


@pytest.fixture
def writer_a(redis_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store(redis_url, namespace="test", buffer_path=tmp_path / "writer-a-buffer.jsonl")
    yield s
    s.close()


def run_at_seam(monkeypatch: pytest.MonkeyPatch, client: redis.Redis, writer: Callable[[], object],
                first: Callable[[tuple[Any, ...], BaseException | None], bool], then: int = 0) -> list[bool]:
    """Run `writer()` once, `then` commands past the first command of `client` that `first` picks
    (by its arguments and the error it raised, if any)."""
    real = client.execute_command
    countdown: list[int] = []
    ran: list[bool] = []

    def step() -> None:
        if countdown and countdown[0] == 0 and not ran:
            ran.append(True)
            writer()
        elif countdown:
            countdown[0] -= 1

    def spy(*args: Any, **options: Any) -> Any:
        try:
            reply = real(*args, **options)
        except redis.ResponseError as exc:
            seen(args, exc)
            raise
        seen(args, None)
        return reply

    def seen(args: tuple[Any, ...], exc: BaseException | None) -> None:
        if countdown:
            step()
        elif first(args, exc):
            countdown.append(then)
            step()

    monkeypatch.setattr(client, "execute_command", spy)
    return ran


def wrongtype(args: tuple[Any, ...], exc: BaseException | None) -> bool:
    return exc is not None and "WRONGTYPE" in str(exc)


def hgetall_of(key: str) -> Callable[[tuple[Any, ...], BaseException | None], bool]:
    return lambda args, exc: args[0] == "HGETALL" and args[1] == key


@pytest.mark.parametrize("then", [0, 1])
def test_f31_race_second_writer_at_the_journal_quarantine_seam_loses_no_journal_record(
        store, writer_a, redis_client, monkeypatch, then):
    redis_client.set(JOURNAL, "garbage")
    ran = run_at_seam(monkeypatch, store.client, lambda: writer_a.journal_intent("a:x1", {"strategy_id": "a"}),
                      wrongtype, then)
    store.journal_intent("b:x1", {"strategy_id": "b"})
    assert ran, "the second writer ran at the seam"
    journaled = {e.client_order_id for e in store.entries()}
    assert journaled == {"a:x1", "b:x1"}, "no journal record is lost or moved aside by a racing quarantine"
    aside = redis_client.keys(f"{JOURNAL}:quarantine*")
    assert [redis_client.type(k) for k in aside] == [b"string"], "only the garbage was quarantined"
    assert redis_client.get(aside[0]) == b"garbage", "the garbage stays readable under its quarantine key"


def test_f31_race_price_repaired_between_read_and_quarantine_stays_live(store, writer_a, redis_client,
                                                                       monkeypatch):
    redis_client.hset(PRICE, mapping={"price": "abc", "ts": "1"})
    ran = run_at_seam(monkeypatch, store.client, lambda: writer_a.set_price("BTCUSDT", 50_000.0, ts=2.0),
                      hgetall_of(PRICE))
    assert store.last_price("BTCUSDT") is None, "the bad value read is not used"
    assert ran, "the second writer ran at the seam"
    price = store.last_price("BTCUSDT")
    assert price is not None and price.price == 50_000.0, "the repaired price is not renamed aside"
    assert redis_client.keys(f"{PRICE}:quarantine*") == []


def test_f31_race_runtime_repaired_by_a_newer_writer_is_not_replaced(store, writer_a, redis_client):
    key = "test:runtime:{g1}"
    redis_client.hset(key, mapping={"generation": "1", "bogus": "x"})
    with pytest.raises(Exception, match="unexpected field"):
        store.load_runtime("g1")
    writer_a.write_runtime("g1", Runtime(generation=5))  # a newer incarnation repairs it meanwhile
    with pytest.raises(StaleGeneration):
        store.replace_corrupt_runtime("g1", Runtime(generation=1), "unexpected field 'bogus'")
    loaded = store.load_runtime("g1")
    assert loaded is not None and loaded.generation == 5, "the newer record is neither moved aside nor overwritten"
    assert redis_client.keys(f"{key}:quarantine*") == []


def test_f31_race_open_index_entry_rewritten_before_its_quarantine_stays(store, writer_a, redis_client,
                                                                        monkeypatch):
    redis_client.hset(OPEN, "o9", "1-1")  # dangling: no such journal entry

    def settle_and_reopen() -> None:
        writer_a.journal_outcome("o9", "FILLED")
        writer_a.journal_intent("o9", {"strategy_id": "o"})

    ran = run_at_seam(monkeypatch, store.client, settle_and_reopen, hgetall_of(OPEN))
    store.unsettled()
    assert ran, "the second writer ran at the seam"
    assert [e.client_order_id for e in store.unsettled()] == ["o9"], \
        "an open intent is never dropped from the index by a racing quarantine (a cold start would miss it)"
    assert redis_client.hgetall(f"{OPEN}:quarantine") == {}, "the live pointer is not set aside"


def test_f31_open_index_entry_quarantined_twice_keeps_both_values(store, redis_client):
    for dangling in ("1-1", "2-2"):
        redis_client.hset(OPEN, "o9", dangling)
        assert store.unsettled() == []
    assert sorted(redis_client.hvals(f"{OPEN}:quarantine")) == [b"1-1", b"2-2"], \
        "an earlier quarantined value is never overwritten"
