"""Prometheus metrics of one Warden node, in a registry of their own.

`Metrics` owns a `CollectorRegistry` (never the global one, so tests and
several nodes in one process do not collide). Components update the metrics
where the event happens (an order outcome, a latency sample); the gauges that
mirror the status document (actor states, gate, mode, breakers, restarts) can
be refreshed in one call with `update_from_status(status)`, e.g. on scrape.

Names: `warden_<what>[_<unit>]`; labels use the status tree's words
(`node` = node id such as `strategy:s1`, `state`, `breaker`, `symbol`, `kind`).
Updating a metric is a lock + arithmetic: safe from any actor thread.
"""
from __future__ import annotations

import threading
from typing import Any, Iterator

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["Metrics", "NODE_STATES", "ORDER_OUTCOME_KINDS", "MODES", "TRADING_STATES", "LATENCY_BUCKETS_S", "CONTENT_TYPE_LATEST"]

NODE_STATES = ("starting", "running", "restarting", "disabled", "stopped", "killed", "failed", "escalated")
MODES = ("NORMAL", "REDUCED", "EMERGENCY", "HARD_SHUTDOWN")
TRADING_STATES = ("ACTIVE", "REDUCING", "HALTED")
# Tick crossing a stop -> order on the wire: the budget is 2-5 ms p99 (DESIGN §6), so the
# buckets are dense below a few milliseconds.
LATENCY_BUCKETS_S = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005,
    0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)
BREAKER_OK_STATES = frozenset({"closed", "ok", "armed"})
# The pipeline's verdicts (actors.pipeline.Verdict), lower-cased.
ORDER_OUTCOME_KINDS = ("filled", "refused", "safety_abort", "account_paused", "unknown", "cancelled")


class Metrics:
    """All metrics of the spec. Attributes are the prometheus_client objects themselves."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.restarts = Counter("warden_restarts", "Restarts of a supervised node", ["node"], registry=r)
        self.actor_state = Gauge(
            "warden_actor_state", "1 for the node's current state, 0 for the others", ["node", "state"], registry=r
        )
        self.gate_open = Gauge("warden_gate_open", "1 when the trading gate admits entries", registry=r)
        self.mode = Enum("warden_mode", "Degradation mode", states=list(MODES), registry=r)
        self.trading = Enum("warden_trading", "Trading state", states=list(TRADING_STATES), registry=r)
        self.breaker_tripped = Gauge(
            "warden_breaker_tripped", "1 while the circuit breaker is tripped", ["breaker"], registry=r
        )
        self.feed_age = Gauge(
            "warden_feed_age_seconds", "Age of the newest market data per symbol", ["symbol"], registry=r
        )
        self.order_outcomes = Counter(
            "warden_order_outcomes",
            "Order results by kind: " + ", ".join(ORDER_OUTCOME_KINDS) + " (rejects and timeouts end as "
            "refused, safety_abort or unknown)",
            ["kind"], registry=r,
        )
        self.orders_in_flight = Gauge("warden_orders_in_flight", "Orders sent and not yet answered", registry=r)
        self.orders_unknown = Gauge(
            "warden_orders_unknown", "Orders in state UNKNOWN (counted as filled until settled)", registry=r
        )
        self.reconciliation_drift = Gauge(
            "warden_reconciliation_drift", "Positions/orders that disagree with the venue at the last reconciliation",
            registry=r,
        )
        self.rate_limit_headroom = Gauge(
            "warden_rate_limit_headroom", "Fraction (0..1) of the venue request weight budget still available",
            registry=r,
        )
        self.symbol_gate_open = Gauge(
            "warden_symbol_gate_open", "1 when entries may go out on the symbol", ["symbol"], registry=r
        )
        self.position_quantity = Gauge(
            "warden_position_quantity", "Open quantity per strategy", ["strategy", "symbol"], registry=r
        )
        self.unrealized_pnl = Gauge(
            "warden_unrealized_pnl", "Unrealized P&L per strategy at the last mark", ["strategy"], registry=r
        )
        self.realized_pnl = Gauge(
            "warden_realized_pnl", "Realized P&L per strategy since the daemon started", ["strategy"], registry=r
        )
        self.session_pnl = Gauge(
            "warden_session_pnl", "Session P&L (realized + unrealized) as the rapid-loss breaker counts it", registry=r
        )
        self.session_loss_limit = Gauge(
            "warden_session_loss_limit", "Session loss at which the rapid-loss breaker trips (positive)", registry=r
        )
        self.tick_to_order_latency = Histogram(
            "warden_tick_to_order_latency_seconds", "Tick crossing a stop -> order on the wire",
            buckets=LATENCY_BUCKETS_S, registry=r,
        )
        self._lock = threading.Lock()
        self._seen_restarts: dict[str, int] = {}
        self._seen_nodes: set[str] = set()

    # -- event-side helpers -------------------------------------------------------

    def set_actor_state(self, node: str, state: str) -> None:
        """One-hot over NODE_STATES: `state` 1, the others 0 (an unknown state: all 0)."""
        for s in NODE_STATES:
            self.actor_state.labels(node=node, state=s).set(1 if s == state else 0)

    def record_order_outcome(self, kind: str) -> None:
        """Count one order result; `kind` is a pipeline verdict (any case), e.g. FILLED -> filled."""
        self.order_outcomes.labels(kind=kind.lower()).inc()

    def observe_tick_to_order(self, seconds: float) -> None:
        self.tick_to_order_latency.observe(seconds)

    # -- status mirror ------------------------------------------------------------

    def update_from_status(self, status: dict[str, Any]) -> None:
        """Refresh gate, mode, trading, breakers, actor states and restart counters
        from a status document (DESIGN §7). Restart counters advance by the increase
        of each node's `restarts` since the last call."""
        with self._lock:
            gate = status.get("gate") or {}
            self.gate_open.set(1 if gate.get("open") else 0)
            if status.get("mode") in MODES:
                self.mode.state(status["mode"])
            if status.get("trading") in TRADING_STATES:
                self.trading.state(status["trading"])
            for b in status.get("breakers") or []:
                name = str(b.get("name"))
                tripped = str(b.get("state", "")).lower() not in BREAKER_OK_STATES
                self.breaker_tripped.labels(breaker=name).set(1 if tripped else 0)
            nodes = set()
            tree = status.get("tree")
            for node in walk(tree) if isinstance(tree, dict) else ():
                node_id = str(node.get("id"))
                nodes.add(node_id)
                self.set_actor_state(node_id, str(node.get("state")))
                restarts = int(node.get("restarts") or 0)
                before = self._seen_restarts.get(node_id, 0)
                if restarts > before:
                    self.restarts.labels(node=node_id).inc(restarts - before)
                else:
                    self.restarts.labels(node=node_id)  # make the series visible at 0
                self._seen_restarts[node_id] = restarts
            for gone in self._seen_nodes - nodes:  # removed children: drop their state series
                self._seen_restarts.pop(gone, None)
                for s in NODE_STATES:
                    try:
                        self.actor_state.remove(gone, s)
                    except KeyError:
                        pass
            self._seen_nodes = nodes
            self._update_trading(status)

    def _update_trading(self, status: dict[str, Any]) -> None:
        """Gates per symbol, orders, feeds, drift, the request budget and the money."""
        gate = status.get("gate") or {}
        for symbol, sym_gate in (gate.get("symbols") or {}).items():
            self.symbol_gate_open.labels(symbol=symbol).set(1 if sym_gate.get("open") else 0)
        details = {str(n.get("id")): n.get("details") or {} for n in walk(status.get("tree") or {})}
        uptime = float(status.get("uptime_s") or 0.0)
        for node_id, d in details.items():
            if node_id.startswith("feed:"):  # no data yet: as old as the daemon
                age_ms = d.get("data_age_ms")
                self.feed_age.labels(symbol=node_id[5:]).set(uptime if age_ms is None else age_ms / 1000.0)
        self.orders_in_flight.set(len(details.get("execution-engine", {}).get("in_flight") or []))
        self.reconciliation_drift.set(len(details.get("position-manager", {}).get("drift") or {}))
        budget = (status.get("venue") or {}).get("budget") or {}
        if budget.get("weight_limit"):
            free = 1.0 - float(budget.get("used_weight") or 0) / float(budget["weight_limit"])
            self.rate_limit_headroom.set(0.0 if budget.get("blocked_for_s") else max(0.0, min(1.0, free)))
        session = status.get("session") or {}
        self.orders_unknown.set(int(session.get("unknown_orders") or 0))
        self.session_pnl.set(float(session.get("pnl") or 0.0))
        self.session_loss_limit.set(float(session.get("session_loss_limit") or 0.0))
        for p in status.get("positions") or []:
            self.position_quantity.labels(strategy=p["strategy"], symbol=p["symbol"]).set(p.get("quantity") or 0.0)
            self.unrealized_pnl.labels(strategy=p["strategy"]).set(p.get("unrealized_pnl") or 0.0)
            self.realized_pnl.labels(strategy=p["strategy"]).set(p.get("realized_pnl") or 0.0)

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)

    content_type = CONTENT_TYPE_LATEST


def walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A status tree node and all its descendants, depth first."""
    yield node
    for child in node.get("children") or []:
        if isinstance(child, dict):
            yield from walk(child)
