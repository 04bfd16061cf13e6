"""The degradation state machine and the trading ``gate``: may we trade, where, how much?

This is the one place that answers "may we trade?" (DESIGN §1). It holds the
active *causes* raised by ``Signal``s (see ``signals``) and derives from them:

- the **mode**: NORMAL -> REDUCED -> EMERGENCY -> HARD_SHUTDOWN (DESIGN §5).
  REDUCED: entries only on the configured liquid symbols, at half size.
  EMERGENCY: no entries, flatten requested, monitor only.
  HARD_SHUTDOWN: flatten, then the final flush (``begin_flush``), exit code 3;
  terminal -- only a manual restart leaves it.
- the **trading state** shown beside it: ACTIVE (entries open node-wide),
  REDUCING (no entries, positions being flattened), HALTED (no entries).
- the **gate**: ``gate.check(strategy_id, symbol, kind)`` for every order.
  Entries are closed by any blocking cause in the node, symbol, strategy or
  account scope. Risk-reducing exits are open in every mode except during
  HARD_SHUTDOWN's final flush.

Hysteresis: a worse state applies at once; a cause that clears keeps holding
its effect for its clean period (``DegradationConfig.clean_period`` for mode
causes, ``block_clean_period`` for entry blocks, or the signal's own
``clean_period``) and must not come back meanwhile. Expiry happens in
``tick(now)``, which the actor calls from a timer.

Every change of mode, trading state or per-scope entry gate comes back as a
``Transition`` for the actor to log. ``gate`` is an immutable snapshot rebuilt
on every change, so the actor may hand it to other threads without a lock.

Pure: explicit ``now``, no threads, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from actors.core.signals import Effect, Scope, Signal


class Mode(str, Enum):
    NORMAL = "NORMAL"
    REDUCED = "REDUCED"
    EMERGENCY = "EMERGENCY"
    HARD_SHUTDOWN = "HARD_SHUTDOWN"

    @property
    def rank(self) -> int:
        return _MODE_RANK[self]


_MODE_RANK = {Mode.NORMAL: 0, Mode.REDUCED: 1, Mode.EMERGENCY: 2, Mode.HARD_SHUTDOWN: 3}
_EFFECT_MODE = {
    Effect.REDUCED: Mode.REDUCED,
    Effect.EMERGENCY: Mode.EMERGENCY,
    Effect.HARD_SHUTDOWN: Mode.HARD_SHUTDOWN,
}


class TradingState(str, Enum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class OrderKind(str, Enum):
    ENTRY = "ENTRY"  # opens or adds risk
    EXIT = "EXIT"  # reduces risk: stop-loss, flatten, close


HARD_SHUTDOWN_EXIT_CODE = 3


@dataclass(frozen=True)
class DegradationConfig:
    liquid_symbols: frozenset[str] = frozenset()
    symbols: frozenset[str] = frozenset()  # every symbol the node trades or watches (per-symbol gates)
    reduced_size_factor: float = 0.5
    clean_period: float = 60.0  # hysteresis for mode causes (REDUCED/EMERGENCY)
    block_clean_period: float = 0.0  # hysteresis for entry blocks (their sources validate recovery)


@dataclass(frozen=True)
class GateDecision:
    open: bool
    reasons: list[str]
    size_factor: float  # multiply the intended quantity; 0.0 when closed


@dataclass(frozen=True)
class Transition:
    """One change for the actor to log. ``from_`` is ``from`` in ``as_dict``."""

    from_: str
    to: str
    cause: str
    at: float
    kind: str = "mode"  # mode | trading | gate
    scope: str = "node"  # node, symbol:BTCUSDT, strategy:s1, account:alice

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "scope": self.scope, "from": self.from_, "to": self.to,
                "cause": self.cause, "at": self.at}


class Gate:
    """An immutable view of the entry/exit policy at one moment.

    ``check`` is on the order path: a few dict lookups, no allocation when
    open beyond the decision itself.
    """

    __slots__ = ("mode", "flushing", "_liquid", "_size", "_node", "_scoped", "_reduced_by")

    def __init__(
        self,
        mode: Mode,
        flushing: bool,
        liquid_symbols: frozenset[str],
        reduced_size_factor: float,
        node_reasons: tuple[str, ...],
        scoped_reasons: Mapping[str, tuple[str, ...]],
        reduced_by: tuple[str, ...] = (),
    ) -> None:
        self.mode = mode
        self.flushing = flushing
        self._liquid = liquid_symbols
        self._size = reduced_size_factor
        self._node = node_reasons
        self._scoped = MappingProxyType(dict(scoped_reasons))
        self._reduced_by = reduced_by  # why the mode is REDUCED: shown, but does not close entries

    @property
    def open(self) -> bool:
        """Entries open node-wide (symbols/strategies may still be closed individually)."""
        return not self._node

    @property
    def reasons(self) -> list[str]:
        """Every active reason: node-wide first, then why REDUCED, then scoped ones prefixed with their scope."""
        out = list(self._node)
        out.extend(f"REDUCED: {r}" for r in self._reduced_by)
        for label in sorted(self._scoped):
            out.extend(f"{label}: {r}" for r in self._scoped[label])
        return out

    def symbol_reasons(self, symbol: str) -> list[str]:
        """Why entries on `symbol` are closed for every strategy (empty = open for some):
        node-wide reasons, reasons scoped to the symbol, and REDUCED's liquid-set rule."""
        reasons = list(self._node)
        label = f"symbol:{symbol}"
        if label in self._scoped:
            reasons.extend(f"{label}: {r}" for r in self._scoped[label])
        if self.mode is Mode.REDUCED and symbol not in self._liquid:
            why = f" ({'; '.join(self._reduced_by)})" if self._reduced_by else ""
            reasons.append(f"REDUCED{why}: {symbol} is not in the liquid set")
        return reasons

    def symbol_gates(self, symbols: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``{symbol: {open, reasons}}`` for the status document."""
        gates = {}
        for symbol in sorted(symbols):
            reasons = self.symbol_reasons(symbol)
            gates[symbol] = {"open": not reasons, "reasons": reasons}
        return gates

    def check(self, strategy_id: str, symbol: str, kind: OrderKind | str, account: str | None = None) -> GateDecision:
        """May this strategy send this kind of order on this symbol now?"""
        if OrderKind(kind) is OrderKind.EXIT:
            if self.flushing:
                return GateDecision(False, ["HARD_SHUTDOWN: final flush, no more orders"], 0.0)
            return GateDecision(True, [], 1.0)
        reasons = self.symbol_reasons(symbol)
        for label in (f"strategy:{strategy_id}", f"account:{account}" if account else None):
            if label is not None and label in self._scoped:
                reasons.extend(f"{label}: {r}" for r in self._scoped[label])
        if reasons:
            return GateDecision(False, reasons, 0.0)
        return GateDecision(True, [], self._size if self.mode is Mode.REDUCED else 1.0)


@dataclass
class _Cause:
    signal: Signal  # the raising signal (latest reason)
    raised_at: float
    cleared_at: float | None = None
    hold: float = 0.0

    def holds_until(self) -> float | None:
        return None if self.cleared_at is None else self.cleared_at + self.hold

    def describe(self) -> str:
        text = f"{self.signal.source}: {self.signal.reason or self.signal.cause}"
        until = self.holds_until()
        return text if until is None else f"{text} (cleared, holding until {until:.3f})"


class Degradation:
    """Modes, trading state and gate from the signals every actor sends.

    ``apply(signal, now)`` and ``tick(now)`` return the transitions they
    caused; ``begin_flush(now)`` moves HARD_SHUTDOWN from flatten to flush.
    """

    def __init__(self, config: DegradationConfig | None = None) -> None:
        self.config = config or DegradationConfig()
        self._causes: dict[tuple[str, str, Scope, str], _Cause] = {}
        self._hard_shutdown = False
        self._flushing = False
        self._mode = Mode.NORMAL
        self._trading = TradingState.ACTIVE
        self._closed_scopes: dict[str, tuple[str, ...]] = {}
        self._flatten: tuple[str, ...] = ()
        self._gate = self._build_gate()

    # -- reads ----------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def trading(self) -> TradingState:
        return self._trading

    @property
    def gate(self) -> Gate:
        return self._gate

    @property
    def flatten_requested(self) -> tuple[str, ...]:
        """Scopes whose positions must be flattened: ``node`` and/or ``symbol:X`` ..."""
        return self._flatten

    @property
    def exit_code(self) -> int | None:
        """3 once in HARD_SHUTDOWN (DESIGN §7), else None."""
        return HARD_SHUTDOWN_EXIT_CODE if self._hard_shutdown else None

    def status(self) -> dict[str, Any]:
        """The ``mode``, ``trading`` and ``gate`` parts of the status JSON (DESIGN §7)."""
        return {
            "mode": self._mode.value,
            "trading": self._trading.value,
            "gate": self._gate_status(),
            "flatten": list(self._flatten),
        }

    def _gate_status(self) -> dict[str, Any]:
        """``{open, reasons, symbols}``: with symbols configured, ``open`` means entries may go
        out for at least one of them; ``symbols`` says which are closed and why."""
        gate = self._gate
        symbols = gate.symbol_gates(self.config.symbols)
        is_open = any(g["open"] for g in symbols.values()) if symbols else gate.open
        return {"open": is_open, "reasons": gate.reasons, "symbols": symbols}

    # -- inputs -----------------------------------------------------------------

    def apply(self, signal: Signal, now: float) -> list[Transition]:
        """Raise or clear one cause. Raising is immediate; clearing starts its clean period."""
        ident = signal.identity
        cause = self._causes.get(ident)
        if signal.active:
            if signal.effect is Effect.HARD_SHUTDOWN:
                self._hard_shutdown = True
            if cause is None:
                self._causes[ident] = _Cause(signal, now)
            else:
                cause.signal, cause.cleared_at = signal, None
            text = f"{signal.source}: {signal.reason or signal.cause}"
        else:
            if cause is None or cause.cleared_at is not None:
                return self._expire(now)
            cause.cleared_at = now
            cause.hold = self._hold_for(cause.signal, signal)
            text = f"{signal.source}: cleared {signal.cause}" + (f" ({signal.reason})" if signal.reason else "")
        return self._expire(now, text)

    def tick(self, now: float) -> list[Transition]:
        """Expire causes whose clean period has passed (the hysteresis clock)."""
        return self._expire(now)

    def begin_flush(self, now: float) -> list[Transition]:
        """HARD_SHUTDOWN's flatten is done (or timed out): the final flush closes exits too."""
        if not self._hard_shutdown or self._flushing:
            return []
        self._flushing = True
        return self._recompute(now, "HARD_SHUTDOWN: final flush")

    # -- internals --------------------------------------------------------------

    def _hold_for(self, raised: Signal, cleared: Signal) -> float:
        if cleared.clean_period is not None:
            return cleared.clean_period
        if raised.clean_period is not None:
            return raised.clean_period
        return self.config.clean_period if raised.effect.is_mode else self.config.block_clean_period

    def _expire(self, now: float, cause_text: str | None = None) -> list[Transition]:
        expired = [
            ident for ident, c in self._causes.items()
            if c.cleared_at is not None and now >= c.cleared_at + c.hold
        ]
        for ident in expired:
            del self._causes[ident]
        if cause_text is None:
            if not expired:
                return []
            cause_text = "clean period over: " + ", ".join(f"{s}/{c}" for s, c, _, _ in expired)
        return self._recompute(now, cause_text)

    def _recompute(self, now: float, cause_text: str) -> list[Transition]:
        old_mode, old_trading, old_closed = self._mode, self._trading, self._closed_scopes

        mode = Mode.NORMAL
        node_reasons: list[str] = []
        reduced_by: list[str] = []
        scoped: dict[str, list[str]] = {}
        flatten: list[str] = []
        for c in self._causes.values():
            sig = c.signal
            if sig.effect.is_mode:
                m = _EFFECT_MODE[sig.effect]
                if m.rank > mode.rank:
                    mode = m
                if m.rank >= Mode.EMERGENCY.rank:
                    node_reasons.append(f"{m.value}: {c.describe()}")
                else:
                    reduced_by.append(c.describe())
                continue
            if sig.scope is Scope.NODE:
                node_reasons.append(c.describe())
            else:
                scoped.setdefault(sig.scope_label, []).append(c.describe())
            if sig.effect is Effect.FLATTEN and sig.scope_label not in flatten:
                flatten.append(sig.scope_label)
        if self._hard_shutdown:
            mode = Mode.HARD_SHUTDOWN
            if not any(r.startswith("HARD_SHUTDOWN") for r in node_reasons):
                node_reasons.append("HARD_SHUTDOWN: manual restart required")
        if mode.rank >= Mode.EMERGENCY.rank and "node" not in flatten:
            flatten.insert(0, "node")
        if self._flushing:
            flatten = []

        if mode is Mode.HARD_SHUTDOWN:
            trading = TradingState.HALTED if self._flushing else TradingState.REDUCING
        elif "node" in flatten:
            trading = TradingState.REDUCING
        elif node_reasons:
            trading = TradingState.HALTED
        else:
            trading = TradingState.ACTIVE

        self._mode, self._trading = mode, trading
        self._closed_scopes = {k: tuple(v) for k, v in scoped.items()}
        self._flatten = tuple(flatten)
        self._gate = self._build_gate(tuple(node_reasons), tuple(reduced_by) if mode is Mode.REDUCED else ())

        transitions = []
        if mode is not old_mode:
            transitions.append(Transition(old_mode.value, mode.value, cause_text, now, "mode"))
        if trading is not old_trading:
            transitions.append(Transition(old_trading.value, trading.value, cause_text, now, "trading"))
        for label in sorted(set(old_closed) | set(self._closed_scopes)):
            was, now_closed = label in old_closed, label in self._closed_scopes
            if was != now_closed:
                transitions.append(Transition("CLOSED" if was else "OPEN", "CLOSED" if now_closed else "OPEN",
                                              cause_text, now, "gate", label))
        return transitions

    def _build_gate(self, node_reasons: tuple[str, ...] = (), reduced_by: tuple[str, ...] = ()) -> Gate:
        return Gate(self._mode, self._flushing, self.config.liquid_symbols, self.config.reduced_size_factor,
                    node_reasons, self._closed_scopes, reduced_by)

    def causes(self) -> list[dict[str, Any]]:
        """Active and holding causes, for the status tree and debugging."""
        return [
            {"source": c.signal.source, "cause": c.signal.cause, "scope": c.signal.scope_label,
             "effect": c.signal.effect.value, "reason": c.signal.reason, "raised_at": c.raised_at,
             "holds_until": c.holds_until()}
            for c in self._causes.values()
        ]


__all__ = [
    "Degradation",
    "DegradationConfig",
    "Gate",
    "GateDecision",
    "HARD_SHUTDOWN_EXIT_CODE",
    "Mode",
    "OrderKind",
    "Transition",
    "TradingState",
]
