"""Gate timings against the real daemon: feed silent → entries blocked; Redis killed → gate
closed; Redis back → gate open. Uses the chaos harness (a separate daemon process, a real
redis-server, the simulated exchange); /status is polled every 20 ms, which bounds the
resolution of these figures.
"""

from __future__ import annotations

import time
from typing import Any

from chaos.harness import Cluster, StrategySpec, wait_for

ROUNDS = 3


def _ms(t0: float) -> float:
    return round((time.monotonic() - t0) * 1000.0, 1)


def run(rounds: int = ROUNDS) -> dict[str, Any]:
    feed, down, back = [], [], []
    with Cluster("bench-gates", [StrategySpec("g1", buy_at="+3600s", sell_at="+7200s")]) as c:
        c.start_daemon()
        for _ in range(rounds):
            wait_for(lambda: c.entries_open("BTCUSDT"), 60, "entries open")
            t0 = time.monotonic()
            c.exchange.set_fault("ws_stall", duration_s=3.0)
            wait_for(lambda: c.entries_open("BTCUSDT") is False, 10, "entries blocked by a silent feed")
            feed.append(_ms(t0))
        for _ in range(rounds):
            wait_for(lambda: c.gate_open(), 60, "gate open")
            t0 = time.monotonic()
            c.redis.kill()
            wait_for(lambda: c.gate_open() is False, 10, "gate closed after Redis died")
            down.append(_ms(t0))
            t1 = time.monotonic()
            c.redis.restart()
            wait_for(lambda: c.gate_open(), 30, "gate open after Redis returned")
            back.append(_ms(t1))
    return {
        "heartbeat_timeout_s": 1.0,
        "feed_silent_to_gate_ms": feed,
        "redis_down_to_gate_ms": down,
        "redis_back_to_gate_open_ms": back,
        "poll_resolution_ms": 20,
    }
