"""Issue 13 (scale): thousands of actor threads share one store client. redis-py's default pool
raises "Too many connections" past 100 checked-out connections; the store's pool is shared
and bounded, so a burst of callers waits its turn instead of failing."""
from __future__ import annotations

import threading

from runtime.store.connection import MAX_CONNECTIONS, connect


def test_issue13_a_burst_of_threads_shares_the_bounded_pool(redis_url):
    client = connect(redis_url)
    callers = 3 * MAX_CONNECTIONS
    errors: list[BaseException] = []
    barrier = threading.Barrier(callers)

    def call() -> None:
        try:
            barrier.wait(timeout=30)
            client.blpop(["issue13:nothing"], timeout=0.05)  # holds its connection ~50 ms
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, f"no caller may fail for want of a pooled connection: {errors[:3]}"
    assert len(client.connection_pool._connections) <= MAX_CONNECTIONS  # type: ignore[attr-defined]
    client.close()
