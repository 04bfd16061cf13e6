"""Issue 13 (10,000 strategies): the store's bulk calls give each strategy exactly the verdict its
one-by-one call gives (record, None, CorruptState), in pipelined round trips, not one per strategy."""
from __future__ import annotations

import pytest

from runtime.store import CorruptState, Position, Runtime


@pytest.fixture
def mixed(store, redis_client) -> list[str]:  # noqa: ANN001
    """ok (a record), missing (none), garbage (a malformed hash), wrongtype (a string key)."""
    g = store.next_generation()
    store.write_runtime("ok", Runtime(position=Position.BOUGHT, quantity=0.5, generation=g, updated_at=1.0))
    redis_client.hset("test:runtime:{garbage}", mapping={"position": "sideways"})
    redis_client.set("test:runtime:{wrongtype}", "not a hash")
    return ["ok", "missing", "garbage", "wrongtype"]


def _verdict(call) -> object:  # noqa: ANN001
    try:
        return call()
    except CorruptState as exc:
        return (type(exc), exc.key, exc.field)


def _same(value: object) -> object:
    return (type(value), value.key, value.field) if isinstance(value, CorruptState) else value


def test_issue13_load_runtimes_gives_each_strategy_the_verdict_of_load_runtime(store, mixed) -> None:  # noqa: ANN001
    bulk = store.load_runtimes(mixed)
    assert list(bulk) == mixed
    for strategy_id in mixed:
        assert _same(bulk[strategy_id]) == _verdict(lambda: store.load_runtime(strategy_id)), strategy_id
    assert bulk["ok"].quantity == 0.5 and bulk["missing"] is None
    assert bulk["wrongtype"].field == "type", "a key of the wrong type is CorruptState(type), as in load_runtime"


def test_issue13_load_runtimes_pipelines_in_chunks(store, mixed) -> None:  # noqa: ANN001
    chunked = store.runtime.load_many(mixed, chunk=3)
    assert [_same(v) for v in chunked.values()] == [_same(v) for v in store.load_runtimes(mixed).values()]


def test_issue13_fence_all_gives_each_strategy_the_verdict_of_fence(store, mixed) -> None:  # noqa: ANN001
    generation = store.next_generation()
    bulk = store.fence_all(mixed, generation)
    assert bulk["ok"] is True and bulk["missing"] is False
    assert bulk["garbage"].field == "generation" and bulk["wrongtype"].field == "type"
    assert store.fence("ok", generation) is False, "already raised by fence_all"
    assert store.load_runtime("ok").generation == generation


def test_issue13_put_strategies_stores_and_indexes_like_put_strategy(store) -> None:  # noqa: ANN001
    definitions = {f"s{i}": {"id": f"s{i}", "symbol": "BTCUSDT" if i % 2 else "ETHUSDT"} for i in range(5)}
    store.put_strategies(definitions, chunk=2)
    assert all(store.load_strategy(sid) == d for sid, d in definitions.items())
    assert store.strategies_for_symbol("BTCUSDT") == {"s1", "s3"}
    assert store.strategies_for_symbol("ETHUSDT") == {"s0", "s2", "s4"}


def test_issue13_put_strategies_repairs_a_key_of_the_wrong_type(store, redis_client) -> None:  # noqa: ANN001
    redis_client.set("test:strategy:{s1}", "garbage")
    store.put_strategies({"s0": {"id": "s0", "symbol": "BTCUSDT"}, "s1": {"id": "s1", "symbol": "BTCUSDT"}})
    assert store.load_strategy("s1") == {"id": "s1", "symbol": "BTCUSDT"}, "the bad key is quarantined and rewritten"
    assert store.strategies_for_symbol("BTCUSDT") == {"s0", "s1"}
