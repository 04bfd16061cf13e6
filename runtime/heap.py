"""The daemon's heap after start: what the cyclic garbage collector may skip, and how often it runs.

The collector stops every thread while it runs, a stop-loss worker included. Measured on
the demo daemon with 3,000 idle strategies over 60 s (issue 10), Python's defaults gave
11 full (generation 2) collections of ~100 ms each (max 171 ms), 120 generation-1 ones
of ~1.5 ms (max 17 ms) and 1,300 small ones: a stop-loss had a few percent chance of
waiting behind one, far above the tick → wire budget (p99 ≤ 1.5 ms).

- `gc.freeze()` once start is done: almost everything alive then lives as long as the
  process (the supervision tree, one actor per strategy, the config, the stop index, the
  runtime cache); frozen, it is never walked again. Full collections: ~2.7 ms (max 11 ms).
- A generation-0 threshold of 10,000 instead of 700: bursts of short-lived objects (a
  status document for thousands of strategies, a reconcile) no longer trigger collections
  mid-burst that promote them to older generations. Then: 5 collections a minute of
  ~3.6 ms (max 6.9 ms) and no older-generation ones in the minute measured.

Garbage is still collected. A frozen object that later becomes cyclic garbage (the first
incarnation of a restarted actor) is never freed: bounded by the heap at start.

Never call it with orders in flight: it runs one full collection on the caller's thread.
"""

from __future__ import annotations

import gc
import time

from runtime.logging import log_event

GEN0_THRESHOLD = 10_000  # allocations net of deallocations before a generation-0 collection (Python: 700)


def settle_after_start() -> None:
    """Collect once, freeze what survived, raise the generation-0 threshold (node start; the bench likewise)."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
    log_event("node", "heap_frozen", details={"objects": gc.get_freeze_count(),
                                              "ms": round((time.perf_counter() - started) * 1000.0, 1),
                                              "gen0_threshold": GEN0_THRESHOLD},
              action_taken="long-lived objects left out of later garbage collections")


__all__ = ["GEN0_THRESHOLD", "settle_after_start"]
