"""A strategy the chaos harness cues: it buys when a file appears, so a scenario picks the moment.

`scheduled` strategies buy at a time fixed in the config, which a loaded machine can turn into
"before the fault was armed". `OnCue` waits for the file named by `params.cue` (the harness
touches it right after setting a fault), then asks for one BUY exactly as the scheduled kind
does: again each second while no entry has been sent (a closed gate or a held lock refuses it),
never again once one was sent. Runs inside the daemon; imports nothing from the harness.

params: cue (path, required), quantity (default 0.01), stop_loss (optional).
"""

from __future__ import annotations

import time
from pathlib import Path

from actors.strategy import Context, Fill, Strategy
from runtime.store.runtime_state import Position

POLL_S = 0.05
RETRY_S = 1.0


class OnCue(Strategy):
    def on_start(self, ctx: Context) -> None:
        if self._wants_entry(ctx):
            ctx.schedule("cue", time.time() + POLL_S)

    def on_timer(self, ctx: Context, name: str) -> None:
        if not self._wants_entry(ctx):
            return
        if name == "cue" and not Path(str(ctx.params["cue"])).exists():
            ctx.schedule("cue", time.time() + POLL_S)
            return
        stop = ctx.params.get("stop_loss")
        ctx.buy(float(ctx.params.get("quantity", 0.01)), stop_loss=None if stop is None else float(stop),
                reason="chaos cue")
        ctx.schedule("buy", time.time() + RETRY_S)

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        ctx.cancel_timers()

    @staticmethod
    def _wants_entry(ctx: Context) -> bool:
        return ctx.runtime.position is Position.NONE and ctx.runtime.entry_seq == 0
