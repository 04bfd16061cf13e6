"""The nemesis: a fault schedule that is a pure function of the seed.

`schedule(seed, duration_s, ...)` draws faults from the whole catalogue (`CATALOGUE`),
one at a time and overlapping, with random durations, inside the fault window
`[warmup_s, duration_s - quiet_s]`. The same arguments give the same faults at the same
offsets, whatever the machine or the simulator supports: a fault the simulator does not
have yet is still drawn (and recorded "unavailable" when applied), so adding a fault
control never shifts another seed's schedule.

Faults of one `group` never overlap (two SIGKILLs cannot be "at once"; Redis cannot be
killed and SIGSTOPped together); faults of different groups overlap freely.

Pure: no clock, no I/O. `chaos.soak.runner` applies the schedule to a live cluster.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from runtime.simexchange.faults import MAX_LATE_EXECUTION_S


@dataclass(frozen=True)
class FaultKind:
    """One entry of the catalogue.

    `blocks_orders`: while on, the venue refuses or withholds order requests (rate limits, 5xx,
    bad token, delays), so a stop cannot be required to exit within 2 s; the checker's clock
    starts when it heals. `blinds`: the daemon's market data is not fresh while on.
    `hard_shutdown`: the fault legitimately calls for HARD_SHUTDOWN (none in this catalogue).
    """

    name: str
    group: str
    weight: float
    min_s: float
    max_s: float
    blocks_orders: bool = False
    blinds: bool = False
    hard_shutdown: bool = False


CATALOGUE: tuple[FaultKind, ...] = (
    # the daemon process (restarted by the harness when the fault heals, as systemd would)
    FaultKind("daemon_kill", "daemon", 3.0, 0.5, 5.0),
    FaultKind("daemon_term", "daemon", 1.5, 0.5, 3.0),
    # Redis
    FaultKind("redis_kill", "redis", 2.0, 1.0, 20.0),
    FaultKind("redis_restart", "redis", 1.0, 0.2, 1.0),
    FaultKind("redis_stop", "redis", 1.5, 1.0, 12.0),
    # the market-data WebSocket
    FaultKind("ws_drop", "ws", 2.0, 1.0, 8.0, blinds=True),
    FaultKind("ws_stall", "ws", 1.5, 1.0, 8.0, blinds=True),
    FaultKind("ws_gap", "ws", 1.5, 1.0, 5.0, blinds=True),
    FaultKind("ws_corrupt", "ws", 1.0, 1.0, 5.0, blinds=True),
    # the REST edge
    FaultKind("http_429", "rate", 1.5, 1.0, 8.0, blocks_orders=True),
    FaultKind("http_418", "rate", 0.7, 1.0, 6.0, blocks_orders=True),
    FaultKind("order_timeout", "orders", 1.5, 2.0, 10.0, blocks_orders=True),
    FaultKind("unknown_503", "orders", 1.0, 2.0, 10.0, blocks_orders=True),
    FaultKind("internal_error", "orders", 0.7, 2.0, 8.0, blocks_orders=True),
    FaultKind("request_delay", "delay", 1.0, 2.0, 10.0, blocks_orders=True),
    FaultKind("unknown_late", "orders", 1.0, 2.0, 10.0, blocks_orders=True),  # the simulator's unknown_503 too
    FaultKind("partial_fill", "fills", 1.0, 5.0, 20.0),
    FaultKind("market_expire", "fills", 1.0, 3.0, 15.0, blocks_orders=True),
    FaultKind("thin_book", "fills", 0.5, 3.0, 15.0, blocks_orders=True),
    FaultKind("token_expiry", "token", 0.7, 2.0, 10.0, blocks_orders=True),
    FaultKind("clock_skew", "clock", 0.7, 3.0, 15.0, blocks_orders=True),
    # the market itself
    FaultKind("price_spike", "spike", 1.0, 0.5, 5.0),  # healed by the move back
    # the strategies and the machine
    FaultKind("strategy_crash", "strategy", 1.5, 0.0, 0.0),
    FaultKind("strategy_hang", "strategy", 1.0, 0.0, 0.0),
    FaultKind("disk_full", "disk", 0.5, 5.0, 20.0),
    FaultKind("cpu_burn", "cpu", 0.7, 3.0, 12.0),
)
KINDS: dict[str, FaultKind] = {k.name: k for k in CATALOGUE}


@dataclass(frozen=True)
class FaultEvent:
    """One scheduled fault: `kind` starts at `start_s` (offset into the run) for `duration_s`."""

    index: int
    kind: str
    start_s: float
    duration_s: float
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MarketMove:
    """A scripted move of one symbol (a dip through many stops, or a rally): `pct` over `steps` ticks."""

    start_s: float
    symbol_index: int
    pct: float
    steps: int


def _params(kind: str, rng: random.Random, strategies: int, symbols: int) -> dict[str, Any]:
    """The fault's own parameters, drawn from the same generator (so they replay too)."""
    if kind in ("ws_gap", "price_spike"):
        return {"symbol_index": rng.randrange(symbols),
                **({"pct": rng.choice((-1, 1)) * round(rng.uniform(2.0, 25.0), 1)} if kind == "price_spike" else {})}
    if kind == "ws_corrupt":
        return {"mode": rng.choice(("json", "schema"))}
    if kind == "ws_drop":
        return {"refused": rng.randint(0, 3), "abrupt": rng.random() < 0.5}
    if kind == "http_429":
        return {"retry_after_s": rng.randint(1, 2)}
    if kind == "http_418":
        return {"retry_after_s": rng.randint(2, 5)}
    if kind == "order_timeout":
        return {"count": rng.randint(1, 3), "hold_s": round(rng.uniform(1.5, 4.0), 2)}
    if kind == "unknown_503":
        return {"count": rng.randint(1, 3), "execute": rng.random() < 0.6}
    if kind == "internal_error":
        return {"count": rng.randint(1, 3)}
    if kind == "request_delay":
        return {"count": rng.randint(1, 3), "delay_s": round(rng.uniform(0.5, 8.0), 2)}
    if kind == "unknown_late":
        # Up to the simulator's documented horizon, never beyond: the engine's settle window covers it.
        return {"count": rng.randint(1, 2), "execute_after_s": round(rng.uniform(0.5, MAX_LATE_EXECUTION_S), 2)}
    if kind == "partial_fill":
        return {"count": rng.randint(1, 4), "ratio": round(rng.uniform(0.2, 0.9), 2),
                "rest_after_s": round(rng.uniform(0.2, 3.0), 2)}
    if kind == "market_expire":
        return {"count": rng.randint(1, 3), "ratio": rng.choice((0.0, round(rng.uniform(0.1, 0.9), 2)))}
    if kind == "thin_book":
        return {"count": rng.randint(1, 3), "levels": rng.randint(1, 3)}
    if kind == "clock_skew":
        return {"ms": rng.choice((-1, 1)) * rng.randint(300, 3000)}
    if kind in ("strategy_crash", "strategy_hang"):
        return {"strategy_index": rng.randrange(strategies)}
    if kind == "disk_full":
        return {"percent": round(rng.uniform(90.5, 93.5), 1)}
    if kind == "cpu_burn":
        return {"burners": rng.randint(1, 2)}
    return {}


def schedule(seed: int, duration_s: float, *, strategies: int = 50, symbols: int = 3, warmup_s: float = 5.0,
             quiet_s: float | None = None, mean_gap_s: float = 6.0,
             kinds: tuple[str, ...] | None = None) -> list[FaultEvent]:
    """The fault schedule for `seed`: every fault starts and heals inside the fault window.

    `kinds` restricts the catalogue (the smoke soak uses the faults the engine survives today);
    the generator is still seeded the same way, so a restricted schedule is reproducible too.
    """
    quiet = max(8.0, 0.1 * duration_s) if quiet_s is None else quiet_s
    window_end = duration_s - quiet
    pool = [k for k in CATALOGUE if kinds is None or k.name in kinds]
    unknown = set(kinds or ()) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {sorted(KINDS)}")
    rng = random.Random(f"warden-soak-{seed}")
    events: list[FaultEvent] = []
    busy_until: dict[str, float] = {}
    t = warmup_s
    while pool and window_end > warmup_s:
        t += rng.expovariate(1.0 / mean_gap_s)
        if t >= window_end:
            break
        kind = rng.choices(pool, weights=[k.weight for k in pool])[0]
        duration = round(rng.uniform(kind.min_s, kind.max_s), 2)
        params = _params(kind.name, rng, strategies, symbols)
        start = round(max(t, busy_until.get(kind.group, 0.0)), 2)
        duration = min(duration, round(window_end - start, 2))
        if duration < kind.min_s:
            continue  # no room left before the quiet end for this one
        events.append(FaultEvent(len(events), kind.name, start, duration, params))
        busy_until[kind.group] = start + duration + 0.5
    return events


def market_moves(seed: int, duration_s: float, *, symbols: int = 3, mean_gap_s: float = 8.0) -> list[MarketMove]:
    """Scripted dips and rallies that cross many stops at once (also a pure function of the seed)."""
    rng = random.Random(f"warden-soak-market-{seed}")
    moves: list[MarketMove] = []
    t = 3.0
    while True:
        t += rng.expovariate(1.0 / mean_gap_s)
        if t >= duration_s - 5.0:
            return moves
        pct = -rng.uniform(0.4, 1.5) if rng.random() < 0.7 else rng.uniform(0.3, 1.2)
        moves.append(MarketMove(round(t, 2), rng.randrange(symbols), round(pct, 3), rng.randint(5, 40)))


def overlapping(events: list[FaultEvent]) -> int:
    """How many events start while another is still on (the soak must combine faults)."""
    ordered = sorted(events, key=lambda e: e.start_s)
    return sum(1 for i, e in enumerate(ordered) if any(o.end_s > e.start_s for o in ordered[:i]))
