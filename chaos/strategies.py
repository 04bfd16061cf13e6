"""Plugin strategies that misbehave on purpose, for the process chaos scenarios (F15-F26).

They are loaded by the real daemon through `class = "chaos.strategies:<Name>"` (the harness
puts the repo root on PYTHONPATH), so they exercise exactly the path a user's code takes.
Every misbehaviour is driven by `params` and bounded: nothing here can outlive the
scenario (burner processes carry their own deadline; a hang has a fixed length).

- `OneShot`: one entry with a stop-loss, re-asked each second while the gate is closed.
  Logs `chaos_strategy_stopped` from `on_stop` (was the execution engine still up?).
- `Crashy`: a `OneShot` that raises from `on_timer` every `crash_every_s` while its position
  is open, and from `on_tick` below `crash_below` (F15).
- `Hanger`: blocks its actor thread in `on_tick` once the price drops below `hang_below`,
  then tries to BUY from the fenced incarnation (F16; the engine must refuse it).
- `Looper`: trades round trips in a loop, one order per `step_s` (F15/F17/F20/F22/F23/F24).
- `CpuBurner`: saturates every core with niced, self-terminating child processes and burns
  CPU on its own actor thread on every tick (F22).

Never imports the harness: this module runs inside the daemon.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Any

from actors.strategy import Context, Fill, Strategy, Tick
from runtime.logging import log_event
from runtime.store.runtime_state import Position

FLAT = (Position.NONE, Position.SOLD, Position.EXITED_BY_SL)

# Process-wide memory of this module (the daemon imports it once): which strategy ids have
# already hung, so a replacement incarnation does not hang again on the same price.
_HUNG: set[str] = set()
_HUNG_LOCK = threading.Lock()


class ChaosCrash(RuntimeError):
    """The exception the chaos strategies raise on purpose."""


def _param(ctx: Context, name: str, default: Any) -> Any:
    return ctx.params.get(name, default)


def _engine_running(ctx: Context) -> bool:
    services = ctx._actor.services  # noqa: SLF001 - a chaos probe, not an API strategies should use
    return services.directory.ref("execution-engine") is not None


class OneShot(Strategy):
    """BUY `qty` once, `buy_after_s` after start, with `stop_loss`; then hold."""

    RETRY_S = 1.0

    def on_start(self, ctx: Context) -> None:
        if ctx.runtime.position in FLAT and ctx.runtime.entry_seq == 0:
            ctx.schedule("buy", time.time() + float(_param(ctx, "buy_after_s", 0.5)))

    def on_timer(self, ctx: Context, name: str) -> None:
        if name == "buy" and ctx.runtime.position in FLAT and ctx.runtime.entry_seq == 0:
            stop = _param(ctx, "stop_loss", None)
            ctx.buy(float(_param(ctx, "qty", 0.01)), stop_loss=float(stop) if stop else None, reason="chaos one-shot")
            ctx.schedule("buy", time.time() + self.RETRY_S)  # a closed gate refuses: ask again

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        if fill.purpose == "entry":
            ctx.cancel("buy")

    def on_stop(self, ctx: Context) -> None:
        log_event(f"strategy:{ctx.strategy_id}", "chaos_strategy_stopped",
                  details={"strategy": ctx.strategy_id, "position": ctx.position,
                           "engine_running": _engine_running(ctx), "at": time.time()})


class Crashy(OneShot):
    """F15: crashes on a timer while its position is open, and on ticks below `crash_below`."""

    def on_start(self, ctx: Context) -> None:
        if _param(ctx, "crash_on_start", False):
            raise ChaosCrash(f"{ctx.strategy_id}: crash in on_start")
        super().on_start(ctx)
        self._arm_crash(ctx)

    def on_timer(self, ctx: Context, name: str) -> None:
        if name == "crash":
            raise ChaosCrash(f"{ctx.strategy_id}: crash on timer (position {ctx.position})")
        super().on_timer(ctx, name)

    def on_tick(self, ctx: Context, tick: Tick) -> None:
        below = _param(ctx, "crash_below", None)
        if below is not None and tick.price < float(below):
            raise ChaosCrash(f"{ctx.strategy_id}: crash on tick {tick.price:g} < {float(below):g}")

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        super().on_fill(ctx, fill)
        if fill.purpose == "entry":
            self._arm_crash(ctx)

    def _arm_crash(self, ctx: Context) -> None:
        every = _param(ctx, "crash_every_s", None)
        if every is not None and ctx.runtime.position is Position.BOUGHT:
            ctx.schedule("crash", time.time() + float(every))


class Hanger(Strategy):
    """F16: the first tick below `hang_below` blocks this actor for `hang_s`; then a BUY from the fenced incarnation."""

    def on_tick(self, ctx: Context, tick: Tick) -> None:
        below = float(_param(ctx, "hang_below", 0.0))
        if tick.price >= below:
            return
        with _HUNG_LOCK:
            if ctx.strategy_id in _HUNG:
                return
            _HUNG.add(ctx.strategy_id)
        generation = ctx._actor.generation  # noqa: SLF001 - logged so the scenario can name the fenced incarnation
        log_event(f"strategy:{ctx.strategy_id}", "chaos_hang_started",
                  details={"strategy": ctx.strategy_id, "generation": generation, "price": tick.price})
        time.sleep(float(_param(ctx, "hang_s", 6.0)))  # a real hang: the actor thread is blocked
        log_event(f"strategy:{ctx.strategy_id}", "chaos_hang_woke",
                  details={"strategy": ctx.strategy_id, "generation": generation,
                           "fenced": ctx._actor.fenced})  # noqa: SLF001
        if _param(ctx, "buy_after_hang", True):
            ctx.buy(float(_param(ctx, "qty", 0.01)), reason="chaos: BUY from a hung incarnation")


class Looper(Strategy):
    """Round trips in a loop: every `step_s` BUY when flat, SELL when bought, up to `round_trips` entries.

    The entry count is the runtime's `entry_seq` (in Redis), so a restart does not reset it.
    `start_after_s` delays the first step. An order not answered within `patience_s` is asked again
    (harmless: the engine sends a BUY only from a flat position, and one exit id per position).
    """

    def __init__(self) -> None:
        self._sent_at = 0.0

    def on_start(self, ctx: Context) -> None:
        ctx.schedule("step", time.time() + float(_param(ctx, "start_after_s", 0.5)))

    def on_timer(self, ctx: Context, name: str) -> None:
        if name != "step":
            return
        now = time.time()
        runtime = ctx.runtime
        if now - self._sent_at >= float(_param(ctx, "patience_s", 1.0)) and not runtime.pending_order:
            if runtime.position is Position.BOUGHT:
                ctx.sell(reason="chaos looper sell")
                self._sent_at = now
            elif runtime.position in FLAT and runtime.entry_seq < int(_param(ctx, "round_trips", 10)):
                stop = _param(ctx, "stop_loss", None)
                ctx.buy(float(_param(ctx, "qty", 0.01)), stop_loss=float(stop) if stop else None,
                        reason="chaos looper buy")
                self._sent_at = now
        if runtime.position is Position.BOUGHT or runtime.entry_seq < int(_param(ctx, "round_trips", 10)):
            ctx.schedule("step", now + float(_param(ctx, "step_s", 0.3)))

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        self._sent_at = 0.0  # answered: the next step may act


_BURN = (
    "import time\n"
    "end = time.time() + {seconds!r}\n"
    "x = 0\n"
    "while time.time() < end:\n"
    "    x += 1\n"
)


class CpuBurner(Strategy):
    """F22: `burners` child processes (default: one more than the cores) spin for `burn_s` (their own
    deadline); `tick_burn_ms` per tick here. Not niced: the resources breaker measures the daemon's own
    process tree, and niced burners lose the cores to whatever else runs (the harness, the simulator)."""

    def __init__(self) -> None:
        self._children: list[subprocess.Popen[bytes]] = []

    def on_start(self, ctx: Context) -> None:
        seconds = float(_param(ctx, "burn_s", 40.0))
        count = int(_param(ctx, "burners", (os.cpu_count() or 1) + 1))
        for _ in range(count):
            self._children.append(subprocess.Popen([sys.executable, "-c", _BURN.format(seconds=seconds)],
                                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL))
        log_event(f"strategy:{ctx.strategy_id}", "chaos_cpu_burn_started",
                  details={"burners": count, "burn_s": seconds, "pids": [c.pid for c in self._children]})

    def on_tick(self, ctx: Context, tick: Tick) -> None:
        end = time.perf_counter() + float(_param(ctx, "tick_burn_ms", 50.0)) / 1000.0
        x = 0
        while time.perf_counter() < end:
            x += 1

    def on_stop(self, ctx: Context) -> None:
        for child in self._children:
            if child.poll() is None:
                child.terminate()
        for child in self._children:
            try:
                child.wait(2.0)
            except subprocess.TimeoutExpired:
                child.kill()
        log_event(f"strategy:{ctx.strategy_id}", "chaos_cpu_burn_stopped", details={"burners": len(self._children)})


__all__ = ["ChaosCrash", "CpuBurner", "Crashy", "Hanger", "Looper", "OneShot"]
