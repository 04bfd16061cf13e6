"""Circuit breakers: the rules that stop trading when results or resources go wrong.

DESIGN §5:

- F23 ``RapidLossBreaker``: > 5 % of capital lost in one trade, > 10 % in a
  session, or 5 losses in a row -> TRIPPED: halt all, flatten
  (CIRCUIT_BREAKER). Manual reset only. Losses are realized *and*
  unrealized P&L, and an order in state UNKNOWN counts as filled.
- F13 ``AbnormalPriceBreaker``: a symbol with an abnormal price move pauses
  entries for 60 s, then resumes by itself once the data validates.
- F24 ``StrategyMalfunctionBreaker``: over the last 20 trades, win rate 30
  points under baseline, average loss > 2x average win, or Sharpe < 0 ->
  that strategy is disabled until an operator resets it.
- F22 ``ResourceBreaker``: CPU > 95 % for 30 s, memory > 90 %, latency p99 >
  10x baseline -> shed load; clears by itself when the pressure is gone.

Every breaker has ``name``, ``state`` (CLOSED/TRIPPED), ``reason``,
``tripped_at`` and ``reset(operator_reason)``. Inputs return a
``BreakerEvent`` (or a list of them) when a state changes, so the actor logs
it and tells the degradation core (``signals.from_breaker``). Breakers keyed
by symbol or strategy report one status entry per tripped key, named
``<name>:<key>`` -- the name ``breaker reset NAME`` takes.

Pure: explicit ``now`` everywhere, no I/O, no threads.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Iterable, Iterator, Mapping


class BreakerState(str, Enum):
    CLOSED = "CLOSED"  # trading allowed by this breaker
    TRIPPED = "TRIPPED"


@dataclass(frozen=True)
class BreakerEvent:
    """A breaker (or one key of it) changed state."""

    breaker: str  # the breaker's name: rapid_loss, abnormal_price, ...
    key: str | None  # symbol / strategy id for keyed breakers
    state: BreakerState
    reason: str
    at: float

    @property
    def name(self) -> str:
        """The status/reset name: ``breaker`` or ``breaker:key``."""
        return self.breaker if self.key is None else f"{self.breaker}:{self.key}"


@dataclass(frozen=True)
class BreakerStatus:
    """One row of the status JSON ``breakers`` list (DESIGN §7)."""

    name: str
    state: BreakerState
    reason: str | None
    tripped_at: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state.value,
            "reason": self.reason,
            "tripped_at": self.tripped_at,
        }


class _Trip:
    """The CLOSED/TRIPPED record of one breaker or one key of a keyed breaker."""

    __slots__ = ("state", "reason", "tripped_at")

    def __init__(self) -> None:
        self.state = BreakerState.CLOSED
        self.reason: str | None = None
        self.tripped_at: float | None = None

    @property
    def tripped(self) -> bool:
        return self.state is BreakerState.TRIPPED

    def trip(self, now: float, reason: str) -> bool:
        """Trip; False if already tripped (the first reason is kept)."""
        if self.tripped:
            return False
        self.state, self.reason, self.tripped_at = BreakerState.TRIPPED, reason, now
        return True

    def close(self, reason: str) -> bool:
        if not self.tripped:
            return False
        self.state, self.reason, self.tripped_at = BreakerState.CLOSED, reason, None
        return True


class Breaker:
    """An unkeyed breaker: one trip record."""

    name: str = "breaker"

    def __init__(self) -> None:
        self._trip = _Trip()

    @property
    def state(self) -> BreakerState:
        return self._trip.state

    @property
    def reason(self) -> str | None:
        return self._trip.reason

    @property
    def tripped_at(self) -> float | None:
        return self._trip.tripped_at

    @property
    def tripped(self) -> bool:
        return self._trip.tripped

    def reset(self, operator_reason: str, now: float, key: str | None = None) -> list[BreakerEvent]:
        """Operator reset. Returns the CLOSED event, or [] if it was not tripped."""
        if key is not None:
            raise KeyError(f"breaker {self.name!r} has no keys (got {key!r})")
        if not self._trip.close(f"reset by operator: {operator_reason}"):
            return []
        self._on_reset()
        return [BreakerEvent(self.name, None, BreakerState.CLOSED, f"reset by operator: {operator_reason}", now)]

    def statuses(self) -> list[BreakerStatus]:
        return [BreakerStatus(self.name, self._trip.state, self._trip.reason, self._trip.tripped_at)]

    def _on_reset(self) -> None:
        """Hook: clear counters after an operator reset."""

    def _trip_now(self, now: float, reason: str) -> BreakerEvent | None:
        if not self._trip.trip(now, reason):
            return None
        return BreakerEvent(self.name, None, BreakerState.TRIPPED, reason, now)


class KeyedBreaker:
    """A breaker that trips per key (symbol or strategy id)."""

    name: str = "keyed"

    def __init__(self) -> None:
        self._trips: dict[str, _Trip] = {}

    @property
    def state(self) -> BreakerState:
        """TRIPPED if any key is tripped."""
        return BreakerState.TRIPPED if self.tripped_keys() else BreakerState.CLOSED

    @property
    def reason(self) -> str | None:
        keys = self.tripped_keys()
        return None if not keys else "; ".join(f"{k}: {self._trips[k].reason}" for k in keys)

    @property
    def tripped_at(self) -> float | None:
        times = [self._trips[k].tripped_at for k in self.tripped_keys()]
        return min((t for t in times if t is not None), default=None)

    def tripped_keys(self) -> list[str]:
        return sorted(k for k, t in self._trips.items() if t.tripped)

    def is_tripped(self, key: str) -> bool:
        trip = self._trips.get(key)
        return trip is not None and trip.tripped

    def reset(self, operator_reason: str, now: float, key: str | None = None) -> list[BreakerEvent]:
        """Operator reset of one key, or of every tripped key when ``key`` is None."""
        keys = [key] if key is not None else self.tripped_keys()
        events = []
        reason = f"reset by operator: {operator_reason}"
        for k in keys:
            trip = self._trips.get(k)
            if trip is not None and trip.close(reason):
                self._on_reset(k)
                events.append(BreakerEvent(self.name, k, BreakerState.CLOSED, reason, now))
        return events

    def statuses(self) -> list[BreakerStatus]:
        keys = self.tripped_keys()
        if not keys:
            return [BreakerStatus(self.name, BreakerState.CLOSED, None, None)]
        return [
            BreakerStatus(f"{self.name}:{k}", BreakerState.TRIPPED, self._trips[k].reason, self._trips[k].tripped_at)
            for k in keys
        ]

    def _on_reset(self, key: str) -> None:
        """Hook: clear the key's counters after a reset."""

    def _trip_key(self, key: str, now: float, reason: str) -> BreakerEvent | None:
        trip = self._trips.setdefault(key, _Trip())
        if not trip.trip(now, reason):
            return None
        return BreakerEvent(self.name, key, BreakerState.TRIPPED, reason, now)

    def _close_key(self, key: str, now: float, reason: str) -> BreakerEvent | None:
        trip = self._trips.get(key)
        if trip is None or not trip.close(reason):
            return None
        return BreakerEvent(self.name, key, BreakerState.CLOSED, reason, now)


# --------------------------------------------------------------------------- F23


@dataclass(frozen=True)
class RapidLossConfig:
    trade_loss_limit: float = 0.05  # fraction of capital lost in one trade
    session_loss_limit: float = 0.10  # fraction of capital lost in the session
    max_consecutive_losses: int = 5


@dataclass
class _Exposure:
    symbol: str
    side: int  # +1 long, -1 short
    qty: float
    entry_price: float
    unknown: bool  # order outcome UNKNOWN: counted as filled until settled
    unrealized: float = 0.0


class RapidLossBreaker(Breaker):
    """F23: halt everything and flatten on rapid loss; only an operator reopens it.

    Exposure comes from the execution side: ``open_position`` when an entry
    fills *or* when its outcome is UNKNOWN (it counts as filled: an order we
    cannot see may be losing money), ``mark`` on every price, and
    ``close_position`` / ``record_trade`` when it is closed. ``settle_unknown``
    drops an UNKNOWN exposure once a lookup proves the order never filled.

    Session P&L is realized + unrealized since the session began (start or the
    last operator reset). Consecutive losses: a loss extends the streak, a win
    ends it, a break-even trade leaves it as it is.
    """

    name = "rapid_loss"

    def __init__(self, capital: float, config: RapidLossConfig | None = None) -> None:
        super().__init__()
        if capital <= 0:
            raise ValueError("capital must be positive")
        self.capital = capital
        self.config = config or RapidLossConfig()
        self._exposures: dict[str, _Exposure] = {}
        self._realized = 0.0
        self._realized_by_key: dict[str, float] = {}
        self._session_base = 0.0
        self.consecutive_losses = 0

    @property
    def session_pnl(self) -> float:
        unrealized = sum(e.unrealized for e in self._exposures.values())
        return self._realized + unrealized - self._session_base

    def open_position(
        self,
        key: str,
        symbol: str,
        side: int,
        qty: float,
        entry_price: float,
        now: float,
        *,
        unknown: bool = False,
    ) -> None:
        """Track an open position (``side`` +1 long / -1 short) under ``key`` (e.g. strategy id).

        It counts from the next ``mark``; the entry itself has no loss yet.
        """
        if side not in (1, -1):
            raise ValueError("side must be +1 or -1")
        self._exposures[key] = _Exposure(symbol, side, qty, entry_price, unknown)

    def settle_unknown(self, key: str, filled: bool) -> None:
        """A lookup by client id settled an UNKNOWN entry."""
        exposure = self._exposures.get(key)
        if exposure is None:
            return
        if filled:
            exposure.unknown = False
        else:
            del self._exposures[key]

    def mark(self, symbol: str, price: float, now: float) -> BreakerEvent | None:
        """Mark every exposure on ``symbol`` to ``price``; trips on an unrealized breach."""
        event = None
        for key, exp in self._exposures.items():
            if exp.symbol != symbol:
                continue
            exp.unrealized = exp.side * exp.qty * (price - exp.entry_price)
            if -exp.unrealized > self.config.trade_loss_limit * self.capital:
                kind = "UNKNOWN order counted as filled" if exp.unknown else "open"
                event = event or self._trip_now(
                    now,
                    f"{key}: {kind} position losing {-exp.unrealized:.2f} > "
                    f"{self.config.trade_loss_limit:.0%} of capital {self.capital:.2f}",
                )
        return event or self._check_session(now)

    def close_position(self, key: str, exit_price: float, now: float) -> BreakerEvent | None:
        """The position under ``key`` closed at ``exit_price``."""
        exp = self._exposures.get(key)
        if exp is None:
            return None
        return self.record_trade(key, exp.side * exp.qty * (exit_price - exp.entry_price), now)

    def record_trade(self, key: str, realized_pnl: float, now: float) -> BreakerEvent | None:
        """A closed trade's realized P&L (replaces any open exposure under ``key``)."""
        self._exposures.pop(key, None)
        self._realized += realized_pnl
        self._realized_by_key[key] = self._realized_by_key.get(key, 0.0) + realized_pnl
        if realized_pnl < 0:
            self.consecutive_losses += 1
        elif realized_pnl > 0:
            self.consecutive_losses = 0
        cfg = self.config
        if -realized_pnl > cfg.trade_loss_limit * self.capital:
            return self._trip_now(
                now, f"{key}: trade lost {-realized_pnl:.2f} > {cfg.trade_loss_limit:.0%} of capital {self.capital:.2f}"
            )
        if self.consecutive_losses >= cfg.max_consecutive_losses:
            return self._trip_now(now, f"{self.consecutive_losses} losses in a row")
        return self._check_session(now)

    def report(self) -> dict[str, Any]:
        """The session's figures against the limits, and realized / unrealized P&L per key,
        as plain data for the status document (money visible to the operator)."""
        cfg = self.config
        unrealized = {key: e.unrealized for key, e in self._exposures.items()}
        return {
            "pnl": self.session_pnl,
            "realized": self._realized,  # since the daemon started (the session may start later, at a reset)
            "unrealized": sum(unrealized.values()),
            "session_loss_limit": cfg.session_loss_limit * self.capital,
            "trade_loss_limit": cfg.trade_loss_limit * self.capital,
            "consecutive_losses": self.consecutive_losses,
            "max_consecutive_losses": cfg.max_consecutive_losses,
            "capital": self.capital,
            "unknown_orders": sum(1 for e in self._exposures.values() if e.unknown),
            "realized_by_key": dict(self._realized_by_key),
            "unrealized_by_key": unrealized,
        }

    def _check_session(self, now: float) -> BreakerEvent | None:
        pnl = self.session_pnl
        if -pnl > self.config.session_loss_limit * self.capital:
            return self._trip_now(
                now,
                f"session loss {-pnl:.2f} (realized + unrealized) > "
                f"{self.config.session_loss_limit:.0%} of capital {self.capital:.2f}",
            )
        return None

    def _on_reset(self) -> None:
        # A new session starts from here; open exposures keep being watched.
        self.consecutive_losses = 0
        self._session_base = self._realized + sum(e.unrealized for e in self._exposures.values())


# --------------------------------------------------------------------------- F13


class AbnormalPriceBreaker(KeyedBreaker):
    """F13: pause entries on a symbol for ``pause`` seconds after an abnormal price.

    Positions are kept (this breaker blocks entries only). Another abnormal
    detection during the pause extends it. ``poll(now, valid)`` resumes a
    symbol once its pause is over *and* ``valid(symbol)`` says the data checks
    out (feed LIVE, no abnormal flag); otherwise it stays paused.
    """

    name = "abnormal_price"

    def __init__(self, pause: float = 60.0) -> None:
        super().__init__()
        self.pause = pause
        self._until: dict[str, float] = {}

    def on_abnormal(self, symbol: str, now: float, reason: str) -> BreakerEvent | None:
        self._until[symbol] = now + self.pause
        return self._trip_key(symbol, now, reason)

    def paused_until(self, symbol: str) -> float | None:
        return self._until.get(symbol) if self.is_tripped(symbol) else None

    def poll(self, now: float, valid: Callable[[str], bool]) -> list[BreakerEvent]:
        events = []
        for symbol in self.tripped_keys():
            if now >= self._until.get(symbol, now) and valid(symbol):
                event = self._close_key(symbol, now, "pause over, data validated")
                if event is not None:
                    self._until.pop(symbol, None)
                    events.append(event)
        return events

    def _on_reset(self, key: str) -> None:
        self._until.pop(key, None)


# --------------------------------------------------------------------------- F24


@dataclass(frozen=True)
class MalfunctionConfig:
    window: int = 20  # trades
    win_rate_drop: float = 0.30  # percentage points under baseline, as a fraction
    loss_win_ratio: float = 2.0  # average loss / average win
    default_baseline_win_rate: float = 0.5


@dataclass(frozen=True)
class StrategyStats:
    trades: int
    win_rate: float
    avg_win: float
    avg_loss: float  # positive number
    sharpe: float | None  # mean / stddev of per-trade P&L; None if undefined


def trade_stats(pnls: Iterable[float]) -> StrategyStats:
    """Win rate, average win/loss and per-trade Sharpe of a list of trade P&Ls."""
    values = list(pnls)
    n = len(values)
    wins = [p for p in values if p > 0]
    losses = [-p for p in values if p < 0]
    mean = sum(values) / n if n else 0.0
    sharpe: float | None = None
    if n >= 2:
        std = math.sqrt(sum((p - mean) ** 2 for p in values) / (n - 1))
        if std > 0:
            sharpe = mean / std
        elif mean != 0:
            sharpe = math.copysign(math.inf, mean)
    return StrategyStats(
        trades=n,
        win_rate=len(wins) / n if n else 0.0,
        avg_win=sum(wins) / len(wins) if wins else 0.0,
        avg_loss=sum(losses) / len(losses) if losses else 0.0,
        sharpe=sharpe,
    )


class StrategyMalfunctionBreaker(KeyedBreaker):
    """F24: disable a strategy whose last 20 trades say it is broken.

    Judged only on a full window, so a new strategy's first bad trades do not
    trip it. An operator reset clears that strategy's window: it is judged
    again on 20 new trades.
    """

    name = "strategy_malfunction"

    def __init__(
        self,
        config: MalfunctionConfig | None = None,
        baseline_win_rate: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.config = config or MalfunctionConfig()
        self._baseline = dict(baseline_win_rate or {})
        self._trades: dict[str, deque[float]] = {}

    def set_baseline(self, strategy_id: str, win_rate: float) -> None:
        self._baseline[strategy_id] = win_rate

    def stats(self, strategy_id: str) -> StrategyStats:
        return trade_stats(self._trades.get(strategy_id, ()))

    def record_trade(self, strategy_id: str, pnl: float, now: float) -> BreakerEvent | None:
        cfg = self.config
        window = self._trades.setdefault(strategy_id, deque(maxlen=cfg.window))
        window.append(pnl)
        if len(window) < cfg.window or self.is_tripped(strategy_id):
            return None
        stats = trade_stats(window)
        baseline = self._baseline.get(strategy_id, cfg.default_baseline_win_rate)
        reasons = []
        if stats.win_rate < baseline - cfg.win_rate_drop:
            reasons.append(f"win rate {stats.win_rate:.0%} is > {cfg.win_rate_drop:.0%} under baseline {baseline:.0%}")
        if stats.avg_loss > 0 and stats.avg_loss > cfg.loss_win_ratio * stats.avg_win:
            reasons.append(f"avg loss {stats.avg_loss:.2f} > {cfg.loss_win_ratio:g}x avg win {stats.avg_win:.2f}")
        if stats.sharpe is not None and stats.sharpe < 0:
            reasons.append(f"Sharpe {stats.sharpe:.2f} < 0")
        if not reasons:
            return None
        return self._trip_key(strategy_id, now, f"over last {cfg.window} trades: " + "; ".join(reasons))

    def _on_reset(self, key: str) -> None:
        self._trades.pop(key, None)


# --------------------------------------------------------------------------- F22


@dataclass(frozen=True)
class ResourceConfig:
    cpu_limit: float = 95.0  # percent
    cpu_sustain: float = 30.0  # seconds above the limit before tripping
    memory_limit: float = 90.0  # percent
    latency_factor: float = 10.0  # p99 over this multiple of the baseline


class ResourceBreaker(Breaker):
    """F22: shed load (pause background work) under resource exhaustion.

    Fed by monitor:resources samples. Trips on CPU above the limit for a
    sustained period, memory above its limit, or latency p99 above
    ``latency_factor`` x ``latency_baseline``; clears by itself at the first
    sample where every pressure is gone. A metric left out of a sample keeps
    its last value.
    """

    name = "resources"

    def __init__(self, config: ResourceConfig | None = None, *, latency_baseline: float | None = None) -> None:
        super().__init__()
        self.config = config or ResourceConfig()
        self.latency_baseline = latency_baseline
        self._cpu_high_since: float | None = None
        self._cpu: float | None = None
        self._memory: float | None = None
        self._latency: float | None = None

    def observe(
        self,
        now: float,
        *,
        cpu_percent: float | None = None,
        memory_percent: float | None = None,
        latency_p99: float | None = None,
    ) -> BreakerEvent | None:
        cfg = self.config
        if cpu_percent is not None:
            self._cpu = cpu_percent
            if cpu_percent > cfg.cpu_limit:
                if self._cpu_high_since is None:
                    self._cpu_high_since = now
            else:
                self._cpu_high_since = None
        if memory_percent is not None:
            self._memory = memory_percent
        if latency_p99 is not None:
            self._latency = latency_p99

        pressures = []
        if self._cpu_high_since is not None and now - self._cpu_high_since >= cfg.cpu_sustain:
            pressures.append(f"CPU {self._cpu:.0f}% > {cfg.cpu_limit:.0f}% for {now - self._cpu_high_since:.0f}s")
        if self._memory is not None and self._memory > cfg.memory_limit:
            pressures.append(f"memory {self._memory:.0f}% > {cfg.memory_limit:.0f}%")
        if (
            self._latency is not None
            and self.latency_baseline is not None
            and self.latency_baseline > 0
            and self._latency > cfg.latency_factor * self.latency_baseline
        ):
            pressures.append(
                f"latency p99 {self._latency:.4f}s > {cfg.latency_factor:g}x baseline {self.latency_baseline:.4f}s"
            )
        if pressures:
            return self._trip_now(now, "; ".join(pressures))
        if self._trip.close("resources back under limits"):
            return BreakerEvent(self.name, None, BreakerState.CLOSED, "resources back under limits", now)
        return None


# --------------------------------------------------------------------------- board


class BreakerBoard:
    """The circuit-breaker actor's state: every breaker, one status list, one reset entry."""

    def __init__(self, breakers: Iterable[Breaker | KeyedBreaker]) -> None:
        self._breakers: dict[str, Breaker | KeyedBreaker] = {}
        for breaker in breakers:
            if breaker.name in self._breakers:
                raise ValueError(f"duplicate breaker name {breaker.name!r}")
            self._breakers[breaker.name] = breaker

    def __getitem__(self, name: str) -> Breaker | KeyedBreaker:
        return self._breakers[name]

    def __iter__(self) -> Iterator[Breaker | KeyedBreaker]:
        return iter(self._breakers.values())

    def to_status(self) -> list[dict[str, Any]]:
        """``[{name, state, reason, tripped_at}]`` for the status JSON, in board order."""
        return [s.as_dict() for b in self._breakers.values() for s in b.statuses()]

    def any_tripped(self) -> bool:
        return any(b.state is BreakerState.TRIPPED for b in self._breakers.values())

    def reset(self, name: str, operator_reason: str, now: float) -> list[BreakerEvent]:
        """``breaker reset NAME``: ``NAME`` is a breaker name or ``breaker:key``.

        Raises ``KeyError`` for an unknown breaker; an operator reason is required.
        """
        if not operator_reason.strip():
            raise ValueError("an operator reason is required to reset a breaker")
        base, _, key = name.partition(":")
        breaker = self._breakers[base]
        return breaker.reset(operator_reason, now, key or None)


__all__ = [
    "AbnormalPriceBreaker",
    "Breaker",
    "BreakerBoard",
    "BreakerEvent",
    "BreakerState",
    "BreakerStatus",
    "KeyedBreaker",
    "MalfunctionConfig",
    "RapidLossBreaker",
    "RapidLossConfig",
    "ResourceBreaker",
    "ResourceConfig",
    "StrategyMalfunctionBreaker",
    "StrategyStats",
    "trade_stats",
]
