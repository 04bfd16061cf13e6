"""The ``circuit-breaker`` actor: the pykka shell around ``actors.core.breakers.BreakerBoard``.

Inputs (all by ``tell``):

- ``OrderResult`` from the execution engine after every order (F23, F24):
  an entry FILLED opens an exposure at the fill price; an entry UNKNOWN opens
  one too (DESIGN §3: UNKNOWN counts as filled), at the fill price if any, else
  at the symbol's last mark, else at the first mark that follows; an exit
  (exit / stop_loss / flatten) FILLED closes it with realized P&L
  ``side * (exit avg_price - entry price) * filled qty``. An UNKNOWN *exit*
  keeps the exposure open (counting it as filled would hide a loss that may
  still be running). Entry prices are tracked here from entry fills, keyed by
  strategy id; after a restart of this actor an exit whose entry it never saw
  falls back to ``result.runtime.entry_price`` when the runtime carries one.
- ``Mark(symbol, price)``: marks open exposures (unrealized loss, F23).
- ``AbnormalPrice(symbol, reason)`` (F13) and ``PriceValidity(symbol, valid)``:
  the pause lifts after 60 s only for a symbol whose data validates.
- ``ResourceObservation`` from monitor:resources (F22).
- ``Escalated(source, reason, strategy_id)`` from the supervision tree: a strategy
  disabled after its restart intensity (F15/F16) closes that strategy's entries
  (``signals.strategy_disabled``); a subtree that escalated puts the node in
  REDUCED. Both show as the ``escalation`` breaker and clear on operator reset.

On every trip or reset it logs, and tells ``degradation`` the signal
(``signals.from_breaker``). A strategy malfunction (F24) also calls the
``disable_strategy(strategy_id, reason)`` callback (which must only tell, never
wait: it runs on this actor's thread). Signals that could not be delivered
(degradation restarting) are re-sent at the next poll, and every active signal
is re-sent when degradation asks (``ReportHealth``).

Operator: ``reset(name, reason)`` through the proxy. Reading: ``statuses()``
from any thread. Pass the same ``board`` in the ChildSpec kwargs to keep trips
across restarts of this actor; without it a restarted incarnation starts CLOSED,
but degradation still holds the trip until an operator reset (which always
re-sends the clearing signal, even for a breaker this incarnation never saw trip).

Never does: block on another actor, the network or the disk.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping


from actors.core import signals
from actors.core.breakers import (
    AbnormalPriceBreaker,
    BreakerBoard,
    BreakerEvent,
    BreakerState,
    KeyedBreaker,
    MalfunctionConfig,
    RapidLossBreaker,
    RapidLossConfig,
    ResourceBreaker,
    ResourceConfig,
    StrategyMalfunctionBreaker,
)
from actors import node_ids
from actors.core.signals import Effect, Signal
from actors.degradation import ReportHealth
from actors.node_ids import CIRCUIT_BREAKER, DEGRADATION
from actors.orders import Purpose
from actors.pipeline import OrderResult, Verdict
from actors.services import Services
from runtime.logging import log_event
from supervision import SupervisedActor

NODE_ID = CIRCUIT_BREAKER


@dataclass(frozen=True)
class Mark:
    """The current mark price of a symbol (from the state builder)."""

    symbol: str
    price: float


@dataclass(frozen=True)
class AbnormalPrice:
    """F13: a feed saw an abnormal move (> 20 % in < 1 min) or a depth collapse."""

    symbol: str
    reason: str


@dataclass(frozen=True)
class PriceValidity:
    """Whether a symbol's data validates (feed LIVE, no abnormal flag); default valid."""

    symbol: str
    valid: bool


@dataclass(frozen=True)
class ResourceObservation:
    """F22 sample from monitor:resources; ``at`` is the sampler's clock (None: this actor's)."""

    cpu_percent: float | None = None
    memory_percent: float | None = None
    latency_p99: float | None = None
    at: float | None = None


@dataclass(frozen=True)
class Escalated:
    """The supervision tree gave up on something: a strategy (``strategy_id``) or a subtree (``source``)."""

    source: str  # node id: strategy:s1, market, ...
    reason: str
    strategy_id: str | None = None


@dataclass(frozen=True)
class _Poll:
    """Periodic: abnormal-price pauses, re-delivery of undelivered signals."""


class EscalationBreaker(KeyedBreaker):
    """Supervisor escalations, one key each (``strategy:s1`` or a subtree id); operator reset only."""

    name = "escalation"

    def on_escalated(self, key: str, now: float, reason: str) -> BreakerEvent | None:
        return self._trip_key(key, now, reason)


@dataclass
class _Entry:
    symbol: str
    side: int  # +1 long, -1 short
    qty: float
    price: float | None  # None: UNKNOWN entry waiting for a mark
    client_order_id: str | None
    unknown: bool


class CircuitBreakerActor(SupervisedActor):
    """Node ``circuit-breaker``. See the module docstring for its messages."""

    def __init__(
        self,
        services: Services,
        disable_strategy: Callable[[str, str], None] | None = None,
        *,
        board: BreakerBoard | None = None,
        clock: Callable[[], float] = time.time,
        baseline_win_rates: Mapping[str, float] | None = None,
        latency_baseline: float | None = None,
        abnormal_pause: float = 60.0,
        poll_interval: float = 1.0,
    ) -> None:
        super().__init__()
        self.services = services
        self.disable_strategy = disable_strategy
        self.clock = clock
        self.poll_interval = poll_interval
        self.board = board if board is not None else default_board(
            services, baseline_win_rates=baseline_win_rates, latency_baseline=latency_baseline,
            abnormal_pause=abnormal_pause)
        self._entries: dict[str, _Entry] = {}
        self._marks: dict[str, float] = {}
        self._invalid: set[str] = set()  # symbols whose data does not validate
        self._active: dict[tuple[Any, ...], Signal] = {}  # last signal per cause, as sent to degradation
        self._undelivered: dict[tuple[Any, ...], Signal] = {}
        self._timer: int | None = None
        self.polls = 0
        self._statuses: list[dict[str, Any]] = self.board.to_status()
        self._session: dict[str, Any] = self._rapid.report()

    # --- lifecycle ----------------------------------------------------------------------

    def on_start(self) -> None:
        self.services.directory.register(NODE_ID, self.generation, self.actor_ref)
        for status in self.board.to_status():  # a shared board that survived a restart: re-assert its trips
            if status["state"] == BreakerState.TRIPPED.value:
                base, _, key = status["name"].partition(":")
                self._signal(self._signal_for(BreakerEvent(base, key or None, BreakerState.TRIPPED,
                                                           status["reason"] or "", status["tripped_at"] or 0.0)))
        self._arm_timer()

    def on_stop(self) -> None:
        self._disarm_timer()
        self.services.directory.unregister(NODE_ID, self.generation)

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self.on_stop()

    def on_receive(self, message: Any) -> Any:
        now = self.clock()
        if isinstance(message, OrderResult):
            self._on_result(message, now)
        elif isinstance(message, Mark):
            self._on_mark(message, now)
        elif isinstance(message, AbnormalPrice):
            self._handle(self._abnormal.on_abnormal(message.symbol, now, message.reason))
        elif isinstance(message, PriceValidity):
            (self._invalid.discard if message.valid else self._invalid.add)(message.symbol)
        elif isinstance(message, ResourceObservation):
            self._handle(self._resources.observe(message.at if message.at is not None else now,
                                                 cpu_percent=message.cpu_percent,
                                                 memory_percent=message.memory_percent,
                                                 latency_p99=message.latency_p99))
        elif isinstance(message, Escalated):
            self._on_escalated(message, now)
        elif isinstance(message, ReportHealth):
            for signal in list(self._active.values()):
                if signal.active:
                    self._signal(signal)
        elif isinstance(message, _Poll):
            self._poll(now)
        if isinstance(message, (OrderResult, Mark)):
            self._session = self._rapid.report()
        return None

    # --- operator API (call through the proxy) ---------------------------------------------

    def reset(self, name: str, reason: str) -> list[dict[str, Any]]:
        """``run.py breaker reset NAME --reason R``. ``NAME`` as in ``statuses()``; KeyError if unknown."""
        now = self.clock()
        events = self.board.reset(name, reason, now)  # KeyError: unknown breaker; ValueError: no reason
        log_event(NODE_ID, "operator_reset", details={"name": name, "reason": reason,
                                                      "reset": [e.name for e in events]},
                  action_taken="breaker closed; degradation told" if events else
                  "was not tripped here; clearing signal re-sent to degradation")
        if events:
            self._handle(events)
        else:  # clearing a cause degradation does not hold is a no-op there
            base, _, key = name.partition(":")
            self._handle(BreakerEvent(base, key or None, BreakerState.CLOSED, f"reset by operator: {reason}", now),
                         log=False)
        return self.statuses()

    # --- reads (any thread) -------------------------------------------------------------------

    def statuses(self) -> list[dict[str, Any]]:
        """``[{name, state, reason, tripped_at}]`` for the status JSON, as of the last change."""
        return copy.deepcopy(self._statuses)

    def session(self) -> dict[str, Any]:
        """The rapid-loss breaker's session P&L against its limits, as of the last order or mark."""
        return copy.deepcopy(self._session)

    def status_details(self) -> dict[str, Any]:
        """For the status tree node: the ``breakers`` rows, which are tripped, signals not yet delivered."""
        statuses = self._statuses
        return {"breakers": copy.deepcopy(statuses),
                "tripped": [s["name"] for s in statuses if s["state"] == BreakerState.TRIPPED.value],
                "undelivered": len(self._undelivered)}

    # --- breakers ---------------------------------------------------------------------------

    @property
    def _rapid(self) -> RapidLossBreaker:
        return self.board["rapid_loss"]  # type: ignore[return-value]

    @property
    def _abnormal(self) -> AbnormalPriceBreaker:
        return self.board["abnormal_price"]  # type: ignore[return-value]

    @property
    def _malfunction(self) -> StrategyMalfunctionBreaker:
        return self.board["strategy_malfunction"]  # type: ignore[return-value]

    @property
    def _resources(self) -> ResourceBreaker:
        return self.board["resources"]  # type: ignore[return-value]

    @property
    def _escalation(self) -> EscalationBreaker:
        return self.board["escalation"]  # type: ignore[return-value]

    def _on_result(self, result: OrderResult, now: float) -> None:
        intent = result.intent
        key = intent.strategy_id
        if intent.purpose is Purpose.ENTRY:
            if result.verdict is Verdict.FILLED:
                self._open(key, intent.symbol, result, now, unknown=False)
            elif result.verdict is Verdict.UNKNOWN:
                self._open(key, intent.symbol, result, now, unknown=True)
            elif result.verdict is Verdict.REFUSED:
                entry = self._entries.get(key)
                if entry is not None and entry.unknown and result.client_order_id == entry.client_order_id:
                    # A lookup proved the UNKNOWN entry never reached the venue.
                    del self._entries[key]
                    self._rapid.settle_unknown(key, filled=False)
            return
        if result.verdict is not Verdict.FILLED:
            return  # an UNKNOWN or refused exit: the exposure stays open and marked
        entry = self._entries.pop(key, None)
        entry_price = entry.price if entry is not None else getattr(result.runtime, "entry_price", None)
        side = entry.side if entry is not None else 1
        if not entry_price:
            self._rapid.settle_unknown(key, filled=False)
            log_event(NODE_ID, "exit_without_entry_price", level="WARNING",
                      details={"strategy": key, "client_order_id": result.client_order_id,
                               "purpose": intent.purpose.value},
                      action_taken="trade not counted: its entry was never seen by this incarnation")
            return
        qty = result.filled_qty or (entry.qty if entry is not None else 0.0)
        pnl = side * (result.avg_price - entry_price) * qty
        log_event(NODE_ID, "trade_closed", details={"strategy": key, "symbol": intent.symbol, "pnl": pnl,
                                                    "entry_price": entry_price, "exit_price": result.avg_price,
                                                    "qty": qty, "purpose": intent.purpose.value})
        self._handle(self._rapid.record_trade(key, pnl, now))
        event = self._malfunction.record_trade(key, pnl, now)
        self._handle(event)
        if event is not None and event.state is BreakerState.TRIPPED:
            self._disable(key, event.reason)

    def _open(self, key: str, symbol: str, result: OrderResult, now: float, *, unknown: bool) -> None:
        side = -1 if (result.side or "BUY").upper() == "SELL" else 1
        qty = result.filled_qty or result.intent.quantity
        price = result.avg_price or self._marks.get(symbol)
        self._entries[key] = _Entry(symbol, side, qty, price or None, result.client_order_id, unknown)
        if price:
            self._rapid.open_position(key, symbol, side, qty, price, now, unknown=unknown)

    def _on_mark(self, mark: Mark, now: float) -> None:
        self._marks[mark.symbol] = mark.price
        for key, entry in self._entries.items():
            if entry.symbol == mark.symbol and entry.price is None:
                entry.price = mark.price  # an UNKNOWN entry without a price counts from here
                self._rapid.open_position(key, entry.symbol, entry.side, entry.qty, mark.price, now,
                                          unknown=entry.unknown)
        self._handle(self._rapid.mark(mark.symbol, mark.price, now))

    def _on_escalated(self, message: Escalated, now: float) -> None:
        key = node_ids.strategy(message.strategy_id) if message.strategy_id else message.source
        self._handle(self._escalation.on_escalated(key, now, message.reason))

    def _poll(self, now: float) -> None:
        self.polls += 1
        self._handle(self._abnormal.poll(now, lambda symbol: symbol not in self._invalid))
        for signal in list(self._undelivered.values()):
            self._signal(signal)
        self._arm_timer()

    def _disable(self, strategy_id: str, reason: str) -> None:
        if self.disable_strategy is None:
            return
        try:
            self.disable_strategy(strategy_id, reason)
        except Exception as exc:  # noqa: BLE001 - entries stay closed by the signal regardless
            log_event(NODE_ID, "disable_strategy_failed", level="ERROR", exc=exc,
                      details={"strategy": strategy_id, "error": repr(exc)},
                      action_taken="entries of the strategy stay closed by the gate")

    # --- events -> degradation ----------------------------------------------------------------

    def _handle(self, events: BreakerEvent | list[BreakerEvent] | None, log: bool = True) -> None:
        if events is None:
            return
        for event in events if isinstance(events, list) else [events]:
            if log:
                tripped = event.state is BreakerState.TRIPPED
                log_event(NODE_ID, "breaker_tripped" if tripped else "breaker_closed",
                          level="ERROR" if tripped else "INFO",
                          details={"name": event.name, "reason": event.reason, "at": event.at},
                          action_taken=_action(event))
            self._signal(self._signal_for(event))
        self._statuses = self.board.to_status()

    def _signal_for(self, event: BreakerEvent) -> Signal:
        if event.breaker != EscalationBreaker.name:
            return signals.from_breaker(event)
        active = event.state is BreakerState.TRIPPED
        key = event.key or ""
        if key.startswith(node_ids.STRATEGY_PREFIX):
            return signals.strategy_disabled(key.partition(":")[2], active, f"{event.name}: {event.reason}")
        return Signal(NODE_ID, f"escalation:{key or 'node'}", active, Effect.REDUCED,
                      reason=f"{event.name}: {event.reason}", clean_period=0.0)

    def _signal(self, signal: Signal) -> None:
        self._active[signal.identity] = signal
        if self.services.directory.tell(DEGRADATION, signal):
            self._undelivered.pop(signal.identity, None)
        else:
            if signal.identity not in self._undelivered:
                log_event(NODE_ID, "signal_undelivered", level="ERROR",
                          details={"cause": signal.cause, "active": signal.active, "reason": signal.reason},
                          action_taken=f"{DEGRADATION} is down; re-sent every {self.poll_interval:g}s")
            self._undelivered[signal.identity] = signal

    # --- timer ----------------------------------------------------------------------------------

    def _arm_timer(self) -> None:
        self._timer = self.services.timers.tell_after(self.poll_interval, self.actor_ref, _Poll())

    def _disarm_timer(self) -> None:
        if self._timer is not None:
            self.services.timers.cancel(self._timer)
            self._timer = None


def default_board(
    services: Services,
    *,
    baseline_win_rates: Mapping[str, float] | None = None,
    latency_baseline: float | None = None,
    abnormal_pause: float = 60.0,
) -> BreakerBoard:
    """The node's breakers: rapid loss from ``[risk]``, abnormal price, malfunction, resources, escalation."""
    risk = services.config.risk
    rapid = RapidLossBreaker(risk.capital, RapidLossConfig(
        trade_loss_limit=risk.max_trade_loss_pct / 100.0,
        session_loss_limit=risk.max_session_loss_pct / 100.0,
        max_consecutive_losses=risk.max_consecutive_losses,
    ))
    return BreakerBoard([
        rapid,
        AbnormalPriceBreaker(abnormal_pause),
        StrategyMalfunctionBreaker(MalfunctionConfig(), baseline_win_rates),
        ResourceBreaker(ResourceConfig(), latency_baseline=latency_baseline),
        EscalationBreaker(),
    ])


def _action(event: BreakerEvent) -> str:
    if event.state is BreakerState.CLOSED:
        return f"{event.name} closed; degradation told to lift its effect"
    return {
        "rapid_loss": "halt all entries, flatten (EMERGENCY); operator reset only",
        "abnormal_price": f"entries paused on {event.key}; positions kept",
        "strategy_malfunction": f"strategy {event.key} disabled; operator reset only",
        "resources": "REDUCED: background work paused, load shed",
        "escalation": f"{event.key}: entries closed / REDUCED until operator reset",
    }.get(event.breaker, "entries closed node-wide")


__all__ = [
    "AbnormalPrice",
    "CircuitBreakerActor",
    "Escalated",
    "EscalationBreaker",
    "Mark",
    "NODE_ID",
    "PriceValidity",
    "ResourceObservation",
    "default_board",
]
