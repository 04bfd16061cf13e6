"""Resident memory with 1,000 and 10,000 strategy actors, each its own process.

Each child process starts an embedded Redis, the services, and a dynamic `strategies`
supervisor with N scheduled-strategy actors (each an actor thread), then reports its RSS
and the same process's RSS before the strategies started (the baseline).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

CHILD = r"""
import json, sys, tempfile, time
from pathlib import Path
import psutil
from loguru import logger
logger.remove()
from actors.services import Services
from actors.strategy import ScheduledStrategy, StrategyActor
from runtime.config import Config, FeedsConfig, NodeConfig, StrategyConfig
from runtime.store.embedded import EmbeddedRedis
from runtime.store.store import Store
from supervision import ChildSpec, Supervisor
from datetime import datetime, timedelta, timezone

n = int(sys.argv[1])
proc = psutil.Process()
with tempfile.TemporaryDirectory() as tmp:
    redis = EmbeddedRedis(Path(tmp)).start()
    store = Store(redis.url, "rss")
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    strategies = tuple(StrategyConfig(id=f"r{i}", kind="scheduled", symbol="BTCUSDT", account="bench", quantity=0.001,
                                      buy_at=later, sell_at=later + timedelta(hours=1)) for i in range(n))
    services = Services(config=Config(node=NodeConfig(name="rss"), feeds=FeedsConfig(symbols=("BTCUSDT",)),
                                      strategies=strategies), store=store, venue=None)
    before = proc.memory_info().rss
    specs = [ChildSpec(f"strategy:{s.id}", StrategyActor, args=(s, (lambda s=s: ScheduledStrategy(s)), services))
             for s in strategies]
    root = Supervisor.start(strategy="dynamic", intensity_scope="child", name="strategies", children=specs)
    time.sleep(1.0)
    after = proc.memory_info().rss
    threads = proc.num_threads()
    root.stop(timeout=120)
    redis.stop()
print(json.dumps({"rss_mb": round(after / 2**20, 1), "baseline_mb": round(before / 2**20, 1), "threads": threads}))
"""


def run(sizes: tuple[int, ...] = (1000, 10000)) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in sizes:
        done = subprocess.run([sys.executable, "-c", CHILD, str(n)], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            out[str(n)] = {"error": done.stderr.strip().splitlines()[-1] if done.stderr else f"exit {done.returncode}"}
            continue
        out[str(n)] = json.loads(done.stdout.strip().splitlines()[-1])
    return out
