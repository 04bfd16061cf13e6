"""Issue 15, alerts: `[alerts] webhook_url_env` posts JSON for breaker trips, mode changes,
SAFETY_ABORT, unprotected positions and drift; retries with backoff off the logging thread
and never blocks it. Against a real HTTP receiver on 127.0.0.1."""
from __future__ import annotations

import pytest

from chaos.harness import wait_for
from runtime.alerts import WebhookAlerter
from runtime.config import AlertsConfig, ConfigError, parse_config
from runtime.preflight import preflight
from runtime.logging import log_event
from tests.webhook_receiver import Receiver


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def alerter_for(receiver: Receiver, **kw) -> WebhookAlerter:
    return WebhookAlerter(receiver.url, "node-a", backoff_s=0.01, **kw).start()


def test_issue15_alert_events_are_posted_as_json_and_others_are_not(receiver):
    alerter = alerter_for(receiver)
    try:
        log_event("circuit-breaker", "breaker_tripped", level="ERROR",
                  details={"name": "rapid_loss", "reason": "session loss 1200 > 10%"}, action_taken="halt, flatten")
        log_event("degradation", "transition", details={"kind": "gate", "scope": "symbol:BTCUSDT", "from": "OPEN",
                                                        "to": "CLOSED", "cause": "feed"})  # not a mode change
        log_event("degradation", "transition", level="ERROR",
                  details={"kind": "mode", "from": "NORMAL", "to": "EMERGENCY", "cause": "rapid_loss"})
        log_event("execution-engine", "safety_abort", level="ERROR",
                  details={"strategy": "s1", "reason": "-2019 margin"}, action_taken="strategy failed")
        log_event("position-manager", "reconcile_drift", level="ERROR",
                  details={"symbol": "ETHUSDT", "expected": 0.2, "venue": 0.0})
        log_event("store", "unprotected_position", level="ERROR", details={"strategy": "s2", "symbol": "BTCUSDT"})
        log_event("execution-engine", "order_filled", details={"client_order_id": "s1:e1"})
        wait_for(lambda: len(receiver.bodies) >= 5, 10, "five alerts delivered")
    finally:
        alerter.stop()
    assert [b["event"] for b in receiver.bodies] == [
        "breaker_tripped", "transition", "safety_abort", "reconcile_drift", "unprotected_position"]
    first = receiver.bodies[0]
    assert first["node"] == "node-a" and first["level"] == "ERROR" and first["details"]["name"] == "rapid_loss"
    assert first["summary"] == "breaker rapid_loss tripped: session loss 1200 > 10%"
    assert receiver.bodies[1]["summary"] == "mode NORMAL -> EMERGENCY: rapid_loss"


def test_issue15_a_failing_webhook_is_retried_with_backoff():
    receiver = Receiver(fail_first=2)
    alerter = alerter_for(receiver)
    try:
        log_event("circuit-breaker", "breaker_tripped", details={"name": "resources", "reason": "cpu"})
        wait_for(lambda: receiver.bodies, 10, "the alert delivered on the third attempt")
    finally:
        alerter.stop()
        receiver.close()
    assert receiver.attempts == 3 and alerter.sent == 1 and alerter.failed == 0


def test_issue15_a_dead_webhook_gives_up_and_logs_it(captured_logs):
    receiver = Receiver(fail_first=10**6)
    alerter = alerter_for(receiver, max_attempts=3)
    try:
        log_event("circuit-breaker", "breaker_tripped", details={"name": "resources", "reason": "cpu"})
        wait_for(lambda: alerter.failed == 1, 10, "the alert given up")
    finally:
        alerter.stop()
        receiver.close()
    assert receiver.attempts == 3
    assert any('"event":"alert_not_delivered"' in line for line in captured_logs)


def test_issue15_a_hung_webhook_never_blocks_the_logging_thread(receiver):
    receiver.release.clear()  # the receiver holds every request until released
    alerter = alerter_for(receiver, max_queue=10)
    try:
        for i in range(50):  # would hang here if the sink posted on this thread
            log_event("circuit-breaker", "breaker_tripped", details={"name": f"b{i}", "reason": "x"})
        assert receiver.attempts == 0, "nothing answered yet: the 50 calls above did not wait for the webhook"
        assert alerter.dropped >= 39, "a full queue drops the oldest alerts"
        receiver.release.set()
        wait_for(lambda: receiver.bodies and receiver.bodies[-1]["details"]["name"] == "b49", 10,
                 "the newest alert delivered")
    finally:
        alerter.stop()
    names = [b["details"]["name"] for b in receiver.bodies]
    assert names[-10:] == [f"b{i}" for i in range(40, 50)], "the newest alerts are the ones kept, in order"
    assert len(names) <= 11, "at most the one already in flight besides the ten queued"


def test_issue15_alerts_config_names_an_env_var_holding_the_url():
    config = parse_config('[alerts]\nwebhook_url_env = "WARDEN_WEBHOOK"\n[feeds]\nsymbols = ["BTCUSDT"]\n', "t.toml", 0)
    assert config.alerts == AlertsConfig("WARDEN_WEBHOOK")
    with pytest.raises(ConfigError, match="WARDEN_WEBHOOK is not set"):
        preflight(config, environ={})
    with pytest.raises(ConfigError, match="http"):
        preflight(config, environ={"WARDEN_WEBHOOK": "ftp://x"})
    checked = preflight(config, environ={"WARDEN_WEBHOOK": "http://127.0.0.1:9/h"})
    assert checked.secret("alerts.webhook_url_env") == "http://127.0.0.1:9/h"
