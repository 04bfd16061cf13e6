"""What a soak run recorded from the outside: the only input of the checker.

Everything here was read from the venue's ledger, the Redis journal, the disk buffer,
`/status`, the logs and the harness's own record of what it did (faults, signals, daemon
processes), plus each venue order's final state (a partial fill completes after its request
was ledgered). Times are wall-clock epoch seconds of the harness (`at`); ledger entries keep
the venue's `time_ms`, which a `clock_skew` fault shifts (the checker undoes it).

A recording round-trips through JSON (`var/soak/<seed>/recording.json`), so a violation can
be re-checked, and the checker tested, without any process.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StrategyInfo:
    id: str
    symbol: str
    account: str
    kind: str  # "scheduled" | "class"


@dataclass
class AppliedFault:
    """A fault as applied: `status` is applied | unavailable | skipped (with `note`)."""

    index: int
    kind: str
    start: float
    end: float
    status: str
    params: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    blocks_orders: bool = False
    blinds: bool = False
    hard_shutdown: bool = False


@dataclass
class DaemonRun:
    """One daemon process: `signal` is what the harness sent it (None: it exited by itself)."""

    start: float
    end: float | None = None
    exit_code: int | None = None
    signal: str | None = None
    log: str = ""


@dataclass
class Sample:
    """One `/status` poll. `up`: reachable; `ready`: engine and position-manager running."""

    at: float
    up: bool
    ready: bool = False
    gate_open: bool = False
    mode: str = "DOWN"
    feeds: dict[str, str] = field(default_factory=dict)  # symbol -> feed status (LIVE, STALE, ...)


@dataclass
class Final:
    """The end state, read after every fault healed and the settle window passed."""

    at: float
    runtimes: dict[str, dict[str, Any]]  # strategy -> {position, quantity, pending_order, status} or {"corrupt": why}
    venue_positions: dict[str, float]
    unsettled: list[str]  # client ids of journal intents with no settling outcome
    healed: bool  # every fault healed and the daemon up when this was read


@dataclass
class Recording:
    seed: int
    started: float
    duration_s: float
    symbols: list[str]
    strategies: list[StrategyInfo]
    faults: list[AppliedFault] = field(default_factory=list)
    daemon_runs: list[DaemonRun] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    prices: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # venue order id -> final {status, executedQty}
    journal: list[dict[str, Any]] = field(default_factory=list)  # {kind, client_order_id, outcome, final, fields, at, source}
    buffer: list[dict[str, Any]] = field(default_factory=list)  # disk-buffer records not yet replayed
    log_events: list[dict[str, Any]] = field(default_factory=list)  # warnings and worse, and lifecycle events
    final: Final | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), default=str) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Recording:
        final = data.get("final")
        return cls(
            seed=int(data["seed"]), started=float(data["started"]), duration_s=float(data["duration_s"]),
            symbols=list(data["symbols"]), strategies=[StrategyInfo(**s) for s in data["strategies"]],
            faults=[AppliedFault(**f) for f in data.get("faults", [])],
            daemon_runs=[DaemonRun(**r) for r in data.get("daemon_runs", [])],
            samples=[Sample(**s) for s in data.get("samples", [])],
            prices={s: [(float(t), float(p)) for t, p in v] for s, v in data.get("prices", {}).items()},
            ledger=list(data.get("ledger", [])), orders=dict(data.get("orders", {})), journal=list(data.get("journal", [])),
            buffer=list(data.get("buffer", [])), log_events=list(data.get("log_events", [])),
            final=Final(**final) if final else None,
        )

    @classmethod
    def load(cls, path: Path) -> Recording:
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
