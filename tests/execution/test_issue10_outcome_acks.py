"""Issue 10, case 6: a queue intent's ack is part of its outcome write (DESIGN §3, single-use intents).

Real Redis, the simulated exchange over HTTP, the real engine. The Redis blip is real: a
`CLIENT PAUSE WRITE` issued at the moment the engine would acknowledge the entry after its
outcome was written, so the acknowledgement times out the way a network blip makes it.
"""

from __future__ import annotations

import redis

from actors.orders import OrderIntent, Purpose
from runtime.store.runtime_state import Position
from tests.execution.test_issue10_one_intent_one_order import buy, cross_stop, executed
from tests.waiting import eventually

BLIP_MS = 1500  # longer than the store's socket timeout (0.5 s): a write in it fails


def blip_at_first_ack(t, redis_url: str) -> list[str]:
    """Pause Redis writes the first time the engine acknowledges a queue entry on its own."""
    blipped: list[str] = []
    ack = t.store.ack

    def ack_in_a_blip(queued):
        if not blipped:
            blipped.append(queued.entry_id)
            with redis.Redis.from_url(redis_url) as admin:
                admin.execute_command("CLIENT", "PAUSE", BLIP_MS, "WRITE")
        return ack(queued)

    t.store.ack = ack_in_a_blip
    return blipped


def writable(redis_url: str) -> bool:
    with redis.Redis.from_url(redis_url, socket_timeout=0.2) as client:
        try:
            return bool(client.set("blip:probe", "1"))
        except redis.RedisError:
            return False


def test_case6_a_blip_between_outcome_and_ack_never_opens_a_second_position(make_trading, redis_url):
    t = make_trading()
    blipped = blip_at_first_ack(t, redis_url)
    buy(t)
    assert t.wait_update("s1").verdict == "FILLED"
    assert t.runtime("s1").position is Position.BOUGHT
    eventually(lambda: writable(redis_url), timeout=10, what="the blip is over")
    assert t.store.queue.pending() == 0, (
        "one intent, one position: an entry whose outcome is written is acknowledged in the same round trip "
        f"(the engine's own ack met the blip: {blipped})")

    cross_stop(t)
    eventually(lambda: t.runtime("s1").position is Position.EXITED_BY_SL, timeout=10, what="exit by stop-loss")
    t.root.stop(timeout=15)
    after = make_trading()  # the next process: it reclaims every entry left pending
    eventually(lambda: after.services.directory.ref("execution-engine") is not None, what="the engine restarted")
    exit_too = OrderIntent("s1", "alice", "BTCUSDT", Purpose.EXIT, reason="a later intent, to see the queue drained")
    assert after.services.submit(exit_too)
    assert after.wait_update("s1").verdict == "REFUSED"
    assert executed(after, "s1:") == ["s1:e1", "s1:x1"], "ledger e1, x1 and no e2: one intent, one position"
    assert after.store.queue.pending() == 0
