import pytest
from redis.crc import key_slot

from runtime.store.keys import Keys


def test_keys_follow_the_design_schema_under_the_namespace():
    k = Keys("warden")
    assert k.strategy("s1") == "warden:strategy:{s1}"
    assert k.runtime("s1") == "warden:runtime:{s1}"
    assert k.lock_state("s1") == "warden:lock_state:{s1}"
    assert k.lease("s1") == "warden:lease:{s1}"
    assert k.symbol_strategies("BTCUSDT") == "warden:symbol:{BTCUSDT}:strategies"
    assert k.price("BTCUSDT") == "warden:price:{BTCUSDT}"
    assert k.snapshot("BTCUSDT") == "warden:snapshot:{BTCUSDT}"
    assert k.generation == "warden:generation"
    assert k.queue_orders == "warden:queue:{orders}"
    assert k.queue_stop == "warden:queue:{orders}:stop"
    assert k.journal_orders == "warden:journal:{orders}"


def _slots(*keys: str) -> set[int]:
    return {key_slot(key.encode()) for key in keys}


def test_keys_of_one_strategy_share_one_cluster_slot():
    k = Keys("warden")
    assert len(_slots(k.strategy("s1"), k.runtime("s1"), k.lock_state("s1"), k.lease("s1"))) == 1
    assert _slots(k.runtime("s1")) != _slots(k.runtime("s2")), "strategies must spread over slots"


def test_keys_of_one_symbol_and_the_order_streams_share_a_slot():
    k = Keys("warden")
    assert len(_slots(k.symbol_strategies("ETHUSDT"), k.price("ETHUSDT"), k.snapshot("ETHUSDT"))) == 1
    assert len(_slots(k.queue_orders, k.queue_stop, k.queue_dead, k.journal_orders, k.journal_open,
                      k.journal_records)) == 1


@pytest.mark.parametrize("bad", ["", "a}b", "{x}", "a b", "s1\n", "-lead", "x" * 129])
def test_ids_that_would_break_a_hash_tag_are_refused(bad):
    with pytest.raises(ValueError, match="invalid strategy id"):
        Keys("warden").runtime(bad)


def test_namespace_is_validated():
    with pytest.raises(ValueError, match="invalid namespace"):
        Keys("war{den}")
