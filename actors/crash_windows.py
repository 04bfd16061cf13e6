"""Crash windows for the SIGKILL tests of issue 10 (a test-only hook, inert in production).

With `WARDEN_CRASH_WINDOW=<name>` in its environment, the daemon logs `crash_window` and
freezes the thread that reaches that point of the order path, so a test can SIGKILL the
process exactly there and check the restart. Unset, `reached` is one string comparison.

Windows, in order: `after_journal` (intent journaled, nothing sent), `after_reply` (the
venue answered, the runtime not yet written), `after_write` (the outcome written: runtime,
journal outcome and the queue entry's ack in one round trip; the engine not yet told).
"After send, before reply" needs no hook: the simulator holds the reply (`hold_reply`).

One start window, for the SIGTERM-while-starting test of issue 13: `strategies_started` (every
configured strategy started, the node not yet `started`) logs `crash_window` and holds the
starting thread until a stop is asked (bounded), so the test's SIGTERM lands while starting,
exactly there, however loaded the machine is.
"""

from __future__ import annotations

import os
import threading

from actors.node_ids import ENGINE
from runtime.logging import log_event

WINDOWS = ("after_journal", "after_reply", "after_write")
START_WINDOWS = ("strategies_started",)
START_HOLD_BOUND_S = 120.0
_WINDOW = os.environ.get("WARDEN_CRASH_WINDOW", "")


def reached(name: str, client_order_id: str) -> None:
    if name != _WINDOW:
        return
    log_event(ENGINE, "crash_window", details={"window": name, "client_order_id": client_order_id},
              action_taken="thread frozen until the test kills the process", level="CRITICAL")
    threading.Event().wait()


def held(name: str, released: threading.Event) -> None:
    """Hold the starting thread at start window `name` until `released` is set (a stop asked)."""
    if name != _WINDOW:
        return
    log_event("node", "crash_window", details={"window": name}, level="WARNING",
              action_taken=f"start held until a stop is asked (at most {START_HOLD_BOUND_S:g} s)")
    released.wait(START_HOLD_BOUND_S)
