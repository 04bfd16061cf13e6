"""The soak's `module:Class` strategy: buys and sells repeatedly, with a stop just under the market.

Runs inside the daemon (loaded as `chaos.soak.strategies:Trader`); imports nothing from the
harness. Every `step_s` it looks at its runtime: flat and nothing pending → BUY `qty` with a
stop-loss `stop_pct` percent under the last tick; bought for `hold_s` → SELL. After `until`
(epoch seconds) it sends no more entries and sells what it holds, so the run can settle.
Wandering prices cross its stops often. A refused request (closed gate, held lock) is simply
asked again on a later step: the engine sends a BUY only from a flat position with nothing
pending, and one exit id per position.

The nemesis crashes or hangs a Trader by creating `<cue_dir>/<id>.crash` or `<id>.hang`: the
next step removes the file and raises, or blocks this actor's thread for `hang_s` (a real
crash or hang of user code, found by the supervisor and the watchdog like any other).
"""

from __future__ import annotations

import time
from pathlib import Path

from actors.strategy import Context, Fill, Strategy, Tick
from runtime.store.runtime_state import Position

FLAT = (Position.NONE, Position.SOLD, Position.EXITED_BY_SL)


class SoakCrash(RuntimeError):
    """The exception a Trader raises when the nemesis asks for a crash."""


class Trader(Strategy):
    def __init__(self) -> None:
        self._price: float | None = None
        self._bought_at = 0.0

    def on_start(self, ctx: Context) -> None:
        self._bought_at = time.time()
        ctx.schedule("step", time.time() + float(ctx.params.get("start_after_s", 1.0)))

    def on_tick(self, ctx: Context, tick: Tick) -> None:
        self._price = tick.price

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        if fill.purpose == "entry":
            self._bought_at = time.time()

    def on_timer(self, ctx: Context, name: str) -> None:
        if name != "step":
            return
        self._obey_nemesis(ctx)
        now = time.time()
        runtime = ctx.runtime
        closing = now >= float(ctx.params.get("until", float("inf")))
        if not runtime.pending_order:
            if runtime.position is Position.BOUGHT and (closing or now - self._bought_at >= float(ctx.params["hold_s"])):
                ctx.sell(reason="soak trader sell")
            elif runtime.position in FLAT and not closing and self._price is not None:
                stop = self._price * (1 - float(ctx.params["stop_pct"]) / 100.0)
                ctx.buy(float(ctx.params["qty"]), stop_loss=stop, reason="soak trader buy")
        if not closing or runtime.position is Position.BOUGHT:
            ctx.schedule("step", now + float(ctx.params.get("step_s", 2.0)))

    def _obey_nemesis(self, ctx: Context) -> None:
        cue = Path(str(ctx.params.get("cue_dir", ""))) / ctx.strategy_id
        crash, hang = cue.with_suffix(".crash"), cue.with_suffix(".hang")
        if hang.exists():
            hang.unlink(missing_ok=True)
            time.sleep(float(ctx.params.get("hang_s", 8.0)))  # a real hang: this actor's thread is blocked
        if crash.exists():
            crash.unlink(missing_ok=True)
            raise SoakCrash(f"{ctx.strategy_id}: crash asked for by the soak nemesis")
