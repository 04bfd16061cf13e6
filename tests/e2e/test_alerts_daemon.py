"""Issue 15, alerts end to end: a daemon configured with `[alerts] webhook_url_env` posts a
breaker trip (a strategy crashing in on_start until it is disabled, F15) to a local receiver."""

from __future__ import annotations

import pytest

from chaos.harness import Cluster, StrategySpec, wait_for
from tests.webhook_receiver import Receiver


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_issue15_daemon_posts_a_breaker_trip_to_the_webhook(monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = Receiver()
    monkeypatch.setenv("WARDEN_TEST_WEBHOOK", receiver.url)
    strategies = [StrategySpec("c2", cls="chaos.strategies:Crashy", params={"crash_on_start": True})]
    try:
        with Cluster("alerts", strategies, extra_toml='[alerts]\nwebhook_url_env = "WARDEN_TEST_WEBHOOK"') as c:
            c.start_daemon()
            wait_for(lambda: c.tree_state("strategy:c2") == "disabled", 20, "c2 disabled after crashing on start")
            alert = wait_for(lambda: next((b for b in receiver.bodies if b["event"] == "breaker_tripped"), None), 20,
                             "the breaker trip posted to the webhook")
    finally:
        receiver.close()
    assert alert["details"]["name"] == "escalation:strategy:c2", \
        f"a tripped breaker reaches the operator's webhook with its name: {alert}"
    assert alert["node"] == "chaos-alerts" and alert["summary"].startswith("breaker escalation:strategy:c2 tripped")
