"""The order path's outcome write (issue 10 case 6): runtime, journal outcome and queue ack in one
round trip, all or nothing; with Redis down, all of it goes to the disk buffer and replays."""

import pytest

from runtime.store import Position, Runtime, StaleGeneration


def queued_entry(store):
    store.enqueue({"strategy_id": "s1", "purpose": "entry"})
    [entry] = store.read("engine-1")
    return entry


def test_outcome_write_acks_the_entry_with_the_runtime_and_the_journal_outcome(store):
    entry = queued_entry(store)
    store.journal_intent("s1:e1", {"strategy_id": "s1"})
    recorded = store.record_outcome_or_buffer("s1", Runtime(position=Position.BOUGHT, generation=1), "s1:e1",
                                              "FILLED", {"qty": "0.01"}, final=True, acks=[entry])
    assert recorded.where == "redis" and recorded.entry_id
    assert store.queue.pending() == 0, "the entry is acknowledged by the outcome write itself"
    assert store.load_runtime("s1").position is Position.BOUGHT
    assert store.unsettled() == [] and [e.kind for e in store.entries()] == ["intent", "outcome"]


def test_outcome_write_is_all_or_nothing_when_a_queue_stream_has_the_wrong_type(store):
    entry = queued_entry(store)
    store.client.delete(entry.stream)
    store.client.set(entry.stream, "garbage")  # F31: the queue stream replaced by a string
    store.record_outcome_or_buffer("s1", Runtime(position=Position.BOUGHT, generation=1), "s1:e1", "FILLED",
                                   {}, final=True, acks=[entry])
    assert store.load_runtime("s1").position is Position.BOUGHT, "the bad key was set aside, the write made once"
    assert [e.outcome for e in store.entries()] == ["FILLED"]


def test_outcome_write_refused_by_a_newer_generation_writes_nothing(store):
    entry = queued_entry(store)
    store.write_runtime("s1", Runtime(generation=5))
    with pytest.raises(StaleGeneration):
        store.record_outcome_or_buffer("s1", Runtime(position=Position.BOUGHT, generation=4), "s1:e1", "FILLED",
                                       {}, final=True, acks=[entry])
    assert store.entries() == [] and store.queue.pending() == 1, "no journal outcome and no ack without the runtime"


def test_outcome_write_with_redis_down_buffers_the_ack_too_and_replays_it(store, redis_server):
    entry = queued_entry(store)
    redis_server.kill()
    recorded = store.record_outcome_or_buffer("s1", Runtime(position=Position.SOLD, generation=1), "s1:x1",
                                              "FILLED", {}, final=True, acks=[entry])
    assert recorded.where == "buffer"
    assert [r.kind for r in store.buffer.read()[0]] == ["runtime", "journal_outcome", "queue_ack"]
    redis_server.restart()
    report = store.replay_buffer()
    assert report.applied == 3 and report.corrupt == []
    assert store.queue.pending() == 0, "the buffered ack was replayed after the outcome"
    assert store.load_runtime("s1").position is Position.SOLD
