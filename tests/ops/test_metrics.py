"""runtime.metrics: every metric of the spec, in its own registry, exposed as parseable text."""
from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from runtime.metrics import NODE_STATES, Metrics

from .samples import find


def families(metrics: Metrics) -> dict:
    text = generate_latest(metrics.registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(family, suffix: str = "") -> dict:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name == family.name + suffix}


def test_every_spec_metric_is_exposed_and_parses():
    m = Metrics()
    m.restarts.labels(node="strategy:s1").inc()
    m.set_actor_state("strategy:s1", "restarting")
    m.gate_open.set(0)
    m.mode.state("REDUCED")
    m.trading.state("HALTED")
    m.breaker_tripped.labels(breaker="loss").set(1)
    m.feed_age.labels(symbol="BTCUSDT").set(0.25)
    m.record_order_outcome("filled")
    m.record_order_outcome("unknown")
    m.orders_in_flight.set(3)
    m.orders_unknown.set(1)
    m.reconciliation_drift.set(2)
    m.rate_limit_headroom.set(0.8)
    m.observe_tick_to_order(0.0004)
    m.observe_tick_to_order(0.0031)

    f = families(m)
    assert set(f) >= {
        "warden_restarts", "warden_actor_state", "warden_gate_open", "warden_mode", "warden_trading",
        "warden_breaker_tripped", "warden_feed_age_seconds", "warden_order_outcomes",
        "warden_orders_in_flight", "warden_orders_unknown", "warden_reconciliation_drift",
        "warden_rate_limit_headroom", "warden_tick_to_order_latency_seconds",
    }
    assert samples(f["warden_restarts"], "_total") == {(("node", "strategy:s1"),): 1.0}
    states = samples(f["warden_actor_state"])
    assert states[(("node", "strategy:s1"), ("state", "restarting"))] == 1.0
    assert sum(states.values()) == 1.0 and len(states) == len(NODE_STATES)
    assert samples(f["warden_mode"])[(("warden_mode", "REDUCED"),)] == 1.0
    assert samples(f["warden_mode"])[(("warden_mode", "NORMAL"),)] == 0.0
    assert samples(f["warden_feed_age_seconds"]) == {(("symbol", "BTCUSDT"),): 0.25}
    assert samples(f["warden_order_outcomes"], "_total") == {(("kind", "filled"),): 1.0, (("kind", "unknown"),): 1.0}
    buckets = {float(s.labels["le"]): s.value for s in f["warden_tick_to_order_latency_seconds"].samples
               if s.name.endswith("_bucket")}
    sub_ms = [b for b in buckets if b < 0.001]
    assert len(sub_ms) >= 4, "the latency budget is a few ms: buckets must resolve below 1 ms"
    assert buckets[0.0005] == 1.0 and buckets[0.005] == 2.0


def test_registries_are_independent():
    a, b = Metrics(), Metrics()
    a.orders_in_flight.set(5)
    assert samples(families(b)["warden_orders_in_flight"]) == {(): 0.0}


def test_update_from_status_mirrors_the_document_and_counts_restart_increases(status):
    m = Metrics()
    m.update_from_status(status)
    f = families(m)
    assert samples(f["warden_gate_open"]) == {(): 1.0}
    assert samples(f["warden_restarts"], "_total")[(("node", "strategy:s1"),)] == 1.0
    assert samples(f["warden_restarts"], "_total")[(("node", "feed:BTCUSDT"),)] == 0.0

    s1 = find(status["tree"], "strategy:s1")
    s1["restarts"], s1["state"] = 3, "restarting"
    status["gate"] = {"open": False, "reasons": ["store down"]}
    status["mode"] = "EMERGENCY"
    status["breakers"][0]["state"] = "tripped"
    status["tree"]["children"][4]["children"].pop()  # strategy:s2 deleted
    m.update_from_status(status)
    m.update_from_status(status)  # idempotent: no double counting
    f = families(m)
    assert samples(f["warden_restarts"], "_total")[(("node", "strategy:s1"),)] == 3.0
    assert samples(f["warden_actor_state"])[(("node", "strategy:s1"), ("state", "restarting"))] == 1.0
    assert not any(dict(k)["node"] == "strategy:s2" for k in samples(f["warden_actor_state"]))
    assert samples(f["warden_gate_open"]) == {(): 0.0}
    assert samples(f["warden_mode"])[(("warden_mode", "EMERGENCY"),)] == 1.0
    assert samples(f["warden_breaker_tripped"])[(("breaker", "loss"),)] == 1.0
    assert samples(f["warden_breaker_tripped"])[(("breaker", "price"),)] == 0.0


def test_issue15_every_declared_metric_is_set_from_the_status_document(status):
    """Five metrics were declared and never set, so alerts on them could never fire."""
    m = Metrics()
    m.update_from_status(status)
    m.record_order_outcome("FILLED")
    m.observe_tick_to_order(0.001)
    f = families(m)
    unset = [name for name, fam in f.items() if not fam.samples]
    assert not unset, f"declared but never set: {unset}"
    assert samples(f["warden_feed_age_seconds"]) == {(("symbol", "BTCUSDT"),): 0.12,
                                                     (("symbol", "ETHUSDT"),): 3600.0}
    assert samples(f["warden_orders_in_flight"]) == {(): 1.0}
    assert samples(f["warden_orders_unknown"]) == {(): 1.0}
    assert samples(f["warden_reconciliation_drift"]) == {(): 1.0}
    assert samples(f["warden_rate_limit_headroom"]) == {(): 0.75}
    assert samples(f["warden_order_outcomes"], "_total") == {(("kind", "filled"),): 1.0}
    assert samples(f["warden_symbol_gate_open"]) == {(("symbol", "BTCUSDT"),): 1.0, (("symbol", "ETHUSDT"),): 1.0}
    assert samples(f["warden_position_quantity"])[(("strategy", "s1"), ("symbol", "BTCUSDT"))] == 0.01
    assert samples(f["warden_unrealized_pnl"])[(("strategy", "s1"),)] == 5.0
    assert samples(f["warden_realized_pnl"])[(("strategy", "s1"),)] == -1.5
    assert samples(f["warden_session_pnl"]) == {(): 3.5}
    assert samples(f["warden_session_loss_limit"]) == {(): 10000.0}


def test_issue15_order_outcome_help_lists_the_kinds_it_receives():
    from actors.pipeline import Verdict
    from runtime.metrics import ORDER_OUTCOME_KINDS

    assert set(ORDER_OUTCOME_KINDS) == {v.value.lower() for v in Verdict}
    m = Metrics()
    help_text = families(m)["warden_order_outcomes"].documentation
    assert all(kind in help_text for kind in ORDER_OUTCOME_KINDS)
