"""The connector's symbol-filter core (pure): rounding and the checks the venue would apply."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.venue.filters import parse_exchange_info
from runtime.venue.outcomes import MalformedReply

INFO = {"symbols": [{"symbol": "BTCUSDT", "status": "TRADING", "filters": [
    {"filterType": "PRICE_FILTER", "minPrice": "0.1", "maxPrice": "0", "tickSize": "0.1"},
    {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
    {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "120", "stepSize": "0.001"},
    {"filterType": "MIN_NOTIONAL", "notional": "100"}]},
    {"symbol": "OLDUSDT", "status": "SETTLING", "filters": []}]}
BTC = parse_exchange_info(INFO)["BTCUSDT"]


@given(st.decimals(min_value=Decimal("0.001"), max_value=Decimal("1000"), places=6))
def test_quantity_is_rounded_down_never_up(qty: Decimal) -> None:
    rounded = BTC.round_qty(qty)
    assert rounded <= qty and qty - rounded < Decimal("0.001") and rounded % Decimal("0.001") == 0


def test_price_rounds_to_the_tick_and_a_zero_bound_is_disabled() -> None:
    assert BTC.round_price(Decimal("99000.06")) == Decimal("99000.1")
    assert BTC.check(Decimal("0.01"), Decimal("9999999"), market=False, reduce_only=False) is None


@pytest.mark.parametrize("qty,price,market,reduce_only,fragment", [
    (Decimal("0"), None, True, False, "below MARKET_LOT_SIZE minQty"),
    (Decimal("121"), None, True, False, "above MARKET_LOT_SIZE maxQty"),
    (Decimal("121"), Decimal("100000"), False, False, None),  # LOT_SIZE allows 1000 for LIMIT
    (Decimal("0.0009") * 1, Decimal("100000"), False, False, "below LOT_SIZE minQty"),
    (Decimal("0.001"), Decimal("90000"), False, False, "below MIN_NOTIONAL"),
    (Decimal("0.001"), Decimal("90000"), False, True, None),  # reduce-only is exempt
])
def test_check_names_the_filter(qty, price, market, reduce_only, fragment) -> None:  # noqa: ANN001
    reason = BTC.check(qty, price, market=market, reduce_only=reduce_only)
    assert (reason is None) if fragment is None else (fragment in reason), reason


def test_only_trading_symbols_and_missing_filters_are_named() -> None:
    assert set(parse_exchange_info(INFO)) == {"BTCUSDT"}
    with pytest.raises(MalformedReply, match="missing filter LOT_SIZE"):
        parse_exchange_info({"symbols": [{"symbol": "X", "filters": [{"filterType": "PRICE_FILTER"}]}]})
