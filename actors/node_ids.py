"""Node ids of the status tree (DESIGN §1): the names actors register under and are told by.

Operators and tests find nodes by these exact strings. Every module takes them from here.
"""

from __future__ import annotations

ROOT = "root"
SAFETY = "safety"
DEGRADATION = "degradation"
CIRCUIT_BREAKER = "circuit-breaker"
MONITORS = "monitors"
STORE_MONITOR = "monitor:store"
RESOURCE_MONITOR = "monitor:resources"
CLOCK_MONITOR = "monitor:clock"
HEARTBEAT_MONITOR = "monitor:heartbeat"
MONITOR_PREFIX = "monitor:"
MARKET = "market"
STATE_BUILDER = "state-builder"
FEED_PREFIX = "feed:"
EXECUTION = "execution"
ENGINE = "execution-engine"
POSITION_MANAGER = "position-manager"
STRATEGIES = "strategies"
STRATEGY_PREFIX = "strategy:"


def strategy(strategy_id: str) -> str:
    """``strategy:<id>``."""
    return f"{STRATEGY_PREFIX}{strategy_id}"


def feed(symbol: str) -> str:
    """``feed:BTCUSDT``."""
    return f"{FEED_PREFIX}{symbol.upper()}"
