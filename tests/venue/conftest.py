"""Fixtures for the venue tests: a simulated exchange on 127.0.0.1 and a connector pointed at it.

Every exchange here runs fast tickers (20 ms depth, 50 ms mark) and a flat
price unless a test asks otherwise, so assertions do not race a random walk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from runtime.simexchange import SimExchange
from runtime.venue import BinanceFuturesConnector

FAST = {"depth_interval_s": 0.02, "mark_interval_s": 0.05, "volatility": 0.0, "liquidation_rate": 0.0}


@pytest.fixture
def make_exchange() -> Iterator[Callable[..., SimExchange]]:
    """Factory: ``make_exchange(volatility=0.002)``; every exchange made is stopped after the test."""
    started: list[SimExchange] = []

    def make(symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"), **overrides: Any) -> SimExchange:
        kwargs = {**FAST, **overrides}
        prices = kwargs.pop("start_prices", {"BTCUSDT": 100_000.0, "ETHUSDT": 3_000.0})
        exchange = SimExchange(symbols, {s: p for s, p in prices.items() if s in symbols},
                               seed=kwargs.pop("seed", 7), **kwargs)
        started.append(exchange.start())
        return exchange

    yield make
    for exchange in started:
        exchange.stop()


@pytest.fixture
def exchange(make_exchange: Callable[..., SimExchange]) -> SimExchange:
    """A started exchange with BTCUSDT at 100,000 and ETHUSDT at 3,000, flat prices."""
    return make_exchange()


@pytest.fixture
def make_connector() -> Iterator[Callable[..., BinanceFuturesConnector]]:
    """Factory for connectors (closed after the test). The default timeout is generous: on a loaded
    machine 0.5 s turned a happy path's exchangeInfo into a timeout; tests of timeouts pass their own."""
    made: list[BinanceFuturesConnector] = []

    def make(exchange: SimExchange, **overrides: Any) -> BinanceFuturesConnector:
        kwargs = {"timeout_s": 10.0, **overrides}
        connector = BinanceFuturesConnector(exchange.rest_url, kwargs.pop("api_key", exchange.api_key),
                                            kwargs.pop("api_secret", exchange.api_secret), **kwargs)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


@pytest.fixture
def connector(exchange: SimExchange, make_connector: Callable[..., BinanceFuturesConnector]) -> BinanceFuturesConnector:
    """A connector with the exchange's key, clock synced and exchangeInfo loaded (as at start)."""
    venue = make_connector(exchange)
    assert venue.server_time().ok and venue.load_exchange_info().ok
    return venue
