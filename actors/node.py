"""Node: one Warden daemon — the store, the venue, the services and the supervision tree.

Before anything starts, the preflight checks (runtime/preflight.py: classes, env vars,
data_dir, bind/token) have passed and the status socket is bound, so a bad config or a
busy port exits 2 before a thread or Redis starts. The status server then serves while
the rest starts (the tree reads `starting`, /ready is 503). Start order is the tree's
order (safety, monitors, market, execution, strategies), so the gate and the monitors
exist before any data flows, and the position manager's cold start (settle the journal,
re-arm stops, reconcile) completes before any strategy runs. Strategies are started one
by one by the node, so SIGTERM during start-up stops the start at the next strategy.

Stopping (F26): strategies first (their timers and retries are cancelled; orders in
flight finish), then the rest of the tree in reverse order, then exchange-side
protective stops are placed for every open position that has a stop-loss, the disk
buffer is replayed if Redis is up, and the store is closed. Exit 0. HARD_SHUTDOWN or a
tripped root: flatten what is open, flush, exit 3. The stop has a deadline (`[node]
stop_deadline_s`, seed 724076; actors/core/stop_deadline.py): waiting for the tree and the
orders in flight ends before it, the protective stops get the rest; if orders are still in
flight (a stop-loss waiting out a 429 flood) or the deadline passes, one CRITICAL line names
every position left unprotected and every order in doubt (journaled: the next start looks
it up before any resend), and the exit code is 4.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from actors.circuit_breaker import CircuitBreakerActor, Escalated, default_board
from actors.clock_monitor import ClockMonitor
from actors.cold_stops import SNAPSHOT_NAME
from actors import crash_windows, node_ids
from actors.core import signals
from actors.core.breakers import BreakerState
from actors.core.stop_deadline import StopDeadline, leftover
from actors.degradation import DegradationActor, SignalMemory
from actors.execution import ExecutionEngine, arm_stop_if_open
from actors.feed import FeedActor
from actors.monitors import HeartbeatMonitor, ResourceMonitor, StoreMonitor
from actors.orders import OrderIntent, Purpose
from actors.pipeline import RuntimeBusy
from actors.messages import StrategyDisabled
from actors.position_manager import PositionManager
from actors.positions import account_rows, marks_from_tree, position_rows
from actors.protection import open_positions, place_protective_stops
from actors.services import Services
from actors.state_builder import StateBuilder
from actors.runtime_preload import RuntimePreload
from actors.strategy import ScheduledStrategy, Strategy, StrategyActor
from runtime.alerts import WebhookAlerter
from runtime.config import Config, ConfigError, ConfigProblem, StrategyConfig, resolve_strategy_class
from runtime.console import pages as console_pages
from runtime.exit_codes import EXIT_HARD_SHUTDOWN, EXIT_OK, EXIT_STOP_DEADLINE
from runtime.preflight import Preflight, preflight
from runtime.heap import settle_after_start
from runtime.logging import log_event, register_secret, rotate_now
from runtime.metrics import Metrics, walk
from runtime.simexchange import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimExchange
from runtime.status_server import Coalesced, CommandError, StatusServer
from runtime.store.embedded import resolve_endpoint
from runtime.store.errors import CorruptState, StoreUnavailable
from runtime.store.runtime_state import Runtime, Status
from runtime.store.store import Store
from runtime.venue import BinanceFuturesConnector
from supervision import injection
from supervision.fence import GenerationSource, next_process_generation
from supervision import AlreadyPresent, AlreadyStarted, ChildSpec, NotFound, Running, Supervisor, actor_of, tree_status

COMMAND_TIMEOUT_S = 30.0  # an operator command is awaited this long before it is reported as failed
MAX_NAMES_SHOWN = 20  # a 404 lists at most this many known names
HEALTH_MAX_AGE_S = 0.5  # /health and /ready answer from a document at most this old
START_BATCH = 100  # strategies queued to the strategies supervisor at once while starting


class StartAborted(Exception):
    """A stop was asked for (SIGTERM) while the node was starting."""


def strategy_factory(strategy: StrategyConfig, cls: type | None = None) -> Any:
    if strategy.kind == "scheduled":
        return lambda: ScheduledStrategy(strategy)
    cls = cls or resolve_strategy_class(strategy)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise TypeError(f"strategy {strategy.id}: {strategy.class_path} is not a subclass of actors.strategy.Strategy")
    return cls


class Node:
    def __init__(self, config: Config, checked: Preflight | None = None) -> None:
        self.config = config
        self.checked = checked
        self.started_at = time.time()
        self.exit_code = EXIT_OK
        self.stopping = threading.Event()
        self.stop_reason = ""
        self.root: Any = None
        self.exchange: SimExchange | None = None
        self.status_server: StatusServer | None = None
        self.alerter: WebhookAlerter | None = None
        self.endpoint: Any = None
        self.store: Store | None = None
        self.venue: BinanceFuturesConnector | None = None
        self.services: Services | None = None
        self.metrics = Metrics()
        self._strategy_specs: list[ChildSpec] = []  # the strategies supervisor's children, as started so far
        self._runtime_preload = RuntimePreload()  # runtimes read in bulk for the strategies being started
        self._started = False  # every configured strategy started: only then is the root `running`
        self._stopped = False
        self._root_escalated = False

    # --- start --------------------------------------------------------------------------

    def bind_status(self) -> StatusServer:
        """Preflight (unless done) and take the status port: ConfigError naming `status.bind` if busy."""
        if self.checked is None:
            self.checked = preflight(self.config)
        if self.status_server is None:
            server = StatusServer(self.status, self.command, self.metrics.registry, bind=self.config.status.bind,
                                  token=self.checked.secret("status.token_env"), on_scrape=self._refresh_metrics,
                                  pages=console_pages(self._journal_since),
                                  health_provider=Coalesced(lambda: self.status(positions=False), HEALTH_MAX_AGE_S))
            try:
                self.status_server = server.bind()
            except OSError as exc:
                raise ConfigError([ConfigProblem(
                    "status.bind", self.config.line_of("status.bind"),
                    f"cannot listen on {self.config.status.bind}: {exc.strerror or exc}"
                    + (" (is another Warden running? choose another port)" if "in use" in str(exc) else ""),
                )], self.config.source) from None
        return self.status_server

    def start(self) -> None:
        """Start everything; raises ConfigError (nothing started) or StartAborted (stop asked; call stop())."""
        self.bind_status().start()
        assert self.status_server is not None and self.checked is not None
        webhook = self.checked.secret("alerts.webhook_url_env")  # preflight: set, and an http(s) URL
        if webhook:
            register_secret(webhook)  # webhook URLs often embed a token
            self.alerter = WebhookAlerter(webhook, self.config.node.name).start()
        self.venue = self._connect_venue()
        self._load_symbol_filters()
        data_dir = Path(self.config.node.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.endpoint = resolve_endpoint(self.config.store.url, data_dir / "redis", self.config.store.password_env)
        self.store = Store(self.endpoint, self.config.node.namespace, buffer_path=data_dir / "buffer" / "orders.jsonl")
        self._check_stop()
        if self.exchange is not None:
            self._forget_previous_run()
        self.generations = self._generations()
        deferred = self.generations is next_process_generation  # Redis down: reserved by the cold start
        self.services = Services(config=self.config, store=self.store, venue=self.venue, metrics=self.metrics,
                                 generation=0 if deferred else self.generations(), generation_deferred=deferred,
                                 ws_url=self.ws_url, snapshot_path=data_dir / "buffer" / SNAPSHOT_NAME)
        if self.services.snapshots is not None:
            self.services.snapshots.start()  # writes once position-manager has loaded the last known state
        self.signal_memory = SignalMemory()  # degradation's causes survive its restarts
        self.breaker_board = default_board(self.services)  # so do tripped breakers
        self._check_stop()
        self.root = Supervisor.start(
            name="root",
            generations=self.generations,
            intensity=self.config.supervision.intensity,
            period=self.config.supervision.period_s,
            on_escalate=self._root_escalated_cb,
            children=self._tree(),
        )
        self._start_strategies()
        crash_windows.held("strategies_started", self.stopping)
        self._check_stop()  # a SIGTERM during the last batch: never announce `started` / `ready` after it
        self._started = True
        settle_after_start()  # the tree is up: its objects leave later garbage collections (runtime/heap.py)
        log_event("node", "started", details={"node": self.config.node.name, "status_url": self.status_server.url,
                                              "strategies": len(self.config.strategies),
                                              "venue": self.venue.rest_url})
        url = self.status_server.url
        log_event("node", "ready", details={"strategies": len(self.config.strategies), "symbols": self.symbols},
                  action_taken=f"ready, trading {len(self.config.strategies)} strategies on {len(self.symbols)} "
                               f"symbols ({', '.join(self.symbols)}); status: python run.py status --url {url}, "
                               f"console: {url}/  (Ctrl-C stops)")

    def _generations(self) -> GenerationSource:
        """Generations monotonic across processes (Redis-reserved blocks): a queued intent or a late
        runtime write of an earlier process is refused. Redis down at start: this process's own
        counter for its actors, logged; its runtime writes are unfenced until the cold start
        reserves a writer generation in Redis (`Services.claim_generation`)."""
        try:
            return self.store.generations()
        except StoreUnavailable as exc:
            log_event("node", "generations_local", level="ERROR", details={"error": str(exc)},
                      action_taken="generations from this process only until the next start")
            return next_process_generation

    def _check_stop(self) -> None:
        if self.stopping.is_set():
            raise StartAborted(self.stop_reason)

    def _start_strategies(self) -> None:
        """The strategies in batches of START_BATCH (queued together, so no round trip per strategy),
        checking for a stop between batches. `_strategy_specs` is the list the strategies supervisor
        was given, so a restart of that supervisor restarts those started so far."""
        strategies = self._strategies_supervisor()
        configured = self.config.strategies
        for first in range(0, len(configured), START_BATCH):
            self._check_stop()
            batch = configured[first:first + START_BATCH]
            self._preload_runtimes([strategy.id for strategy in batch])
            specs = [self._strategy_spec(strategy) for strategy in batch]
            self._strategy_specs.extend(specs)
            try:
                for future in [strategies.start_child(spec) for spec in specs]:
                    try:
                        future.get(timeout=60)
                    except (AlreadyPresent, AlreadyStarted):  # the supervisor restarted and started it from the list
                        pass
            finally:
                self._runtime_preload.discard([strategy.id for strategy in batch])

    def _preload_runtimes(self, strategy_ids: list[str]) -> None:
        """One pipelined read for the batch about to start, each strategy's `on_start` takes its part.
        Read just before the batch starts: an update sent before a strategy registers is then at most
        one batch old, and the engine decides every order from its own record, never this view. Store
        down: nothing is put, and each strategy falls back to its own read (and the runtime cache)."""
        try:
            self._runtime_preload.put(self.store.load_runtimes(strategy_ids))
        except StoreUnavailable:
            pass

    def _connect_venue(self) -> BinanceFuturesConnector:
        venue = self.config.venue
        rest_url, ws_url = venue.rest_url, venue.ws_url
        if venue.kind == "sim":
            key, secret = DEFAULT_API_KEY, DEFAULT_API_SECRET
            if not rest_url:
                prices = {s: p for s, p in venue.sim_start_prices.items() if s in self.config.feeds.symbols}
                self.exchange = SimExchange(self.config.feeds.symbols, prices, seed=int(time.time()))
                self.exchange.start()
                rest_url, ws_url = self.exchange.rest_url, self.exchange.ws_url
        else:
            assert self.checked is not None
            key, secret = self.checked.secret("venue.api_key_env"), self.checked.secret("venue.api_secret_env")
            assert key and secret, "preflight checked both are set"
            register_secret(key)
            register_secret(secret)
        self.ws_url = ws_url
        return BinanceFuturesConnector(rest_url, key, secret, recv_window_ms=venue.recv_window_ms,
                                       timeout_s=venue.order_timeout_s)

    def _load_symbol_filters(self) -> None:
        """exchangeInfo before anything trades: the first order then pays no extra round trip, and
        a symbol the venue does not trade is a ConfigError naming `feeds.symbols` (exit 2) before
        Redis or the tree start. A venue that cannot answer now does not stop the start: the gate
        stays closed until it reconciles, and the connector loads the filters at its first order."""
        assert self.venue is not None
        loaded = self.venue.load_exchange_info()
        if not loaded.ok:
            log_event("node", "exchange_info_unavailable", level="WARNING", details={"outcome": loaded.describe()},
                      action_taken="symbol filters loaded before the first order instead")
            return
        unknown = [s for s in self.config.feeds.symbols if self.venue.symbol_filters(s) is None]
        if unknown:
            raise ConfigError([ConfigProblem(
                "feeds.symbols", self.config.line_of("feeds.symbols"),
                f"{', '.join(unknown)}: not a TRADING symbol at {self.venue.rest_url} (its exchangeInfo lists "
                f"{len(loaded.data)} symbols)")], self.config.source)

    def _forget_previous_run(self) -> None:
        """An in-process simulated exchange starts empty, so state from a previous run could
        never reconcile with it. Only then (nothing real at stake) start from a clean namespace."""
        client, pattern = self.store.client, f"{self.config.node.namespace}:*"
        stale = list(client.scan_iter(match=pattern, count=1000))
        if stale:
            client.delete(*stale)
        log_event("node", "fresh_sim_state", details={"namespace": self.config.node.namespace, "keys_removed": len(stale)},
                  action_taken="in-process simulated exchange: previous run's state cleared")

    def _tree(self) -> list[ChildSpec]:
        s = self.services
        cfg = self.config
        return [
            ChildSpec(node_ids.SAFETY, Supervisor, kind="supervisor", kwargs={"children": [
                ChildSpec(node_ids.DEGRADATION, DegradationActor, args=(s, self._hard_shutdown),
                          kwargs={"memory": self.signal_memory}),
                ChildSpec(node_ids.CIRCUIT_BREAKER, CircuitBreakerActor, args=(s, self._disable_strategy),
                          kwargs={"board": self.breaker_board}),
            ]}),
            ChildSpec(node_ids.MONITORS, Supervisor, kind="supervisor", kwargs={"children": [
                ChildSpec(node_ids.STORE_MONITOR, StoreMonitor, args=(s,), kwargs={"reconcile_timeout": 2.0}),
                ChildSpec(node_ids.RESOURCE_MONITOR, ResourceMonitor, args=(s,),
                          kwargs={"rotate_logs": rotate_now, "cold_writes_allowed": s.cold_writes}),
                ChildSpec(node_ids.CLOCK_MONITOR, ClockMonitor, args=(s,)),
                ChildSpec(node_ids.HEARTBEAT_MONITOR, HeartbeatMonitor, args=(s, lambda: self.tree(details=False))),
            ]}),
            ChildSpec(node_ids.MARKET, Supervisor, kind="supervisor", kwargs={"children": [
                *[ChildSpec(node_ids.feed(symbol), FeedActor, args=(s, symbol), kwargs={"ws_url": self.ws_url})
                  for symbol in cfg.feeds.symbols],
                ChildSpec(node_ids.STATE_BUILDER, StateBuilder, args=(s,)),
            ]}),
            ChildSpec(node_ids.EXECUTION, Supervisor, kind="supervisor", kwargs={
                "strategy": "rest_for_one", "children": [
                ChildSpec(node_ids.ENGINE, ExecutionEngine, args=(s,), shutdown=15.0),
                ChildSpec(node_ids.POSITION_MANAGER, PositionManager, args=(s,), start_timeout=60.0),
            ]}, start_timeout=90.0, shutdown=30.0),
            ChildSpec(node_ids.STRATEGIES, Supervisor, kind="supervisor", kwargs={
                "strategy": "dynamic", "intensity": cfg.supervision.intensity, "period": cfg.supervision.period_s,
                "intensity_scope": "child", "min_backoff": 0.05, "max_backoff": 5.0,
                "on_child_disabled": self._strategy_disabled, "fence": s.fence, "children": self._strategy_specs,
                "generations": self.generations,
            }, start_timeout=60.0, shutdown=30.0),
        ]

    def _strategy_spec(self, strategy: StrategyConfig) -> ChildSpec:
        cls = self.checked.classes.get(strategy.id) if self.checked is not None else None
        return ChildSpec(node_ids.strategy(strategy.id), StrategyActor,
                         args=(strategy, strategy_factory(strategy, cls), self.services),
                         kwargs={"preload": self._runtime_preload},
                         hang_timeout=self.config.supervision.hang_timeout_s, shutdown=5.0)

    # --- supervision callbacks ------------------------------------------------------------

    def _strategy_disabled(self, child_id: str, reason: str) -> None:
        strategy_id = child_id.removeprefix(node_ids.STRATEGY_PREFIX)
        self.services.directory.tell(node_ids.POSITION_MANAGER, StrategyDisabled(strategy_id, reason))
        self.services.directory.tell(node_ids.CIRCUIT_BREAKER, Escalated(child_id, reason))
        self.services.directory.tell(node_ids.DEGRADATION, signals.strategy_disabled(strategy_id, True, reason))

    def _disable_strategy(self, strategy_id: str, reason: str) -> None:
        """Circuit breaker (F24): take a malfunctioning strategy out; its stop stays armed."""
        threading.Thread(target=self._set_strategy, args=(strategy_id, "disable", reason), daemon=True).start()

    def _hard_shutdown(self, exit_code: int) -> None:
        self.exit_code = exit_code
        self.request_stop("HARD_SHUTDOWN")

    def _root_escalated_cb(self, reason: str) -> None:
        self._root_escalated = True
        self.exit_code = EXIT_HARD_SHUTDOWN
        log_event("node", "root_escalated", details={"reason": reason}, level="CRITICAL",
                  action_taken="HARD_SHUTDOWN: flatten, flush, exit 3")
        self.request_stop(f"root escalated: {reason}")

    # --- running and stopping ----------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        if not self.stopping.is_set():
            self.stop_reason = reason
            self.stopping.set()

    @property
    def symbols(self) -> list[str]:
        """Every symbol the node watches or trades."""
        return sorted(set(self.config.feeds.symbols) | {s.symbol for s in self.config.strategies})

    def wait(self) -> int:
        announced = False
        while not self.stopping.wait(0.5):
            if not announced:
                try:
                    announced = self._announce_trading()
                except Exception as exc:  # noqa: BLE001 - a missing sentence must never stop the node
                    log_event("node", "trading_announcement_failed", level="WARNING", exc=exc)
                    announced = True
        return self.stop()

    def _announce_trading(self) -> bool:
        """Say once, in words, when entries can first go out (a feed LIVE and its gate open)."""
        status = self.status()
        if status["trading"] != "ACTIVE":
            return False
        feeds = {n["id"][5:]: (n.get("details") or {}).get("status") for n in walk(status["tree"])
                 if str(n.get("id", "")).startswith(node_ids.FEED_PREFIX)}
        gates = status["gate"].get("symbols") or {}
        open_now = [s for s, g in gates.items() if g.get("open") and feeds.get(s) == "LIVE"]
        if not open_now:
            return False
        closed = [f"{s} ({'; '.join(g.get('reasons') or []) or 'feed not LIVE yet'})"
                  for s, g in gates.items() if s not in open_now]
        log_event("node", "trading_started", details={"open": open_now, "closed": closed},
                  action_taken=f"trading has begun: entries open on {', '.join(open_now)}"
                               + (f"; still closed: {', '.join(closed)}" if closed else ""))
        return True

    def stop(self) -> int:
        """Stop what was started, in reverse; safe after a partial or failed start. Bounded by
        `[node] stop_deadline_s` (seed 724076): exit 4 when orders were still in flight."""
        if self._stopped:
            return self.exit_code
        self._stopped = True
        deadline = StopDeadline(self.config.node.stop_deadline_s)
        log_event("node", "stopping", details={"reason": self.stop_reason, "exit_code": self.exit_code,
                                               "deadline_s": deadline.deadline_s},
                  action_taken=f"stopping ({self.stop_reason}): strategies first, then the tree, then protective "
                               f"stops at the venue and the store, within {deadline.deadline_s:g} s")
        self._stop_tree(deadline)
        in_flight = self._await_orders_in_flight(deadline.for_waiting)
        if self.services is not None:
            if self.exit_code == EXIT_HARD_SHUTDOWN and self._root_escalated:
                self._emergency_flatten()
            elif self.exit_code == EXIT_OK:
                self._place_protective_stops(deadline)
                in_flight = self._await_orders_in_flight(deadline.remaining)  # they may still finish in time
                if in_flight or deadline.expired():
                    self._stop_deadline_passed(deadline, in_flight)
            self._flush()
            if self.services.snapshots is not None:  # with the protective stops just placed
                self.services.snapshots.stop()
        if self.status_server is not None:
            self.status_server.stop()
        if self.services is not None:
            self.services.timers.stop()
        if self.venue is not None:
            self.venue.close()
        if self.store is not None:
            self.store.close()
        if self.endpoint is not None and self.endpoint.embedded is not None:
            self.endpoint.embedded.stop()
        if self.exchange is not None:
            self.exchange.stop()
        log_event("node", "stopped", details={"exit_code": self.exit_code},
                  action_taken=f"stopped, exit code {self.exit_code}")
        if self.alerter is not None:
            self.alerter.stop()
        return self.exit_code

    def _stop_tree(self, deadline: StopDeadline) -> None:
        """Strategies first, then the rest of the tree; neither waited for past the deadline's reserve
        (what overruns goes on stopping on its own threads while the protective stops are placed)."""
        if self.root is None or not self.root.is_alive():
            return
        try:
            self.root.proxy().terminate_child("strategies").get(timeout=deadline.for_waiting(60))
        except Exception as exc:  # noqa: BLE001 - keep stopping whatever happens
            log_event("node", "stop_strategies_failed", details={"error": repr(exc)}, level="ERROR")
        try:
            self.root.stop(block=True, timeout=deadline.for_waiting(120))
        except Exception as exc:  # noqa: BLE001 - pykka.Timeout: the tree is still stopping
            log_event("node", "stop_tree_overran", level="WARNING",
                      details={"error": repr(exc), "elapsed_s": round(deadline.elapsed(), 3)},
                      action_taken="stopped waiting for the tree: the rest of the stop deadline is the "
                                   "protective stops'")

    def _await_orders_in_flight(self, left: Callable[[], float]) -> list[str]:
        """F26: orders in flight finish (an engine abandoned at its shutdown timeout leaves its workers
        running) while `left()` seconds remain. Returns the strategies whose order is still in flight."""
        if self.services is None:
            return []
        locks = self.services.pipeline.local_locks
        while (busy := locks.busy()) and left() > 0:
            time.sleep(min(0.05, left()))
        return busy

    def _stop_deadline_passed(self, deadline: StopDeadline, in_flight: list[str]) -> None:
        """Seed 724076: stop waiting, say in one line what is left, exit 4. An order still in flight
        stays journaled and pending (its runtime says so): the next start looks it up before any resend."""
        self.exit_code = EXIT_STOP_DEADLINE
        try:
            runtimes = self._runtimes()
        except Exception as exc:  # noqa: BLE001 - the line is said whatever the store does
            log_event("node", "stop_runtimes_unreadable", level="ERROR", details={"error": repr(exc)})
            runtimes = {s.id: self.services.runtime_cache.get(s.id) for s in self.config.strategies}
        left = leftover(open_positions(self.config.strategies, runtimes.get), runtimes,
                        self.services.protective.held())
        log_event("node", "stop_deadline_passed", level="CRITICAL",
                  details={"deadline_s": deadline.deadline_s, "elapsed_s": round(deadline.elapsed(), 3),
                           "unprotected": list(left.unprotected), "in_doubt": list(left.in_doubt),
                           "in_flight": in_flight},
                  action_taken=left.line(deadline.deadline_s, EXIT_STOP_DEADLINE))

    def _runtimes(self) -> dict[str, Runtime | None]:
        """Every strategy's runtime from the store; the last known runtime where the store is down or
        the record is missing or malformed (F31). One pipelined read per 1,000 strategies."""
        try:
            stored = self.store.load_runtimes([s.id for s in self.config.strategies])
        except StoreUnavailable:
            stored = {}
        return {s.id: (runtime if isinstance(runtime := stored.get(s.id), Runtime)
                       else self.services.runtime_cache.get(s.id)) for s in self.config.strategies}

    def _open_positions(self) -> list[tuple[StrategyConfig, Any]]:
        """Open positions from the store, else the last known runtime (a bad record never costs a
        protective stop)."""
        return open_positions(self.config.strategies, self._runtimes().get)

    def _place_protective_stops(self, deadline: StopDeadline) -> None:
        """F26: positions outlive the process; their stop-losses must too (venue-side)."""
        try:
            place_protective_stops(self.services, self._open_positions(),
                                   "graceful stop: venue-side protective stop", component="node",
                                   give_up=deadline.expired, beside_orders_in_flight=True)
        except Exception as exc:  # noqa: BLE001 - stopping continues whatever happens; say it loudly
            log_event("node", "protective_stops_failed", level="CRITICAL", details={"error": repr(exc)},
                      action_taken="exit continues; positions may be unprotected at the venue")

    def _emergency_flatten(self) -> None:
        pipeline = self.services.pipeline
        for strategy, _ in self._open_positions():
            intent = OrderIntent(strategy.id, strategy.account, strategy.symbol, Purpose.FLATTEN,
                                 reason="HARD_SHUTDOWN: root supervisor escalated")
            result = pipeline.execute(intent, threading.Event())
            log_event("node", "emergency_flatten", details={"strategy": strategy.id, "verdict": result.verdict.value,
                                                          "reason": result.reason}, level="CRITICAL")

    def _flush(self) -> None:
        try:
            if self.store.buffer_pending() and self.store.available():
                self.store.replay_buffer()
        except StoreUnavailable:
            log_event("node", "buffer_kept", details={"reason": "Redis down at exit; replayed on next start"},
                      level="WARNING")

    # --- status and commands ----------------------------------------------------------------

    def tree(self, while_starting: bool = True, details: bool = True) -> dict[str, Any]:
        """The status tree; `while_starting=False`: before every strategy has started, only the root
        node saying `starting` (what /ready needs, without walking thousands of children);
        `details=False`: without the nodes' details (what monitor:heartbeat reads)."""
        if self.root is None or not (while_starting or self._started):
            return {"id": "root", "kind": "supervisor", "state": "starting", "restarts": 0, "last_error": None,
                    "last_exit_at": None, "generation": 0, "children": []}
        tree = tree_status(self.root, details)
        if not self._started and tree.get("state") == "running":
            tree["state"] = "starting"  # strategies are still being started: not healthy, not ready yet
        return tree

    def _find(self, node_id: str) -> Any:
        ref = self.services.directory.ref(node_id) if self.services is not None else None
        return actor_of(ref) if ref is not None else None

    def status(self, positions: bool = True) -> dict[str, Any]:
        """The status document (DESIGN §7). `positions=False` is what /health and /ready need: no
        positions or accounts (no per-strategy store read), and no walk of the tree while the
        strategies are still starting (the answer then is `starting` anyway)."""
        degradation = self._find(node_ids.DEGRADATION)
        breaker = self._find(node_ids.CIRCUIT_BREAKER)
        down = "degradation is down" if self.root is not None else "starting"
        snap = degradation.snapshot() if degradation is not None else {
            "mode": "UNKNOWN", "trading": "HALTED", "gate": {"open": False, "reasons": [down]}}
        tree = self.tree(while_starting=positions)
        session = breaker.session() if breaker is not None else {}
        rows = position_rows(self.config.strategies, self._runtime_reader(), self.services.stops,
                             marks_from_tree(tree), session.get("realized_by_key") or {}) \
            if self.services is not None and positions else []
        document = {
            "node": self.config.node.name,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "uptime_s": round(time.time() - self.started_at, 3),
            "mode": snap["mode"],
            "trading": snap["trading"],
            "gate": snap["gate"],
            "breakers": breaker.statuses() if breaker is not None else [],
            "positions": rows,
            "accounts": account_rows(rows),
            "symbol_positions": self._symbol_positions(),
            "session": {k: v for k, v in session.items() if not k.endswith("_by_key")},
            "venue": {"budget": self.venue.budget.snapshot() if self.venue is not None else None},
            "tree": tree,
        }
        if not positions:
            del document["positions"], document["accounts"]
        return document

    def _symbol_positions(self) -> dict[str, Any]:
        """Per symbol at the last reconcile: the sum of the strategies' recorded quantities
        (`expected`), the venue's net position, their `drift`, and whether it is drift."""
        manager = self._find(node_ids.POSITION_MANAGER)
        if manager is None:
            return {}
        drift = manager.drift
        return {symbol: {**figures, "drifting": symbol in drift,
                         "unexplained_open_orders": drift.get(symbol, {}).get("unexplained_open_orders", 0.0)}
                for symbol, figures in sorted(manager.positions.items())}

    def _journal_since(self, since: float | None) -> list[Any]:
        """Journal entries from `since` on (stream ids are milliseconds), for GET /history."""
        if self.store is None:  # still starting
            return []
        return self.store.journal.since(since)

    def _runtime_reader(self) -> Callable[[str], Runtime | None]:
        """Runtimes for one status document: the engine's cache, else the strategy actor's copy,
        else the store: at the first miss, every runtime neither holds is read in one pipelined
        round trip per 1,000 (not one per strategy: a /status during a 10,000-strategy start
        stays cheap); a store failure gives the store up for the rest of the document."""
        stored: dict[str, Runtime | None | CorruptState] | None = None

        def held(strategy_id: str) -> Runtime | None:
            cached = self.services.runtime_cache.get(strategy_id)
            if cached is not None:
                return cached
            actor = self._find(node_ids.strategy(strategy_id))
            runtime = getattr(actor, "runtime", None) if actor is not None else None
            return runtime if isinstance(runtime, Runtime) else None

        def runtime_of(strategy_id: str) -> Runtime | None:
            nonlocal stored
            runtime = held(strategy_id)
            if runtime is not None:
                return runtime
            if stored is None:
                missing = [s.id for s in self.config.strategies if held(s.id) is None]
                try:
                    stored = self.store.load_runtimes(missing)
                except Exception:  # noqa: BLE001 - Redis down or hung: the document goes without them
                    stored = {}
            found = stored.get(strategy_id)
            return found if isinstance(found, Runtime) else None  # F14: unreadable -> shown without

        return runtime_of

    def _refresh_metrics(self) -> None:
        self.metrics.update_from_status(self.status())

    def command(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run one operator command to its end and say what happened (CommandError: refused, nothing changed)."""
        if self.root is None or self.services is None:
            raise CommandError("the node is still starting; try again when /ready answers", status=503)
        reason = args["reason"]
        if name in ("halt", "resume"):
            snap = getattr(self._require(node_ids.DEGRADATION), name)(reason).get(timeout=COMMAND_TIMEOUT_S)
            return {"applied": True, "mode": snap["mode"], "trading": snap["trading"], "gate": snap["gate"]}
        if name == "breaker-reset":
            return self._reset_breaker(args["name"], reason)
        if name == "chaos-inject":
            return self._inject(args["id"], args["kind"], reason)
        if name.startswith("strategy-"):
            return self._set_strategy(args["id"], name.removeprefix("strategy-"), reason)
        raise CommandError(f"unknown command {name!r}", status=400)

    def _reset_breaker(self, name: str, reason: str) -> dict[str, Any]:
        """`breaker reset NAME`: NAME is a breaker (`rapid_loss`) or a tripped key (`escalation:strategy:s1`)."""
        breaker = self._require(node_ids.CIRCUIT_BREAKER)
        before = {s["name"]: s["state"] for s in breaker.statuses().get(timeout=COMMAND_TIMEOUT_S)}
        kinds = [b.name for b in self.breaker_board]
        if name not in before and name.partition(":")[0] not in kinds:
            known = sorted(set(before) | set(kinds))
            raise CommandError(f"no breaker {name!r}; known breakers: {', '.join(known)}", status=404)
        try:
            after = breaker.reset(name, reason).get(timeout=COMMAND_TIMEOUT_S)
        except KeyError as exc:
            raise CommandError(f"no breaker {name!r}: {exc.args[0] if exc.args else name}", status=404) from None
        states = {s["name"]: s["state"] for s in after}
        closed = BreakerState.CLOSED.value
        state = states.get(name) or states.get(name.partition(":")[0]) or closed
        return {"applied": True, "breaker": name, "state": state, "previous_state": before.get(name, closed)}

    def _inject(self, node_id: str, kind: str, reason: str) -> dict[str, Any]:
        if not injection.enabled():
            raise CommandError("fault injection is off (start the daemon with WARDEN_CHAOS_HOOKS=1 to allow it)",
                               status=403)
        try:
            fault = injection.InjectedFault(kind, seconds=30.0 if kind == "hang" else 0.0)
        except ValueError as exc:
            raise CommandError(str(exc), status=400) from None
        if self.services.directory.ref(node_id) is None:  # ids of strategies name their node too
            node_id = node_ids.strategy(node_id)
        if not self.services.directory.tell(node_id, fault):
            raise CommandError(f"{node_id} is not running", status=404)
        log_event("operator", "chaos_inject", details={"node": node_id, "kind": kind, "reason": reason},
                  level="WARNING", action_taken=f"{kind} injected")
        return {"ok": True, "node": node_id, "kind": kind}

    def _require(self, node_id: str) -> Any:
        actor = self._find(node_id)
        if actor is None:
            raise CommandError(f"{node_id} is not running (restarting?); try again", status=503)
        return actor.actor_ref.proxy()

    def _set_strategy(self, strategy_id: str, action: str, reason: str) -> dict[str, Any]:
        if not any(s.id == strategy_id for s in self.config.strategies):
            known = [s.id for s in self.config.strategies]
            more = f" and {len(known) - MAX_NAMES_SHOWN} more" if len(known) > MAX_NAMES_SHOWN else ""
            raise CommandError(f"no strategy {strategy_id!r} on this node; known strategies: "
                               f"{', '.join(known[:MAX_NAMES_SHOWN]) or 'none'}{more}", status=404)
        if action in ("disable", "enable"):
            self._check_record(strategy_id, action)  # refused before anything is stopped or written
        strategies = self._strategies_supervisor()
        child_id = node_ids.strategy(strategy_id)
        if action in ("stop", "disable"):
            try:
                strategies.terminate_child(child_id).get(timeout=30)
            except NotFound:
                pass
            if action == "disable":
                self._write_status(strategy_id, Status.DISABLED, f"disabled by operator: {reason}")
        elif action in ("start", "enable"):
            if action == "enable":
                self._write_status(strategy_id, Status.ACTIVE, "")
                self.services.directory.tell(node_ids.DEGRADATION, signals.strategy_disabled(strategy_id, False, reason))
                self.services.directory.tell(node_ids.DEGRADATION, signals.strategy_failed(strategy_id, False, reason))
                # F3: enabling a strategy of a paused account is the operator's word that it was re-authed;
                # its other strategies stay paused (runtime status) until each is enabled.
                account = self.config.strategy(strategy_id).account
                self.services.directory.tell(node_ids.DEGRADATION, signals.account_paused(account, False, reason))
                breaker = self._find(node_ids.CIRCUIT_BREAKER)
                if breaker is not None:
                    breaker.actor_ref.proxy().reset(f"escalation:strategy:{strategy_id}", reason).get(timeout=10)
                # Its stop-loss may have been refused while paused (F3), which disarmed the stop.
                arm_stop_if_open(self.services, strategy_id, self.config.strategy(strategy_id).symbol)
            try:
                strategies.restart_child(child_id).get(timeout=30)
            except NotFound:
                strategies.start_child(self._strategy_spec(self.config.strategy(strategy_id))).get(timeout=30)
            except Running:
                # Paused (F3) or aborted (F14) in place: the running incarnation still holds the old
                # status, so enabling means starting it afresh from the record just written.
                actor = self._find(child_id)
                if action == "enable" and actor is not None \
                        and actor.status_details().get("status") != Status.ACTIVE.value:
                    strategies.terminate_child(child_id).get(timeout=30)
                    try:
                        strategies.restart_child(child_id).get(timeout=30)
                    except NotFound:  # a dynamic child is forgotten when terminated
                        strategies.start_child(self._strategy_spec(self.config.strategy(strategy_id))).get(timeout=30)
        log_event("operator", f"strategy_{action}", details={"strategy": strategy_id, "reason": reason},
                  action_taken=f"strategy {action}")
        return {"applied": True, "strategy": strategy_id, "action": action, "state": self._child_state(child_id)}

    def _child_state(self, child_id: str) -> str:
        """The strategy's state in the tree now (`stopped` when the supervisor no longer lists it)."""
        for child in self._strategies_supervisor().which_children().get(timeout=COMMAND_TIMEOUT_S):
            if child["id"] == child_id:
                return str(child["state"])
        return "stopped"

    def _strategies_supervisor(self) -> Any:
        for child in self.root.proxy().which_children().get(timeout=10):
            if child["id"] == "strategies" and child["ref"] is not None:
                return child["ref"].proxy()
        raise CommandError("the strategies supervisor is not running", status=503)

    def _check_record(self, strategy_id: str, action: str) -> None:
        """An operator command that writes the runtime applies fully or not at all (F31): a record
        it cannot read, or a store it cannot reach, refuses it with the reason, nothing changed."""
        try:
            self.store.load_runtime(strategy_id)
        except CorruptState as exc:
            raise CommandError(f"strategy {action} {strategy_id} refused, nothing changed: {exc}; repair or remove "
                               f"the record first (its stop stays armed from the last known runtime)", status=409) from None
        except StoreUnavailable as exc:
            raise CommandError(f"strategy {action} {strategy_id} refused, nothing changed: {exc}", status=503) from None

    def _write_status(self, strategy_id: str, status: Status, reason: str) -> None:
        """One writer per runtime: through the pipeline's per-strategy serialization, so an order
        finishing meanwhile can neither undo this command nor be undone by it."""
        try:
            self.services.pipeline.update_runtime(
                strategy_id, lambda runtime: replace(runtime, status=status, reason=reason))
        except RuntimeBusy as busy:
            raise CommandError(f"{busy}; try again when it has finished", status=409) from None
