"""Issue 10 case 10 / F7: every feed reconnect is a reconciliation barrier.

The real `degradation` actor: when a symbol's feed is LIVE again after a drop, entries on that
symbol stay closed and position-manager is asked to reconcile; its clearing signal reopens them.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from actors.core import signals as sig
from actors.core.degradation import OrderKind
from actors.degradation import DegradationActor
from actors.messages import Reconcile
from actors.services import Services
from runtime.config import parse_config
from tests.fakes import ActorWorld
from tests.waiting import eventually

CONFIG = """
[feeds]
symbols = ["BTCUSDT", "ETHUSDT"]
"""


@pytest.fixture
def world() -> Iterator[ActorWorld]:
    w = ActorWorld(Services(config=parse_config(CONFIG), store=None, venue=None))
    yield w
    w.close()


def entries_open(world: ActorWorld, symbol: str) -> bool:
    return world.services.gate().check("s1", symbol, OrderKind.ENTRY).open


def test_case10_feed_reconnect_closes_the_symbol_until_position_manager_has_reconciled(world):
    manager = world.recorder("position-manager")
    ref = world.start(DegradationActor, world.services, revalidate=(), tick_interval=0.01)
    ref.tell(sig.feed_status("BTCUSDT", "DISCONNECTED", "feed dropped"))
    eventually(lambda: not entries_open(world, "BTCUSDT"), what="entries closed while the feed is down")
    ref.tell(sig.feed_status("BTCUSDT", "LIVE"))
    asked = eventually(lambda: [m for m in manager if isinstance(m, Reconcile)], what="a reconcile was asked for")
    assert asked[0].reason == "feed reconnect BTCUSDT"
    assert not entries_open(world, "BTCUSDT"), "the feed is LIVE, but the symbol waits for the reconciliation"
    assert entries_open(world, "ETHUSDT"), "other symbols are not held back"
    ref.tell(sig.reconcile_barrier("BTCUSDT", False))  # what position-manager sends once reconciled
    eventually(lambda: entries_open(world, "BTCUSDT"), what="entries reopen after the reconciliation")


def test_case10_no_barrier_when_position_manager_is_not_running(world):
    ref = world.start(DegradationActor, world.services, revalidate=(), tick_interval=0.01)
    ref.tell(sig.feed_status("BTCUSDT", "DISCONNECTED", "feed dropped"))
    eventually(lambda: not entries_open(world, "BTCUSDT"), what="entries closed while the feed is down")
    ref.tell(sig.feed_status("BTCUSDT", "LIVE"))
    eventually(lambda: entries_open(world, "BTCUSDT"),
               what="nobody to reconcile now (its cold start will): the symbol is not held forever")
