"""Issue 10, case 11: strategies sharing a symbol share the venue's net position. Per symbol, the
sum of the strategies' recorded quantities against the venue's net position is shown in the
status document and the `status` CLI; a drift is alerted (webhook) once and closes the symbol's
entries until explained. The real daemon, Redis and the simulated exchange."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chaos.harness import ROOT, Cluster, StrategySpec, wait_for
from runtime.venue import BinanceFuturesConnector
from tests.webhook_receiver import Receiver


def net(c: Cluster) -> dict:
    return (c.status().get("symbol_positions") or {}).get("BTCUSDT") or {}


def drift_alerts(receiver: Receiver) -> list[dict]:
    return [b for b in receiver.bodies if b["event"] == "reconcile_drift"]


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_case11_symbol_drift_is_shown_alerted_once_and_closes_entries_until_explained(monkeypatch) -> None:
    receiver = Receiver()
    monkeypatch.setenv("WARDEN_TEST_WEBHOOK", receiver.url)
    strategies = [StrategySpec("d1", buy_at="+1s"), StrategySpec("d2", quantity=0.02, buy_at="+1s")]
    try:
        with Cluster("drift", strategies, extra_toml='[alerts]\nwebhook_url_env = "WARDEN_TEST_WEBHOOK"',
                     settings={"venue": "reconcile_every_s = 0.5"}) as c:
            c.start_with_positions("d1", "d2")
            agreed = wait_for(lambda: (n := net(c)).get("expected") == pytest.approx(0.03) and n, 20,
                              "a reconcile with both positions")
            assert agreed["venue"] == pytest.approx(0.03) and not agreed["drifting"], \
                f"the sum of the strategies' quantities and the venue's net position are shown per symbol: {agreed}"

            manual = BinanceFuturesConnector(c.exchange.rest_url, c.exchange.api_key, c.exchange.api_secret)
            try:
                assert manual.place_order("BTCUSDT", "BUY", "MARKET", 0.005, "manual-1").ok  # not any strategy's
                drifted = wait_for(lambda: (n := net(c)).get("drifting") and n, 20, "the drift seen by a reconcile")
                assert (drifted["expected"], drifted["venue"], drifted["drift"]) == \
                    (pytest.approx(0.03), pytest.approx(0.035), pytest.approx(0.005)), drifted
                wait_for(lambda: c.entries_open("BTCUSDT") is False, 10, "drift closes the symbol's entries")
                alert = wait_for(lambda: drift_alerts(receiver), 20, "the drift posted to the webhook")[0]
                assert alert["details"]["symbol"] == "BTCUSDT" and alert["details"]["drift"] == pytest.approx(0.005)
                shown = subprocess.run([sys.executable, "run.py", "status", "--url", f"http://127.0.0.1:{c.status_port}"],
                                       cwd=ROOT, capture_output=True, text=True, timeout=30).stdout
                assert "net BTCUSDT: strategies 0.03, venue 0.035, drift +0.005" in shown and "DRIFT" in shown, shown
                last_reconcile = c.node("position-manager")["details"]["last_reconcile_at"]
                wait_for(lambda: c.node("position-manager")["details"]["last_reconcile_at"] > last_reconcile + 1.0,
                         20, "more reconciles while the drift is unchanged")

                assert manual.place_order("BTCUSDT", "SELL", "MARKET", 0.005, "manual-2", reduce_only=True).ok
                wait_for(lambda: not net(c).get("drifting") and c.entries_open("BTCUSDT"), 20,
                         "explained: the symbol agrees again and its entries reopen")
            finally:
                manual.close()
            assert len(drift_alerts(receiver)) == 1, "one alert per drift, not one per reconcile round"
    finally:
        receiver.close()
