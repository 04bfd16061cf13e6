"""The quick chaos subset that runs in `make test`: the real daemon, a real Redis, the simulated exchange.

Each case runs the same scenario `make chaos` runs, and fails with the invariant that broke.
"""

from __future__ import annotations

import pytest

from chaos import scenarios  # noqa: F401 - registers the scenarios
from chaos.scenario import run

QUICK = ["kill-daemon", "redis-down", "feed-drop", "sigterm", "strategy-hang"]


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", QUICK)
def test_chaos_scenario(name: str) -> None:
    result = run(name)
    assert result.passed, f"{result.row} {name}: invariant broken: {result.failures}"
    assert result.duplicates == 0 and result.lost == 0
