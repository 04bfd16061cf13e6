"""Strategies: the user-facing `Strategy` base, its `Context`, and the actor that hosts one.

Each strategy runs in its own `StrategyActor` under the dynamic `strategies` supervisor:
an exception, hang or CPU loop in user code is that actor's problem only. Its orders go
to the execution engine through the durable Redis queue, stamped with the actor's
generation, so a fenced incarnation can never place an order. Stop-losses never depend
on this actor: once an entry fills, the stop lives in the stop book.

User code subclasses `Strategy` and overrides any of: on_start(ctx), on_tick(ctx, tick),
on_timer(ctx, name), on_fill(ctx, fill), on_stop(ctx).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Mapping

from actors import node_ids
from actors.core import signals
from actors.messages import Fill, OrderUpdate
from actors.orders import OrderIntent, Purpose
from actors.runtime_preload import RuntimePreload
from runtime.logging import log_event
from runtime.store.errors import CorruptState, StoreUnavailable
from runtime.store.runtime_state import Position, Runtime, Status
from supervision import SupervisedActor

if TYPE_CHECKING:
    from actors.services import Services
    from runtime.config import StrategyConfig


@dataclass(frozen=True)
class Tick:
    symbol: str
    price: float
    ts: float  # event time, epoch seconds


@dataclass(frozen=True)
class TimerFired:
    name: str
    token: int


@dataclass(frozen=True)
class _UserStart:
    """First message of every incarnation: build the user's Strategy and run its on_start."""


class Strategy:
    """Base class for strategy code. Hooks run on the strategy's own actor thread."""

    def on_start(self, ctx: Context) -> None:
        pass

    def on_tick(self, ctx: Context, tick: Tick) -> None:
        pass

    def on_timer(self, ctx: Context, name: str) -> None:
        pass

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        pass

    def on_stop(self, ctx: Context) -> None:
        pass

    @classmethod
    def wants_ticks(cls) -> bool:
        return cls.on_tick is not Strategy.on_tick


class StrategyRefused(RuntimeError):
    """An order could not even be queued (store down, strategy not active)."""


class Context:
    """What a strategy can see and do. Only valid on its actor's thread."""

    def __init__(self, actor: StrategyActor) -> None:
        self._actor = actor

    @property
    def strategy_id(self) -> str:
        return self._actor.config.id

    @property
    def symbol(self) -> str:
        return self._actor.config.symbol

    @property
    def params(self) -> Mapping[str, Any]:
        return self._actor.config.params

    @property
    def position(self) -> str:
        return self._actor.runtime.position.value

    @property
    def runtime(self) -> Runtime:
        return self._actor.runtime

    def buy(self, qty: float, stop_loss: float | None = None, reason: str = "") -> None:
        self._actor.submit(Purpose.ENTRY, qty, stop_loss, reason or "strategy buy")

    def sell(self, qty: float = 0.0, reason: str = "") -> None:
        """Close the position (long-only: SELL only when bought). qty 0 = all of it."""
        self._actor.submit(Purpose.EXIT, qty, None, reason or "strategy sell")

    def schedule(self, name: str, at: datetime | float) -> None:
        self._actor.schedule(name, at)

    def cancel(self, name: str) -> None:
        self._actor.cancel_timer(name)

    def cancel_timers(self) -> None:
        self._actor.cancel_timers()


class StrategyActor(SupervisedActor):
    """Hosts one strategy. Node id `strategy:<id>`. `make_strategy` builds the user object."""

    def __init__(self, config: StrategyConfig, make_strategy: Callable[[], Strategy], services: Services,
                 preload: RuntimePreload | None = None) -> None:
        super().__init__()
        self.config = config
        self._preload = preload
        self._make_strategy = make_strategy
        self.strategy: Strategy | None = None  # built by _UserStart, fresh per incarnation
        self.services = services
        self.node_id = node_ids.strategy(config.id)
        self.runtime = Runtime()
        self.ctx = Context(self)
        self._timers: dict[str, int] = {}
        self._aborted: str | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def on_start(self) -> None:
        self.services.directory.register(self.node_id, self.generation, self.actor_ref)
        try:
            self.runtime = self._load_runtime() or Runtime()
        except CorruptState as exc:
            # F14: SAFETY_ABORT this strategy only; a restart would read the same bytes.
            self._abort(f"SAFETY_ABORT: {exc}")
            return
        except StoreUnavailable:
            cached = self.services.runtime_cache.get(self.config.id)
            self.runtime = cached or Runtime()
        if self.runtime.status in (Status.FAILED, Status.DISABLED, Status.PAUSED):
            if self.runtime.status is Status.FAILED:
                self._tell_failed(self.runtime.reason)
            return  # an operator must act; its stop (if any) stays armed in the stop book
        # User code never runs inside on_start: its __init__/on_start run in the first message, so an
        # exception there is a crash (restart with backoff, F15) and a block is a hang (fenced, F16) of
        # this strategy only -- never a failed start that brings the strategies supervisor, and with it
        # the daemon's boot, down, nor a 10 s stall of the supervisor that restarts every strategy.
        self.actor_ref.tell(_UserStart())

    def _load_runtime(self) -> Runtime | None:
        """This strategy's record: from the starter's bulk read when it made one for this start
        (one round trip per batch, not per strategy), else its own read (a restart)."""
        if self._preload is not None:
            found, loaded = self._preload.take(self.config.id)
            if found:
                if isinstance(loaded, CorruptState):
                    raise loaded
                return loaded
        return self.services.store.load_runtime(self.config.id)

    def on_stop(self) -> None:
        self.cancel_timers()
        self.services.ticks.unsubscribe(self.config.symbol, self.node_id)
        self.services.engine_cancel(self.config.id)  # F25: stop retries of an order in flight
        try:
            if self._aborted is None and self.strategy is not None:
                self.strategy.on_stop(self.ctx)
        finally:
            self.services.directory.unregister(self.node_id, self.generation)

    def on_receive(self, message: Any) -> Any:
        if self._aborted is not None:
            return None
        if isinstance(message, _UserStart):
            self.strategy = self._make_strategy()
            if self.strategy.wants_ticks():
                self.services.ticks.subscribe(self.config.symbol, self.node_id)
            self.strategy.on_start(self.ctx)
        elif isinstance(message, Tick) and self.strategy is not None:
            self.strategy.on_tick(self.ctx, message)
        elif isinstance(message, TimerFired) and self.strategy is not None:
            if self._timers.get(message.name) == message.token:
                del self._timers[message.name]
                self.strategy.on_timer(self.ctx, message.name)
        elif isinstance(message, OrderUpdate):
            if message.runtime is not None:
                if message.runtime.status is Status.FAILED and self.runtime.status is not Status.FAILED:
                    self._tell_failed(message.runtime.reason)
                self.runtime = message.runtime
            elif message.verdict == "SAFETY_ABORT":
                # F14: the engine could not load the record, so it could not mark it failed: this
                # incarnation stops here, shown failed with the reason, until an operator acts.
                self._abort(message.reason)
                return None
            if message.fill is not None and self.strategy is not None:  # None: user code not started yet
                self.strategy.on_fill(self.ctx, message.fill)
        return None

    def status_details(self) -> dict[str, Any]:
        """Read from the status server's thread: plain attribute reads only."""
        details: dict[str, Any] = {
            "symbol": self.config.symbol,
            "account": self.config.account,
            "position": self.runtime.position.value,
            "status": "failed" if self._aborted else self.runtime.status.value,
            "timers": sorted(self._timers),
        }
        if self._aborted or self.runtime.reason:
            details["reason"] = self._aborted or self.runtime.reason
        return details

    def _tell_failed(self, reason: str) -> None:
        """Visibility (F31): a failed strategy keeps the node at least REDUCED, logged at ERROR."""
        self.services.directory.tell(node_ids.DEGRADATION, signals.strategy_failed(self.config.id, True, reason))
        log_event(self.node_id, "strategy_failed", details={"reason": reason},
                  action_taken="node at least REDUCED until an operator repairs and enables it", level="ERROR")

    def _abort(self, reason: str) -> None:
        self._aborted = reason
        self._tell_failed(reason)
        self.cancel_timers()
        self.services.ticks.unsubscribe(self.config.symbol, self.node_id)
        log_event(self.node_id, "safety_abort", details={"reason": reason},
                  action_taken="strategy halted; operator must repair runtime", level="ERROR")

    # --- what the context does --------------------------------------------------------

    def submit(self, purpose: Purpose, qty: float, stop_loss: float | None, reason: str) -> None:
        intent = OrderIntent(
            strategy_id=self.config.id,
            account=self.config.account,
            symbol=self.config.symbol,
            purpose=purpose,
            quantity=qty,
            stop_loss=stop_loss,
            generation=self.generation,
            reason=reason,
        )
        self.services.submit(intent)

    def schedule(self, name: str, at: datetime | float) -> None:
        when = at.timestamp() if isinstance(at, datetime) else float(at)
        self.cancel_timer(name)
        ref = self.actor_ref
        token_box: list[int] = []

        def fire() -> None:
            if ref.is_alive():
                ref.tell(TimerFired(name, token_box[0]))

        token = self.services.timers.schedule(when, fire)
        token_box.append(token)
        self._timers[name] = token

    def cancel_timer(self, name: str) -> None:
        token = self._timers.pop(name, None)
        if token is not None:
            self.services.timers.cancel(token)

    def cancel_timers(self) -> None:
        for token in self._timers.values():
            self.services.timers.cancel(token)
        self._timers.clear()


class ScheduledStrategy(Strategy):
    """The built-in `scheduled` kind: BUY at buy_at, SELL at sell_at, stop-loss overrides.

    State machine: none → bought → sold | exited_by_sl | failed. One round trip: SELL only
    when bought; after sold / exited_by_sl it is done and its timers are cancelled. After a
    restart, a time already passed fires at once (if the position still calls for it).
    Each incarnation sends at most one entry: one that never filled (aborted, paused, cancelled,
    never reached the venue) is tried again only when the strategy is started again — an
    operator's enable/start after F2/F3/F25, or a restart.
    """

    def __init__(self, config: StrategyConfig) -> None:
        self.config = config
        self.entries_at_start = 0

    def on_start(self, ctx: Context) -> None:
        runtime = ctx.runtime
        self.entries_at_start = runtime.entry_seq
        if runtime.position is Position.NONE and self.config.buy_at is not None:
            ctx.schedule("buy", self.config.buy_at)  # an entry in doubt from before: wait for it to settle
        if runtime.position is Position.BOUGHT and self.config.sell_at is not None:
            ctx.schedule("sell", self.config.sell_at)

    BUY_RETRY_S = 1.0

    def _may_enter(self, runtime: Runtime) -> bool:
        return (runtime.position is Position.NONE and runtime.status is Status.ACTIVE and not runtime.pending_order
                and runtime.entry_seq == self.entries_at_start)

    def on_timer(self, ctx: Context, name: str) -> None:
        if name == "buy" and self._may_enter(ctx.runtime):
            now = time.time()
            if self.config.sell_at is not None and now >= self.config.sell_at.timestamp():
                return  # the window closed before the gate ever opened: no late entry
            ctx.buy(float(self.config.quantity or 0), stop_loss=self.config.stop_loss, reason="scheduled buy_at")
            # A closed gate refuses the entry; ask again each second until filled or sell_at.
            # Repeats are harmless: the engine sends a BUY only from a flat position with nothing pending.
            ctx.schedule("buy", now + self.BUY_RETRY_S)
        elif name == "buy" and ctx.runtime.pending_order and ctx.runtime.position is Position.NONE:
            ctx.schedule("buy", time.time() + self.BUY_RETRY_S)  # in doubt: settled first, then decided
        elif name == "sell" and ctx.runtime.position is Position.BOUGHT:
            ctx.sell(reason="scheduled sell_at")

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        if fill.purpose == Purpose.ENTRY.value:
            ctx.cancel("buy")
            if self.config.sell_at is not None:
                ctx.schedule("sell", self.config.sell_at)
        elif fill.purpose != Purpose.ENTRY.value:
            ctx.cancel_timers()  # exited (sold or stop-loss): the schedule is over
