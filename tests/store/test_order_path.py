"""The order path before the wire in one round trip (DESIGN §6): lock, load and journal intent in
one script while the stored runtime is the one the order was made from; otherwise the lock and
the runtime only, and nothing journaled."""

from dataclasses import replace

from runtime.store import Position, Runtime

BOUGHT = Runtime(position=Position.BOUGHT, quantity=0.01, entry_seq=1, generation=3, updated_at=1.0)
PENDING = replace(BOUGHT, pending_order="s1:x1", pending_purpose="stop_loss", pending_since=2.0)
FIELDS = {"strategy_id": "s1", "side": "SELL"}


def journal(store, expected, pending=PENDING):
    return store.lock_load_and_journal("s1", 5000, generation=3, expected=expected, client_order_id="s1:x1",
                                       fields=FIELDS, pending=pending)


def test_the_expected_runtime_is_locked_loaded_journaled_and_marked_pending_in_one_script(store):
    store.write_runtime("s1", BOUGHT)
    lock, loaded, entry_id = journal(store, BOUGHT)
    assert lock is not None and loaded == BOUGHT and entry_id
    assert store.load_runtime("s1") == PENDING
    assert [e.client_order_id for e in store.unsettled()] == ["s1:x1"]


def test_no_record_expected_and_none_stored_journals_too(store):
    lock, loaded, entry_id = journal(store, None, replace(PENDING, position=Position.NONE))
    assert lock is not None and entry_id and store.load_runtime("s1").pending_order == "s1:x1"


def test_a_runtime_other_than_expected_is_returned_with_the_lock_and_nothing_is_journaled(store):
    store.write_runtime("s1", replace(BOUGHT, reason="changed elsewhere"))
    lock, loaded, entry_id = journal(store, BOUGHT)
    assert lock is not None and entry_id is None
    assert loaded.reason == "changed elsewhere", "the caller makes its order from what is stored"
    assert store.unsettled() == [] and store.load_runtime("s1").pending_order == ""


def test_a_record_where_none_was_expected_is_not_overwritten(store):
    store.write_runtime("s1", BOUGHT)
    lock, loaded, entry_id = journal(store, None)
    assert lock is not None and entry_id is None and loaded == BOUGHT
    assert store.unsettled() == []


def test_a_lock_held_by_another_owner_journals_nothing(store):
    store.write_runtime("s1", BOUGHT)
    assert store.acquire_lock("s1", 5000) is not None
    lock, loaded, entry_id = journal(store, BOUGHT)
    assert (lock, entry_id) == (None, None) and store.unsettled() == []


def test_a_journal_of_the_wrong_type_is_left_to_the_path_that_repairs_it(store):
    store.write_runtime("s1", BOUGHT)
    store.client.set(store.keys.journal_orders, "garbage")  # F31
    lock, loaded, entry_id = journal(store, BOUGHT)
    assert lock is not None and entry_id is None and loaded == BOUGHT, "locked and loaded, nothing half-written"
    assert store.load_runtime("s1") == BOUGHT
