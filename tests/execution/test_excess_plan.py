"""F29 / issue 14: what corrects a late fill's excess (actors.excess.plan_correction, pure)."""

from __future__ import annotations

import pytest

from actors.excess import Correction, plan_correction


def test_f29_a_late_entry_fill_is_sold_reduce_only_limited_to_the_fill():
    assert plan_correction("BUY", 0.01, expected=0.02, held=0.03) == Correction("SELL", 0.01, True)
    assert plan_correction("BUY", 0.01, expected=0.02, held=0.025) == Correction("SELL", 0.005, True), \
        "limited to the drift the venue shows"


def test_f29_issue14_a_late_exit_fill_out_of_a_siblings_long_is_bought_back_plainly():
    """The net position stays long: a reduce-only BUY would be refused -2022."""
    assert plan_correction("SELL", 0.01, expected=0.02, held=0.01) == Correction("BUY", 0.01, False)
    assert plan_correction("SELL", 0.01, expected=0.01, held=0.0) == Correction("BUY", 0.01, False)


def test_f29_issue14_an_excess_sell_on_a_short_venue_is_bought_back_reduce_only():
    assert plan_correction("SELL", 0.01, expected=0.0, held=-0.01) == Correction("BUY", 0.01, True)
    assert plan_correction("SELL", 0.02, expected=0.005, held=-0.01) == Correction("BUY", 0.015, False), \
        "short by less than the excess: reduce-only would stop at flat"


@pytest.mark.parametrize("side,expected,held", [("BUY", 0.02, 0.02), ("SELL", 0.02, 0.02), ("BUY", 0.02, 0.01),
                                                ("SELL", 0.01, 0.02)])
def test_f29_no_excess_on_the_fills_side_nothing_to_correct(side, expected, held):
    assert plan_correction(side, 0.01, expected=expected, held=held) is None
