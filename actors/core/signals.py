"""What the degradation core is told, and the one table of what each source means.

A ``Signal`` raises or clears one *cause*: a condition identified by
``(source, cause, scope, key)``, with an ``Effect`` on trading in that scope.
The factories below are the failure matrix's "response" column as code --
which source closes entries where, which one degrades the mode -- so the
mapping lives in one reviewable place and not in every actor:

| source | cause | scope | effect |
| --- | --- | --- | --- |
| feed:<S> | feed_health (STALE/DISCONNECTED/RECOVERING) | symbol | BLOCK_ENTRIES (F7-F10) |
| feed:<S> | stale_exit (stale > stale_exit_after, policy flatten) | symbol | FLATTEN (F10) |
| feed:<S> | corrupt_rate / reconnect_failures | node | REDUCED (F7, F12) |
| state-builder | state_invalid | node | BLOCK_ENTRIES (F17) |
| monitor:store | store_down | node | BLOCK_ENTRIES (F18) |
| monitor:clock | clock_drift (> 5 s) | node | BLOCK_ENTRIES (F21) |
| execution-engine | rate_limit (persistent) | node | REDUCED, 5 min clean (F5) |
| execution-engine | token_invalid | account | BLOCK_ENTRIES (F3) |
| circuit-breaker | rapid_loss | node | EMERGENCY (F23) |
| circuit-breaker | abnormal_price | symbol | BLOCK_ENTRIES (F13) |
| circuit-breaker | strategy_malfunction | strategy | BLOCK_ENTRIES (F24) |
| circuit-breaker | resources | node | REDUCED (F22) |
| operator | halt | any | BLOCK_ENTRIES |
| supervisor | escalated (root tripped) | node | HARD_SHUTDOWN |
| supervisor | disabled | strategy | BLOCK_ENTRIES (F15) |
| strategy:<id> | strategy_failed (SAFETY_ABORT) | node | REDUCED (F14, F31) |
| monitor:store | position_unprotected (store down past protect_after_s) | node | REDUCED (F28) |

``clean_period`` on a signal overrides the configured hysteresis for that
cause: 0 means "reopen as soon as it clears", used where the source has
already validated its own recovery (feed: 3 fresh updates and N s clean; store:
replay + reconcile) or where an operator is the validation.

Pure values; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from actors import node_ids
from actors.core.breakers import BreakerEvent, BreakerState
from actors.core.feed_health import FeedHealth


class Scope(str, Enum):
    NODE = "node"
    SYMBOL = "symbol"
    STRATEGY = "strategy"
    ACCOUNT = "account"


class Effect(str, Enum):
    """What an active cause does. Ordered from mildest to worst within each family."""

    BLOCK_ENTRIES = "BLOCK_ENTRIES"  # entries closed in the scope; exits untouched
    FLATTEN = "FLATTEN"  # entries closed and the scope's positions to be flattened
    REDUCED = "REDUCED"  # node mode at least REDUCED
    EMERGENCY = "EMERGENCY"  # node mode at least EMERGENCY
    HARD_SHUTDOWN = "HARD_SHUTDOWN"  # node mode HARD_SHUTDOWN (terminal)

    @property
    def is_mode(self) -> bool:
        return self in (Effect.REDUCED, Effect.EMERGENCY, Effect.HARD_SHUTDOWN)


@dataclass(frozen=True)
class Signal:
    """Raise (``active=True``) or clear (``active=False``) one cause."""

    source: str  # node id of the sender: feed:BTCUSDT, monitor:store, operator, ...
    cause: str  # stable name of the condition, e.g. store_down
    active: bool
    effect: Effect
    scope: Scope = Scope.NODE
    key: str = ""  # symbol / strategy id / account for non-node scopes
    reason: str = ""  # human text for logs and the status gate reasons
    clean_period: float | None = None  # None: the configured default for the effect

    def __post_init__(self) -> None:
        if self.effect.is_mode and self.scope is not Scope.NODE:
            raise ValueError(f"{self.effect.value} is a node-wide mode; scope must be node, not {self.scope.value}")
        if (self.scope is Scope.NODE) == bool(self.key):
            raise ValueError("key is required for symbol/strategy/account scope and forbidden for node scope")
        if self.clean_period is not None and self.clean_period < 0:
            raise ValueError("clean_period must be >= 0")

    @property
    def identity(self) -> tuple[str, str, Scope, str]:
        return (self.source, self.cause, self.scope, self.key)

    @property
    def scope_label(self) -> str:
        """``node``, ``symbol:BTCUSDT``, ``strategy:s1``, ``account:alice``."""
        return "node" if self.scope is Scope.NODE else f"{self.scope.value}:{self.key}"


# -- feeds ------------------------------------------------------------------


def feed_status(symbol: str, status: str, reason: str = "") -> Signal:
    """Entries on ``symbol`` are open only while its feed is LIVE (F7, F8, F9, F10)."""
    return Signal(
        source=node_ids.feed(symbol),
        cause="feed_health",
        active=status != "LIVE",
        effect=Effect.BLOCK_ENTRIES,
        scope=Scope.SYMBOL,
        key=symbol,
        reason=reason or f"feed {status}",
        clean_period=0.0,  # the feed's own 3-fresh-updates / clean-period rule is the hysteresis
    )


def reconcile_barrier(symbol: str, active: bool, reason: str = "") -> Signal:
    """Every reconnect is a reconciliation barrier (DESIGN §3): entries on ``symbol`` wait until
    position-manager has compared open orders and positions with the venue."""
    return Signal(
        source=node_ids.POSITION_MANAGER,
        cause="reconcile_barrier",
        active=active,
        effect=Effect.BLOCK_ENTRIES,
        scope=Scope.SYMBOL,
        key=symbol,
        reason=reason or "reconciling with the venue after a reconnect",
        clean_period=0.0,
    )


def from_feed_health(health: FeedHealth) -> list[Signal]:
    """The feed actor's signals for one ``FeedHealth``: the symbol gate (F7-F10) and
    the corrupt-rate REDUCED (F12). Clearing a cause that is not raised is a no-op,
    so the actor may send both after every change."""
    reason = "; ".join(health.reasons) or f"feed {health.status.value}"
    return [
        feed_status(health.symbol, health.status.value, reason),
        feed_degraded(health.symbol, "corrupt_rate", health.reduced,
                      f"corrupt message rate {health.corrupt_rate:.1%}"),
    ]


def stale_exit(symbol: str, active: bool, reason: str = "") -> Signal:
    """F10: stale longer than ``stale_exit_after`` with positions and policy ``flatten``."""
    return Signal(node_ids.feed(symbol), "stale_exit", active, Effect.FLATTEN, Scope.SYMBOL, symbol,
                  reason or "stale beyond stale_exit_after: flatten", clean_period=0.0)


def feed_degraded(symbol: str, cause: str, active: bool, reason: str = "") -> Signal:
    """F7 (> 5 reconnect failures, cause ``reconnect_failures``) or F12 (``corrupt_rate``): REDUCED."""
    return Signal(node_ids.feed(symbol), cause, active, Effect.REDUCED, reason=reason or cause)


# -- monitors and components --------------------------------------------------


def store(up: bool, reason: str = "") -> Signal:
    """F18: Redis down closes entries; the monitor clears it after replay + reconcile."""
    return Signal(node_ids.STORE_MONITOR, "store_down", not up, Effect.BLOCK_ENTRIES,
                  reason=reason or ("store up" if up else "store down"), clean_period=0.0)


def clock_offset(offset_s: float, halt_above: float = 5.0) -> Signal:
    """F21: more than ``halt_above`` seconds off venue time halts entries (the 1 s alert is the monitor's)."""
    active = abs(offset_s) > halt_above
    return Signal(node_ids.CLOCK_MONITOR, "clock_drift", active, Effect.BLOCK_ENTRIES,
                  reason=f"clock offset {offset_s:+.3f}s" + (f" > {halt_above}s" if active else ""))


def state_invalid(active: bool, reason: str = "") -> Signal:
    """F17: hot state INVALID while state-builder restarts and rebuilds."""
    return Signal(node_ids.STATE_BUILDER, "state_invalid", active, Effect.BLOCK_ENTRIES,
                  reason=reason or "hot state INVALID", clean_period=0.0)


def rate_limited(active: bool, reason: str = "", clean_period: float = 300.0) -> Signal:
    """F5: persistent rate limiting -> REDUCED; ramps back after a clean period (5 min)."""
    return Signal(node_ids.ENGINE, "rate_limit", active, Effect.REDUCED,
                  reason=reason or "persistent rate limiting", clean_period=clean_period)


def account_paused(account: str, active: bool, reason: str = "") -> Signal:
    """F3: TOKEN_INVALID pauses every strategy of the account until re-auth."""
    return Signal(node_ids.ENGINE, "token_invalid", active, Effect.BLOCK_ENTRIES, Scope.ACCOUNT, account,
                  reason or "token invalid: re-auth required", clean_period=0.0)


# -- breakers -----------------------------------------------------------------

_BREAKER_EFFECTS: dict[str, tuple[Effect, Scope]] = {
    "rapid_loss": (Effect.EMERGENCY, Scope.NODE),
    "abnormal_price": (Effect.BLOCK_ENTRIES, Scope.SYMBOL),
    "strategy_malfunction": (Effect.BLOCK_ENTRIES, Scope.STRATEGY),
    "resources": (Effect.REDUCED, Scope.NODE),
}


def from_breaker(event: BreakerEvent) -> Signal:
    """A breaker trip/reset as a degradation signal.

    An unknown breaker closes entries node-wide: a trip nobody mapped must
    still stop trading. Breakers that only an operator reopens, or that
    validated their own recovery, clear without a further clean period;
    ``resources`` ramps back through the configured one.
    """
    effect, scope = _BREAKER_EFFECTS.get(event.breaker, (Effect.BLOCK_ENTRIES, Scope.NODE))
    key = event.key or ""
    if scope is Scope.NODE or not key:
        scope, key = Scope.NODE, ""  # a keyed trip without its key is treated as node-wide
    return Signal(
        source=node_ids.CIRCUIT_BREAKER,
        cause=event.breaker,
        active=event.state is BreakerState.TRIPPED,
        effect=effect,
        scope=scope,
        key=key,
        reason=f"{event.name}: {event.reason}",
        clean_period=None if event.breaker == "resources" else 0.0,
    )


# -- operator and supervisor --------------------------------------------------


def operator_halt(active: bool, reason: str, scope: Scope = Scope.NODE, key: str = "") -> Signal:
    """``run.py halt|resume --reason``: an operator's halt is lifted only by a resume, at once."""
    return Signal("operator", "halt", active, Effect.BLOCK_ENTRIES, scope, key,
                  reason=f"{'halt' if active else 'resume'}: {reason}", clean_period=0.0)


def supervisor_escalation(reason: str) -> Signal:
    """The root supervisor tripped: HARD_SHUTDOWN (flatten, flush, exit 3)."""
    return Signal("supervisor", "escalated", True, Effect.HARD_SHUTDOWN, reason=reason)


def strategy_failed(strategy_id: str, active: bool, reason: str = "") -> Signal:
    """F14/F31: a strategy stopped by SAFETY_ABORT (a corrupt record, a permanent reject) keeps
    the node at least REDUCED until an operator repairs and enables it."""
    return Signal(node_ids.strategy(strategy_id), "strategy_failed", active, Effect.REDUCED,
                  reason=reason or f"strategy {strategy_id} failed", clean_period=0.0)


def position_unprotected(strategy_id: str, active: bool, reason: str = "") -> Signal:
    """F28: Redis down past protect_after_s and no venue-side stop holds this open position."""
    return Signal(node_ids.STORE_MONITOR, f"position_unprotected:{strategy_id}", active, Effect.REDUCED,
                  reason=reason or f"position of {strategy_id} unprotected", clean_period=0.0)


def strategy_disabled(strategy_id: str, active: bool, reason: str = "") -> Signal:
    """F15/F16: a strategy over its restart intensity is disabled until an operator enables it."""
    return Signal("supervisor", "disabled", active, Effect.BLOCK_ENTRIES, Scope.STRATEGY, strategy_id,
                  reason or "strategy disabled", clean_period=0.0)


__all__ = [
    "Effect",
    "Scope",
    "Signal",
    "account_paused",
    "clock_offset",
    "feed_degraded",
    "feed_status",
    "from_breaker",
    "from_feed_health",
    "operator_halt",
    "rate_limited",
    "stale_exit",
    "state_invalid",
    "store",
    "strategy_disabled",
    "strategy_failed",
    "position_unprotected",
    "supervisor_escalation",
]
