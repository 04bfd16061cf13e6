"""price:{S}, strategy:{id}, snapshot:{S}, symbol:{S}:strategies: round trips and named corruption."""

import pytest

from runtime.store import CorruptState


def test_last_price_round_trips(store):
    assert store.last_price("BTCUSDT") is None
    store.set_price("BTCUSDT", 95123.5, ts=1700000000.5)
    price = store.last_price("BTCUSDT")
    assert (price.symbol, price.price, price.ts) == ("BTCUSDT", 95123.5, 1700000000.5)


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("price", "abc", "not a non-negative decimal"),
    ("price", "0", "must be > 0"),
    ("ts", "inf", "not a non-negative decimal"),
])
def test_corrupt_price_is_named(store, redis_client, field, value, problem):
    store.set_price("BTCUSDT", 1.0, ts=1.0)
    redis_client.hset("test:price:{BTCUSDT}", field, value)
    with pytest.raises(CorruptState, match=problem) as caught:
        store.prices.get("BTCUSDT")  # the check names it; the facade then quarantines it (F31)
    assert (caught.value.key, caught.value.field) == ("test:price:{BTCUSDT}", field)


def test_price_with_a_missing_field_is_named(store, redis_client):
    redis_client.hset("test:price:{BTCUSDT}", "price", "1.5")
    with pytest.raises(CorruptState, match="'ts': missing"):
        store.prices.get("BTCUSDT")


def test_prices_refuse_nonsense_on_write(store):
    with pytest.raises(ValueError):
        store.set_price("BTCUSDT", float("nan"))
    with pytest.raises(ValueError):
        store.set_price("BTCUSDT", -1.0)


def test_strategy_definition_round_trips_and_is_indexed_by_symbol(store):
    definition = {"id": "s1", "kind": "scheduled", "symbol": "BTCUSDT", "quantity": 0.01, "stop_loss": 95000.0}
    store.put_strategy("s1", definition)
    store.put_strategy("s2", {"id": "s2", "symbol": "BTCUSDT"})
    store.put_strategy("s3", {"id": "s3", "symbol": "ETHUSDT"})
    assert store.load_strategy("s1") == definition
    assert store.strategies_for_symbol("BTCUSDT") == {"s1", "s2"}
    store.documents.unindex_symbol("BTCUSDT", "s2")
    assert store.strategies_for_symbol("BTCUSDT") == {"s1"}
    assert store.load_strategy("missing") is None


def test_corrupt_strategy_definition_is_named(store, redis_client):
    store.put_strategy("s1", {"symbol": "BTCUSDT"})
    redis_client.hset("test:strategy:{s1}", "doc", "[1, 2]")
    with pytest.raises(CorruptState, match="expected a JSON object") as caught:
        store.load_strategy("s1")
    assert caught.value.field == "doc"


def test_snapshot_round_trips(store):
    book = {"bids": [[95000.0, 1.5]], "asks": [[95001.0, 2.0]], "last_update_id": 42}
    store.put_snapshot("BTCUSDT", book, ts=1700000001.0)
    snap = store.load_snapshot("BTCUSDT")
    assert (snap.key, snap.data, snap.ts) == ("test:snapshot:{BTCUSDT}", book, 1700000001.0)
    store.put_snapshot("BTCUSDT", {"last_update_id": 43})
    assert store.load_snapshot("BTCUSDT").data == {"last_update_id": 43}, "a snapshot replaces the previous one"
