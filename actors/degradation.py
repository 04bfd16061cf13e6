"""The ``degradation`` actor: the pykka shell around ``actors.core.degradation.Degradation``.

It is the one writer of the trading gate (DESIGN §1 "the one place that says may we
trade?"). Everything else only *tells* it a ``Signal`` (feeds, monitors, breakers,
the operator, the supervisor); it applies the signal at ``clock()``, logs every
``Transition`` with its cause, and publishes the new immutable ``Gate`` on
``services.gate`` for the order path to read without a message hop.

What it does beyond the core:

- **Flatten.** When the core asks for a scope to be flattened (EMERGENCY,
  HARD_SHUTDOWN, a breaker, the F10 ``stale_exit`` policy) it tells
  ``execution-engine`` a ``Flatten`` for that scope, and tells it again every
  ``flatten_repeat`` seconds while the scope is still requested (or at the next
  tick when the engine was down). Exit client order ids are deterministic, so a
  repeat can never become a second exit at the venue.
- **HARD_SHUTDOWN.** Flatten everything; once a ``FlattenDone`` arrives (or
  ``flatten_timeout`` has passed) the core's final flush closes exits too, and
  ``on_hard_shutdown(3)`` is called -- once, on a thread of its own, because the
  daemon's callback stops the tree, this actor included.
- **Hysteresis.** A timer on ``services.timers`` tells this actor a tick every
  ``tick_interval`` seconds; the tick runs ``Degradation.tick(now)``.
- **Restart = rebuild a safe state.** Documented choice: every incarnation
  starts with a node-wide ``degradation/revalidating`` block (entries closed,
  exits open) and keeps it until every source in ``revalidate`` (default
  ``monitor:store``) has reported since this start. It also replays the signals
  its predecessors applied (``SignalMemory``, shared through the ChildSpec
  kwargs) with their original times, so a feed that was STALE, a tripped breaker
  or a HARD_SHUTDOWN survives a crash of this actor, and it asks the reporting
  nodes (monitors, feeds, state-builder, circuit-breaker, engine) to re-send
  their current state (``ReportHealth``). A signal that fails to replay is
  dropped and logged; the revalidating block still holds. While no incarnation
  runs (crash, restart), ``on_failure``/``on_stop`` have left a closed gate on
  the board.

Threading: ``snapshot()``/``status()`` may be called from any thread (a reference
read of a dict rebuilt on every change). ``halt``/``resume`` must run on the actor
thread: call them through the proxy (``ref.proxy().halt("why").get()``).

Never does: block the actor thread on the network, the disk or another actor;
call the hard-shutdown callback on the actor thread or twice.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable


from actors.core import signals
from actors.node_ids import (CIRCUIT_BREAKER, DEGRADATION, ENGINE, FEED_PREFIX, MONITOR_PREFIX, POSITION_MANAGER,
                             STATE_BUILDER, STORE_MONITOR)
from actors.core.degradation import Degradation, DegradationConfig, Gate, Mode, Transition
from actors.core.signals import Effect, Scope, Signal
from actors.messages import Reconcile, Flatten, FlattenDone
from actors.services import Services
from runtime.logging import log_event
from supervision import SupervisedActor

NODE_ID = DEGRADATION
FEED_HEALTH = "feed_health"
# Nodes asked to re-report their state when an incarnation starts.
REPORTER_PREFIXES = (MONITOR_PREFIX, FEED_PREFIX, STATE_BUILDER, CIRCUIT_BREAKER, ENGINE)
REVALIDATING = "revalidating"


@dataclass(frozen=True)
class ReportHealth:
    """From degradation when it (re)starts: re-send your current ``Signal``(s) to ``reply_to``.

    A reporter that ignores it is covered by the memory replay, but one that
    answers lets degradation learn of changes it missed while it was down.
    """

    reply_to: str = NODE_ID


@dataclass(frozen=True)
class _Tick:
    """The hysteresis / flatten-retry clock (from the timer wheel)."""


class SignalMemory:
    """The signals applied by earlier incarnations, so a restart can rebuild the state.

    Pass one instance in the ChildSpec kwargs: the supervisor hands the same
    object to every incarnation. Per cause it keeps the last raise and the clear
    that followed it; causes the core has expired are pruned. Thread-safe (a
    fenced, hung incarnation may still write while its successor reads).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_cause: dict[tuple[str, str, Scope, str], list[tuple[Signal, float]]] = {}
        self.starts = 0
        self.hard_shutdown_notified = False

    def record(self, signal: Signal, at: float) -> None:
        with self._lock:
            entries = self._by_cause.get(signal.identity)
            if signal.active:
                self._by_cause[signal.identity] = [(signal, at)]
            elif entries and entries[-1][0].active:
                entries.append((signal, at))

    def entries(self) -> list[tuple[Signal, float]]:
        """Every remembered raise/clear, oldest first."""
        with self._lock:
            flat = [entry for entries in self._by_cause.values() for entry in entries]
        return sorted(flat, key=lambda entry: entry[1])

    def forget(self, identity: tuple[str, str, Scope, str]) -> None:
        with self._lock:
            self._by_cause.pop(identity, None)

    def keep_only(self, alive: set[tuple[str, str, str]]) -> None:
        """Drop causes the core no longer holds; ``alive`` is {(source, cause, scope_label)}."""
        with self._lock:
            for identity, entries in list(self._by_cause.items()):
                sig = entries[0][0]
                if (sig.source, sig.cause, sig.scope_label) not in alive:
                    del self._by_cause[identity]

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_cause)


class DegradationActor(SupervisedActor):
    """Node ``degradation``. Messages: ``Signal``, ``FlattenDone``; operator: ``halt``, ``resume``."""

    def __init__(
        self,
        services: Services,
        on_hard_shutdown: Callable[[int], None] | None = None,
        *,
        memory: SignalMemory | None = None,
        config: DegradationConfig | None = None,
        revalidate: Iterable[str] = (STORE_MONITOR,),
        clock: Callable[[], float] = time.time,
        tick_interval: float = 0.25,
        flatten_timeout: float = 15.0,
        flatten_repeat: float = 5.0,
    ) -> None:
        super().__init__()
        self.services = services
        self.on_hard_shutdown = on_hard_shutdown
        self.memory = memory if memory is not None else SignalMemory()
        self.revalidate = frozenset(revalidate)
        self.clock = clock
        self.tick_interval = tick_interval
        self.flatten_timeout = flatten_timeout  # HARD_SHUTDOWN: flatten -> final flush at the latest
        self.flatten_repeat = flatten_repeat
        self.core = Degradation(config or _config_from(services))
        self._reported: set[str] = set()
        self._revalidating = False
        self._flatten_sent: dict[str, float] = {}
        self._flatten_undelivered: set[str] = set()
        self._shutdown_since: float | None = None
        self._flatten_done = False
        self._published: Gate | None = None
        self._timer: int | None = None
        self.ticks = 0
        self.replayed = 0  # signals of earlier incarnations re-applied at start
        self._snapshot: dict[str, Any] = self._build_snapshot()

    # --- lifecycle ----------------------------------------------------------------------

    def on_start(self) -> None:
        now = self.clock()
        self.memory.starts += 1
        self._raise_revalidating(now)
        self._rebuild(now)
        self._publish()
        self.services.directory.register(NODE_ID, self.generation, self.actor_ref)
        log_event(NODE_ID, "started", details={"generation": self.generation, "start": self.memory.starts,
                                               "replayed_signals": self.replayed,
                                               "revalidate": sorted(self.revalidate)},
                  action_taken="entries closed until " + (", ".join(sorted(self.revalidate)) or "now") +
                  " re-report")
        self._ask_for_reports()
        self._maybe_end_revalidating(now)
        self._after_change(now)
        self._arm_timer()

    def on_stop(self) -> None:
        self._disarm_timer()
        self.services.directory.unregister(NODE_ID, self.generation)
        self._publish_closed("degradation stopped: entries closed until it runs again")

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self._disarm_timer()
        self.services.directory.unregister(NODE_ID, self.generation)
        self._publish_closed(f"degradation crashed ({exception_value!r}): entries closed until it restarts")

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Signal):
            self._on_signal(message)
        elif isinstance(message, _Tick):
            self._on_tick()
        elif isinstance(message, FlattenDone):
            self._flatten_done = True
            log_event(NODE_ID, "flatten_done", details={"reason": message.reason},
                      action_taken="final flush may begin" if self._shutdown_since is not None else "noted")
            self._after_change(self.clock())
        return None

    # --- operator API (call through the proxy) -------------------------------------------

    def halt(self, reason: str, scope: Scope | str = Scope.NODE, key: str = "") -> dict[str, Any]:
        """``run.py halt --reason R``: close entries (node-wide by default) until ``resume``."""
        if not reason or not reason.strip():
            raise ValueError("halt needs a reason")
        log_event(NODE_ID, "operator_halt", details={"reason": reason, "scope": str(Scope(scope).value), "key": key},
                  action_taken="entries closed until an operator resumes", level="WARNING")
        self._on_signal(signals.operator_halt(True, reason.strip(), Scope(scope), key))
        return self.snapshot()

    def resume(self, reason: str, scope: Scope | str = Scope.NODE, key: str = "") -> dict[str, Any]:
        """``run.py resume --reason R``: lift the operator's halt (other causes still hold)."""
        if not reason or not reason.strip():
            raise ValueError("resume needs a reason")
        log_event(NODE_ID, "operator_resume", details={"reason": reason, "scope": str(Scope(scope).value), "key": key},
                  action_taken="operator halt lifted")
        self._on_signal(signals.operator_halt(False, reason.strip(), Scope(scope), key))
        return self.snapshot()

    # --- reads (any thread) -------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """``{mode, trading, gate: {open, reasons}, flatten, causes}`` as last published."""
        return copy.deepcopy(self._snapshot)

    status = snapshot

    def status_details(self) -> dict[str, Any]:
        """For the status tree node: mode, trading, gate {open, reasons}, flatten, number of causes."""
        snap = self._snapshot
        return {"mode": snap["mode"], "trading": snap["trading"], "gate": copy.deepcopy(snap["gate"]),
                "flatten": list(snap["flatten"]), "causes": len(snap["causes"])}

    # --- handlers -------------------------------------------------------------------------

    def _on_signal(self, signal: Signal) -> None:
        now = self.clock()
        if signal.cause == FEED_HEALTH and not signal.active and self._raised(signal):
            self._reconcile_after_reconnect(signal.key, now)
        transitions = self.core.apply(signal, now)
        if signal.source != NODE_ID:
            self.memory.record(signal, now)
        self._log_transitions(transitions)
        self._reported.add(signal.source)
        self._maybe_end_revalidating(now)
        self._after_change(now)

    def _raised(self, signal: Signal) -> bool:
        return any(c["source"] == signal.source and c["cause"] == signal.cause for c in self.core.causes())

    def _reconcile_after_reconnect(self, symbol: str, now: float) -> None:
        """F7: the feed of `symbol` is back. Entries there wait for position-manager's reconcile
        (it clears the barrier); if position-manager is not running, its cold start reconciles."""
        barrier = signals.reconcile_barrier(symbol, True, f"feed {symbol} reconnected: reconciling with the venue")
        self.core.apply(barrier, now)
        if not self.services.directory.tell(POSITION_MANAGER, Reconcile(f"feed reconnect {symbol}")):
            self.core.apply(signals.reconcile_barrier(symbol, False), now)

    def _on_tick(self) -> None:
        self.ticks += 1
        now = self.clock()
        self._log_transitions(self.core.tick(now))
        self._after_change(now)
        self._arm_timer()

    def _after_change(self, now: float) -> None:
        self._request_flatten(now)
        self._hard_shutdown_step(now)
        self.memory.keep_only({(c["source"], c["cause"], c["scope"]) for c in self.core.causes()})
        self._publish()

    # --- restart: rebuild a safe state ----------------------------------------------------

    def _raise_revalidating(self, now: float) -> None:
        self._revalidating = True
        waiting = ", ".join(sorted(self.revalidate)) or "nobody"
        reason = f"(re)started: entries closed until {waiting} re-report" + (
            f" (start #{self.memory.starts})" if self.memory.starts > 1 else "")
        self.core.apply(Signal(NODE_ID, REVALIDATING, True, Effect.BLOCK_ENTRIES, reason=reason, clean_period=0.0),
                        now)

    def _maybe_end_revalidating(self, now: float) -> None:
        if not self._revalidating or not self.revalidate <= self._reported:
            return
        self._revalidating = False
        cleared = Signal(NODE_ID, REVALIDATING, False, Effect.BLOCK_ENTRIES,
                         reason="re-reported: " + (", ".join(sorted(self.revalidate)) or "-"), clean_period=0.0)
        self._log_transitions(self.core.apply(cleared, now))

    def _rebuild(self, now: float) -> None:
        replayed, dropped = 0, []
        for signal, at in self.memory.entries():
            try:
                self.core.apply(signal, at)
                replayed += 1
            except Exception as exc:  # noqa: BLE001 - a poison signal must not crash every restart
                self.memory.forget(signal.identity)
                dropped.append(f"{signal.source}/{signal.cause}: {exc!r}")
        self.core.tick(now)
        self.replayed = replayed
        if replayed or dropped:
            log_event(NODE_ID, "state_rebuilt", level="WARNING" if dropped else "INFO",
                      details={"replayed": replayed, "dropped": dropped, "causes": self.core.causes(),
                               "mode": self.core.mode.value},
                      action_taken="causes of earlier incarnations re-applied; entries closed while revalidating")

    def _ask_for_reports(self) -> None:
        asked = [node for node in self.services.directory.ids()
                 if node != NODE_ID and node.startswith(REPORTER_PREFIXES)]
        for node in asked:
            self.services.directory.tell(node, ReportHealth(NODE_ID))

    # --- flatten and HARD_SHUTDOWN ---------------------------------------------------------

    def _request_flatten(self, now: float) -> None:
        requested = self.core.flatten_requested
        for label in list(self._flatten_sent):
            if label not in requested:
                del self._flatten_sent[label]
        self._flatten_undelivered &= set(requested)
        for label in requested:
            last = self._flatten_sent.get(label)
            if last is not None and now - last < self.flatten_repeat:
                continue
            reason = self._flatten_reason(label)
            delivered = [self.services.directory.tell(ENGINE, message) for message in self._flatten_messages(label,
                                                                                                             reason)]
            if delivered and all(delivered):
                self._flatten_sent[label] = now
                self._flatten_undelivered.discard(label)
                log_event(NODE_ID, "flatten_requested", details={"scope": label, "reason": reason,
                                                                 "repeat": last is not None},
                          action_taken=f"told {ENGINE} to flatten {label}", level="WARNING")
            elif label not in self._flatten_undelivered:
                self._flatten_undelivered.add(label)
                log_event(NODE_ID, "flatten_undelivered", details={"scope": label, "reason": reason},
                          action_taken=f"{ENGINE} is down; retried every tick", level="ERROR")

    def _flatten_messages(self, label: str, reason: str) -> list[Flatten]:
        kind, _, key = label.partition(":")
        if kind == "node":
            return [Flatten(reason)]
        if kind == "symbol":
            return [Flatten(reason, symbol=key)]
        if kind == "strategy":
            return [Flatten(reason, strategy_id=key)]
        if kind == "account":
            return [Flatten(reason, strategy_id=s.id) for s in self.services.config.strategies if s.account == key]
        return [Flatten(reason)]  # a scope nobody mapped: flatten everything rather than nothing

    def _flatten_reason(self, label: str) -> str:
        causes = self.core.causes()
        if label == "node":
            texts = [f"{c['effect']}: {c['source']}: {c['reason'] or c['cause']}" for c in causes
                     if c["effect"] in (Effect.EMERGENCY.value, Effect.HARD_SHUTDOWN.value)]
            texts += [f"{c['source']}: {c['reason'] or c['cause']}" for c in causes
                      if c["effect"] == Effect.FLATTEN.value and c["scope"] == "node"]
            return "; ".join(texts) or f"mode {self.core.mode.value}"
        texts = [f"{c['source']}: {c['reason'] or c['cause']}" for c in causes
                 if c["effect"] == Effect.FLATTEN.value and c["scope"] == label]
        return "; ".join(texts) or f"flatten {label}"

    def _hard_shutdown_step(self, now: float) -> None:
        if self.core.mode is not Mode.HARD_SHUTDOWN or self.core.gate.flushing:
            return
        if self._shutdown_since is None:
            self._shutdown_since = now
            log_event(NODE_ID, "hard_shutdown", level="CRITICAL",
                      details={"reasons": self.core.gate.reasons, "flatten_timeout_s": self.flatten_timeout},
                      action_taken="flatten everything, then final flush and exit 3 (manual restart required)")
        if not self._flatten_done and now - self._shutdown_since < self.flatten_timeout:
            return
        why = "flatten done" if self._flatten_done else f"flatten not confirmed within {self.flatten_timeout:g}s"
        self._log_transitions(self.core.begin_flush(now))
        self._publish()
        code = self.core.exit_code or 3
        log_event(NODE_ID, "hard_shutdown_flush", level="CRITICAL", details={"why": why, "exit_code": code},
                  action_taken="exits closed; daemon told to flush and exit")
        if self.memory.hard_shutdown_notified or self.on_hard_shutdown is None:
            return
        self.memory.hard_shutdown_notified = True
        callback = self.on_hard_shutdown

        def notify() -> None:
            try:
                callback(code)
            except Exception as exc:  # noqa: BLE001 - log it; there is nobody else to tell
                log_event(NODE_ID, "hard_shutdown_callback_failed", details={"error": repr(exc)}, level="CRITICAL",
                          exc=exc)

        threading.Thread(target=notify, name="hard-shutdown", daemon=True).start()

    # --- publishing and logging -------------------------------------------------------------

    def _publish(self) -> None:
        gate = self.core.gate
        if gate is self._published:
            return
        self._published = gate
        self.services.gate.publish(gate)
        self._snapshot = self._build_snapshot()

    def _publish_closed(self, reason: str) -> None:
        core = self.core
        gate = core.gate
        liquid = core.config.liquid_symbols
        self.services.gate.publish(Gate(core.mode, gate.flushing, liquid, core.config.reduced_size_factor,
                                        (reason,), {}))
        self._published = None

    def _build_snapshot(self) -> dict[str, Any]:
        status = self.core.status()
        status["causes"] = self.core.causes()
        return status

    def _log_transitions(self, transitions: list[Transition]) -> None:
        for t in transitions:
            level, action = _describe(t)
            log_event(NODE_ID, "transition", details={**t.as_dict(), "reasons": self.core.gate.reasons},
                      action_taken=action, level=level)

    # --- timer --------------------------------------------------------------------------------

    def _arm_timer(self) -> None:
        self._timer = self.services.timers.tell_after(self.tick_interval, self.actor_ref, _Tick())

    def _disarm_timer(self) -> None:
        if self._timer is not None:
            self.services.timers.cancel(self._timer)
            self._timer = None


def _config_from(services: Services) -> DegradationConfig:
    config = services.config
    symbols = frozenset(config.feeds.symbols) | frozenset(s.symbol for s in config.strategies)
    liquid = frozenset(config.feeds.liquid_symbols) or symbols  # "empty = all symbols"
    return DegradationConfig(liquid_symbols=liquid, symbols=symbols)


_MODE_LEVEL = {Mode.NORMAL: "INFO", Mode.REDUCED: "WARNING", Mode.EMERGENCY: "ERROR", Mode.HARD_SHUTDOWN: "CRITICAL"}


def _describe(t: Transition) -> tuple[str, str]:
    """Log level and action_taken for one transition."""
    if t.kind == "mode":
        to = Mode(t.to)
        worse = to.rank > Mode(t.from_).rank
        actions = {
            Mode.NORMAL: "all symbols, full size",
            Mode.REDUCED: "entries on liquid symbols only, half size",
            Mode.EMERGENCY: "no entries; flatten requested; monitor only",
            Mode.HARD_SHUTDOWN: "flatten, final flush, exit 3",
        }
        return (_MODE_LEVEL[to] if worse else "INFO"), f"mode {t.to}: {actions[to]}"
    if t.kind == "trading":
        return ("INFO" if t.to == "ACTIVE" else "WARNING"), f"trading {t.to}"
    if t.to == "CLOSED":
        return "WARNING", f"entries closed in {t.scope}"
    return "INFO", f"entries reopened in {t.scope}"


__all__ = ["DegradationActor", "FlattenDone", "NODE_ID", "ReportHealth", "SignalMemory"]
