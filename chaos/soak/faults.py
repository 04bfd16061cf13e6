"""Applying one nemesis fault to a live soak world, and healing it.

`apply(world, event)` returns `(status, note, heal)`: status `applied`, `unavailable` (the
simulator or the machine has no such control yet) or `skipped` (it could not act now, e.g.
a crash injected into a strategy while the daemon is down). `heal` undoes the fault when its
duration is over (None: the fault undoes itself, e.g. a strategy hang of fixed length).

The venue-realism faults (requests delayed in flight, "unknown then executed late", partial
fills, expiries, a thin book) are feature-detected in the simulator's fault registry: a
simulator without them records "unavailable", and only parameters it declares are passed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any, Callable

from chaos.soak.nemesis import FaultEvent
from runtime.simexchange.faults import FAULTS

if TYPE_CHECKING:
    from chaos.soak.runner import World

Heal = Callable[[], None]
Applied = tuple[str, str, Heal | None]

# soak kind -> simulator fault names that would do it (the first one the simulator has wins)
SIM_CANDIDATES: dict[str, tuple[str, ...]] = {
    "request_delay": ("network_delay", "request_delay"),
    "partial_fill": ("partial_fill",),
    "market_expire": ("market_expire",),
    "thin_book": ("thin_book",),
}
# soak parameter -> simulator parameter names it may go by, with a unit factor
PARAM_ALIASES: dict[str, tuple[tuple[str, float], ...]] = {
    "delay_s": (("ms", 1000.0), ("delay_ms", 1000.0), ("delay_s", 1.0)),
}

_BURN = "import os, time\nos.nice(19)\nend = time.time() + {s!r}\nwhile time.time() < end:\n    pass\n"


def sim_fault(kind: str) -> str | None:
    """The simulator's fault for a soak kind (its own name for the simple ones), or None."""
    for name in SIM_CANDIDATES.get(kind, (kind,)):
        if name in FAULTS:
            return name
    return None


def apply(world: World, event: FaultEvent) -> Applied:
    handler = _HANDLERS.get(event.kind)
    if handler is None:
        return "unavailable", f"no handler for {event.kind}", None
    try:
        return handler(world, event)
    except Exception as exc:  # noqa: BLE001 - a fault that could not act is recorded, the soak goes on
        return "skipped", f"{type(exc).__name__}: {exc}", None


# --- the daemon -------------------------------------------------------------------------


def _daemon_kill(world: World, event: FaultEvent) -> Applied:
    if not world.signal_daemon(signal.SIGKILL):
        return "skipped", "daemon not running", None
    return "applied", "", world.restart_daemon_after_exit


def _daemon_term(world: World, event: FaultEvent) -> Applied:
    if not world.signal_daemon(signal.SIGTERM):
        return "skipped", "daemon not running", None
    return "applied", "", world.restart_daemon_after_exit


# --- Redis ------------------------------------------------------------------------------


def _redis_kill(world: World, event: FaultEvent) -> Applied:
    world.cluster.redis.kill()
    return "applied", "", world.cluster.redis.restart


def _redis_restart(world: World, event: FaultEvent) -> Applied:
    world.cluster.redis.stop()
    return "applied", "graceful stop, started again after the duration", world.cluster.redis.restart


def _redis_stop(world: World, event: FaultEvent) -> Applied:
    pid = world.cluster.redis.pid
    if pid is None:
        return "skipped", "redis not running", None
    os.kill(pid, signal.SIGSTOP)
    return "applied", f"SIGSTOP pid {pid}", lambda: os.kill(pid, signal.SIGCONT)


# --- the simulator's fault board ---------------------------------------------------------


def _board(name: str, **fields: Any) -> Callable[[World, FaultEvent], Applied]:
    def handler(world: World, event: FaultEvent) -> Applied:
        values = {k: event.params[v] if isinstance(v, str) and v in event.params else v for k, v in fields.items()}
        values = {k: v for k, v in values.items() if v is not None}
        world.cluster.exchange.set_fault(name, **values)
        return "applied", "", lambda: world.cluster.exchange.clear_faults(name)
    return handler


def _ws_gap(world: World, event: FaultEvent) -> Applied:
    symbol = world.symbols[event.params["symbol_index"] % len(world.symbols)]
    world.cluster.exchange.set_fault("ws_gap", symbol=symbol)
    return "applied", symbol, lambda: world.cluster.exchange.clear_faults("ws_gap")


def _realism(world: World, event: FaultEvent) -> Applied:
    """A venue-realism fault, if the simulator has it: only the parameters it declares."""
    name = sim_fault(event.kind)
    if name is None:
        return "unavailable", f"the simulator has no {event.kind} fault (looked for {SIM_CANDIDATES[event.kind]})", None
    spec = FAULTS[name]
    declared = {p.name: p for p in spec.params}
    values: dict[str, Any] = {}
    for ours, value in event.params.items():
        if ours == "count":
            if spec.counts is not None:
                values["count"] = value
            continue
        for theirs, factor in PARAM_ALIASES.get(ours, ((ours, 1.0),)):
            if theirs in declared:
                kind = declared[theirs].kind
                values[theirs] = kind(value * factor) if kind in (int, float) else value
                break
    world.cluster.exchange.set_fault(name, **values)
    return "applied", f"simulator fault {name} {values}", lambda: world.cluster.exchange.clear_faults(name)


def _unknown_late(world: World, event: FaultEvent) -> Applied:
    """503 "unknown" at once, and the order executes `execute_after_s` later inside the venue."""
    if not any(p.name == "execute_after_s" for p in FAULTS["unknown_503"].params):
        return "unavailable", "the simulator's unknown_503 has no execute_after_s", None
    world.cluster.exchange.set_fault("unknown_503", count=event.params["count"], execute=True,
                                     execute_after_s=float(event.params["execute_after_s"]))
    return "applied", "", lambda: world.cluster.exchange.clear_faults("unknown_503")


def _token_expiry(world: World, event: FaultEvent) -> Applied:
    world.cluster.exchange.set_fault("token_invalid")

    def restore() -> None:
        world.cluster.exchange.clear_faults("token_invalid")
        world.enable_paused("operator re-auth after token expiry")
    return "applied", "", restore


# --- the market -------------------------------------------------------------------------


def _price_spike(world: World, event: FaultEvent) -> Applied:
    symbol = world.symbols[event.params["symbol_index"] % len(world.symbols)]
    pct = float(event.params["pct"])
    world.cluster.exchange.spike_price(symbol, pct)
    back = (1.0 / (1.0 + pct / 100.0) - 1.0) * 100.0
    return "applied", f"{symbol} {pct:+g}%", lambda: world.cluster.exchange.spike_price(symbol, back)


# --- strategies and the machine ----------------------------------------------------------


def _cue(kind: str) -> Callable[[World, FaultEvent], Applied]:
    """Crash or hang a Trader: it obeys a cue file on its next step (`chaos.soak.strategies`)."""
    def handler(world: World, event: FaultEvent) -> Applied:
        traders = [s.id for s in world.cluster.strategies if s.cls]
        if not traders:
            return "skipped", "no Trader strategy to crash or hang", None
        strategy = traders[event.params["strategy_index"] % len(traders)]
        (world.cue_dir / f"{strategy}.{kind}").touch()
        return "applied", strategy, None
    return handler


def _disk_full(world: World, event: FaultEvent) -> Applied:
    if not world.tmpfs:
        return "unavailable", "data_dir is not on a small tmpfs (mount failed or --no-tmpfs)", None
    from chaos.scenarios.process import fill_to

    filler = world.cluster.data_dir / "soak-disk-filler.bin"
    fill_to(world.cluster.data_dir, float(event.params["percent"]), filler)
    return "applied", f"filled to {event.params['percent']} %", lambda: filler.unlink(missing_ok=True)


def _cpu_burn(world: World, event: FaultEvent) -> Applied:
    seconds = event.duration_s + 1.0  # each burner has its own deadline: nothing outlives the soak
    burners = [subprocess.Popen([sys.executable, "-c", _BURN.format(s=seconds)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(int(event.params["burners"]))]

    def stop() -> None:
        for proc in burners:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 5
        for proc in burners:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
    return "applied", f"{len(burners)} niced burner(s)", stop


_HANDLERS: dict[str, Callable[[World, FaultEvent], Applied]] = {
    "daemon_kill": _daemon_kill,
    "daemon_term": _daemon_term,
    "redis_kill": _redis_kill,
    "redis_restart": _redis_restart,
    "redis_stop": _redis_stop,
    "ws_drop": _board("ws_drop", count="refused", abrupt="abrupt"),
    "ws_stall": _board("ws_stall"),
    "ws_gap": _ws_gap,
    "ws_corrupt": _board("ws_corrupt", mode="mode"),
    "http_429": _board("http_429", retry_after_s="retry_after_s"),
    "http_418": _board("http_418", retry_after_s="retry_after_s"),
    "order_timeout": _board("hold_reply", count="count", hold_s="hold_s"),
    "unknown_503": _board("unknown_503", count="count", execute="execute"),
    "internal_error": _board("internal_error", count="count"),
    "request_delay": _realism,
    "unknown_late": _unknown_late,
    "thin_book": _realism,
    "partial_fill": _realism,
    "market_expire": _realism,
    "token_expiry": _token_expiry,
    "clock_skew": _board("clock_skew", ms="ms"),
    "price_spike": _price_spike,
    "strategy_crash": _cue("crash"),
    "strategy_hang": _cue("hang"),
    "disk_full": _disk_full,
    "cpu_burn": _cpu_burn,
}
