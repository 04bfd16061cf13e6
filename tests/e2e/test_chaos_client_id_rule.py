"""Chaos scenarios that the stricter simulator (issue 9: Binance's client-id rule) shows are real bugs.

Binance keeps ``newClientOrderId`` unique only among OPEN orders. The F4 scenario
``broker-network`` delays a BUY 1.6 s inside the venue; the engine looks the id
up once (NOT_FOUND: the request has not run yet), re-sends with the same id, the
first send then executes, the order fills, and the re-send is a second order.
The old simulator answered -4116 to the re-send, which Binance would not. Fixed in
issue 10: no resend while the first send may still execute (recvWindow on the venue's
clock; a short recvWindow makes the venue refuse the late arrival with -1021).
"""

from __future__ import annotations

import pytest

from chaos import scenarios  # noqa: F401 - registers the scenarios
from chaos.scenario import run


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_f4_broker_network_delayed_buy_executes_once() -> None:
    result = run("broker-network")
    assert result.passed, f"{result.row} broker-network: invariant broken: {result.failures}"
    assert result.duplicates == 0
