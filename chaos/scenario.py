"""What a scenario is and what it reports.

A scenario is a function `(cluster_factory) -> Result`, registered with `@scenario(...)`.
It drives the daemon into one failure for real, then checks from the outside that it was
detected, the DESIGN §5 response happened, recovery completed and nothing was lost.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from chaos.harness import Cluster


@dataclass
class Result:
    name: str
    row: str
    passed: bool = False
    detect_ms: float | None = None
    recover_ms: float | None = None
    duplicates: int = 0
    lost: int = 0
    failures: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    timeline: list[Any] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0

    def check(self, condition: bool, invariant: str) -> bool:
        if not condition:
            self.failures.append(invariant)
        return condition

    def as_row(self) -> dict[str, Any]:
        return {"scenario": self.name, "row": self.row, "passed": self.passed, "detect_ms": self.detect_ms,
                "recover_ms": self.recover_ms, "duplicates": self.duplicates, "lost": self.lost,
                "failures": self.failures, "notes": self.notes, "wall_s": round(self.wall_s, 2)}


def ms_since(t0: float) -> float:
    """Milliseconds since the monotonic instant `t0`, for detect/recover figures."""
    return round((time.monotonic() - t0) * 1000.0, 1)


ScenarioFn = Callable[[Result], None]
REGISTRY: dict[str, tuple[str, ScenarioFn]] = {}


def scenario(name: str, row: str) -> Callable[[ScenarioFn], ScenarioFn]:
    def register(fn: ScenarioFn) -> ScenarioFn:
        REGISTRY[name] = (row, fn)
        return fn

    return register


def finish(result: Result, cluster: Cluster) -> None:
    """The invariants every scenario ends with, checked from the outside."""
    result.duplicates = cluster.duplicates()
    result.lost = cluster.lost()
    result.check(result.duplicates == 0, f"no duplicate order per intent (found {result.duplicates})")
    result.check(result.lost == 0, f"no executed order without a journaled intent (found {result.lost})")
    drift = cluster.position_drift()
    result.check(not drift, f"positions equal to the exchange's (drift {drift})")
    result.timeline = list(cluster.samples)
    result.orders = [{**order, "t": order["time_ms"] / 1000.0 - cluster.t0_wall} for order in cluster.executed()]


def run(name: str) -> Result:
    row, fn = REGISTRY[name]
    result = Result(name, row)
    started = time.monotonic()
    try:
        fn(result)
    except AssertionError as exc:
        result.failures.append(str(exc))
    except Exception as exc:  # noqa: BLE001 - a broken scenario is a failed scenario, with its traceback
        result.failures.append(f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")
    result.wall_s = time.monotonic() - started
    result.passed = not result.failures
    return result
