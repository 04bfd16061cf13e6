"""Pure decision cores that Warden's actors wrap.

Every module here is policy only: plain, typed Python that takes the current
time as an argument (``now``, seconds on whatever clock the caller uses) or an
injectable callable, and returns decisions as values. Nothing in this package
may start a thread, sleep, touch the network, the disk or Redis, or import
pykka: the actor shells own all of that and call these functions from their
message loop, and tests drive them directly with explicit times.

Modules, one concept each:

- ``order_book``  -- Binance depth-stream sequencing and the local L2 book (F9).
- ``feed_health`` -- per-symbol data health: STALE, stall, timestamp, corrupt
  rate, price sanity, recovery validation (F7, F8, F10-F13).
- ``reconnect``   -- the reconnect delay schedule and its REDUCED signal (F7).
- ``breakers``    -- circuit breakers and the board the status JSON shows
  (F13, F22-F24).
- ``signals``     -- the typed inputs of the degradation core, and the one table
  that maps each source (feed, store, clock, breakers, operator, supervisor)
  to its effect on the gate.
- ``degradation`` -- modes NORMAL/REDUCED/EMERGENCY/HARD_SHUTDOWN, trading
  states and the entry/exit ``gate``.
- ``stop_index``  -- per-symbol armed stop levels, O(log n + k) per tick.
- ``retry``       -- order outcome -> action (F1-F5).
"""
