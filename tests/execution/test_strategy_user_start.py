"""F15/F16: a strategy's own __init__/on_start failing or blocking is that strategy's crash or hang.

User code runs in the strategy actor's first message, not in pykka's on_start, so the dynamic
`strategies` supervisor (and the daemon's boot) never fails or stalls on it. No Redis, no venue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from actors.services import Services
from actors.strategy import Context, Strategy, StrategyActor
from runtime.config import Config, StrategyConfig
from supervision import ChildSpec, Supervisor
from tests.waiting import eventually

RELEASE = threading.Event()  # unblocks Blocking.on_start at teardown
STARTED: list[str] = []


class _Store:
    def load_runtime(self, strategy_id: str) -> None:
        return None


class Fine(Strategy):
    def on_start(self, ctx: Context) -> None:
        STARTED.append(ctx.strategy_id)


class Boom(Strategy):
    def on_start(self, ctx: Context) -> None:
        raise RuntimeError("user on_start failed")


class BoomInit(Strategy):
    def __init__(self) -> None:
        raise RuntimeError("user __init__ failed")


class Blocking(Strategy):
    def on_start(self, ctx: Context) -> None:
        RELEASE.wait(10)


@pytest.fixture
def strategies() -> Iterator[Any]:
    STARTED.clear()
    RELEASE.clear()
    services = Services(config=Config(), store=_Store(), venue=None)
    started: list[pykka.ActorRef[Any]] = []
    disabled: list[str] = []

    def start(*classes: type[Strategy], hang_timeout: float | None = None) -> tuple[Any, list[str]]:
        children = [ChildSpec(f"strategy:{cls.__name__.lower()}", StrategyActor,
                              args=(StrategyConfig(id=cls.__name__.lower(), kind="class", symbol="BTCUSDT"),
                                    cls, services),
                              hang_timeout=hang_timeout, shutdown=0.5)
                    for cls in classes]
        ref = Supervisor.start(strategy="dynamic", intensity=3, period=600.0, intensity_scope="child",
                               min_backoff=0.01, max_backoff=0.05, children=children,
                               on_child_disabled=lambda child_id, reason: disabled.append(child_id))
        started.append(ref)
        return ref.proxy(), disabled

    yield start
    RELEASE.set()
    for ref in started:
        if ref.is_alive():
            ref.stop(timeout=10)
    services.timers.stop()


def _child(sup: Any, child_id: str) -> dict[str, Any]:
    return next(c for c in sup.which_children().get(timeout=5) if c["id"] == child_id)


@pytest.mark.parametrize("bad", [Boom, BoomInit])
def test_f15_user_start_failure_at_boot_is_a_crash_not_a_failed_boot(strategies: Any, bad: type[Strategy]) -> None:
    sup, disabled = strategies(bad, Fine)  # Supervisor.start would raise StartFailed if user code ran in on_start
    bad_id = f"strategy:{bad.__name__.lower()}"
    eventually(lambda: _child(sup, bad_id)["state"] == "disabled", timeout=5,
               what="the failing strategy restarted with backoff, then disabled after intensity 3")
    assert _child(sup, bad_id)["restarts"] == 4, "the 4th restart in the period trips (F15)"
    assert disabled == [bad_id], "the node is told (position handed over, breaker told)"
    assert _child(sup, "strategy:fine")["state"] == "running" and STARTED == ["fine"], \
        "the other strategy started once and keeps running"


def test_f16_user_on_start_that_blocks_is_a_hang_not_a_stalled_supervisor(strategies: Any) -> None:
    began = time.monotonic()
    sup, _ = strategies(Blocking, Fine, hang_timeout=0.3)
    assert time.monotonic() - began < 2.0, "the supervisor did not wait out start_timeout on user code"
    assert _child(sup, "strategy:fine")["state"] == "running"
    node = eventually(lambda: (n := next(c for c in sup.snapshot().get(timeout=5)["children"]
                                         if c["id"] == "strategy:blocking"))["restarts"] >= 1 and n,
                      timeout=5, what="the blocked strategy detected as hung and replaced")
    assert node["last_error"]["type"] == "hung"
