"""Node ids of the status tree (DESIGN §1): the names actors register under and are told by.

Operators and tests find nodes by these exact strings.
"""

from __future__ import annotations

ENGINE = "execution-engine"
POSITION_MANAGER = "position-manager"
DEGRADATION = "degradation"
CIRCUIT_BREAKER = "circuit-breaker"
STATE_BUILDER = "state-builder"
STORE_MONITOR = "monitor:store"


def strategy(strategy_id: str) -> str:
    return f"strategy:{strategy_id}"


def feed(symbol: str) -> str:
    return f"feed:{symbol}"
