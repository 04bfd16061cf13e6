"""The order journal: append-only, idempotent by record id, unsettled intents for F19."""

import pytest

from runtime.store import CorruptState, Store


def test_journal_unsettled_lists_intents_without_a_settling_outcome(store):
    for oid in ("o1", "o2", "o3", "o4"):
        store.journal_intent(oid, {"strategy": "s1", "side": "BUY", "qty": 0.01})
    store.journal_outcome("o1", "FILLED", {"venue_order_id": 1})
    store.journal_outcome("o2", "UNKNOWN", {"why": "timeout"})  # F1: needs a lookup, not settled
    store.journal_outcome("o4", "REJECTED", {"code": -2019})

    unsettled = store.unsettled()

    assert [(e.client_order_id, e.kind) for e in unsettled] == [("o2", "intent"), ("o3", "intent")]
    assert unsettled[0].fields == {"strategy": "s1", "side": "BUY", "qty": 0.01}


def test_an_outcome_name_the_journal_does_not_know_leaves_the_intent_open(store):
    store.journal_intent("o1", {})
    store.journal_intent("o2", {})
    store.journal_outcome("o1", "SOMETHING_NEW")
    store.journal_outcome("o2", "SOMETHING_NEW", final=True)
    assert [e.client_order_id for e in store.unsettled()] == ["o1"]


def test_journal_is_append_only(store):
    store.journal_intent("o1", {"n": 1})
    store.journal_outcome("o1", "filled")  # names are normalised to upper case
    store.journal_intent("o1", {"n": 2})  # a retry journals again, same client order id
    entries = store.entries()
    assert [(e.kind, e.outcome, e.fields) for e in entries] == [
        ("intent", None, {"n": 1}), ("outcome", "FILLED", {}), ("intent", None, {"n": 2})]
    assert entries[1].final is True and entries[0].final is False
    assert [e.client_order_id for e in store.unsettled()] == ["o1"], "a new intent after a fill is open again"


def test_a_write_repeated_with_the_same_record_id_lands_once(store):
    first = store.journal.intent("o1", {"n": 1}, record_id="rec-1")
    again = store.journal.intent("o1", {"n": 1}, record_id="rec-1")
    assert first.duplicate is False and again.duplicate is True
    assert again.entry_id == first.entry_id
    assert len(store.entries()) == 1


def test_entries_page_through_a_long_journal_in_order(store):
    for n in range(25):
        store.journal_intent(f"o{n}", {"n": n})
    assert [e.fields["n"] for e in store.journal.entries(page=10)] == list(range(25))


def test_journal_records_when_it_happened_from_the_injected_clock(redis_url):
    s = Store(redis_url, "test", clock=lambda: 1700000000.25)
    try:
        s.journal_intent("o1", {})
        assert s.entries()[0].at == 1700000000.25
    finally:
        s.close()


def test_corrupt_journal_entry_is_named_by_key_and_field(store, redis_client):
    store.journal_intent("o1", {})
    entry_id = redis_client.xadd("test:journal:{orders}", {"kind": "intent", "client_order_id": "o2"}).decode()
    with pytest.raises(CorruptState) as caught:
        store.entries()
    assert caught.value.key == "test:journal:{orders}"
    assert entry_id in caught.value.field and "missing" in caught.value.problem


@pytest.mark.parametrize("bad", ["", "has space", "x" * 37, "é"])
def test_client_order_ids_must_be_venue_valid(store, bad):
    with pytest.raises(ValueError, match="client order id"):
        store.journal_intent(bad, {})
