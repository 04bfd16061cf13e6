"""Issue 14, "the checker is itself tested", in `make test`: the real daemon runs with a planted
bug (it resends an order in doubt without looking it up first), and a short soak on a fixed seed
must report I1 for it. The full set (every planted bug, with its control run) is `make soak-planted`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.soak.planted import PlantedRun, run_planted

# seed 1: hold_reply (executes, reply held 3.5 s past the 1 s client timeout) from +8.2 s; a Trader's
# order times out and the planted bug resends its client id at once: a second execution of one id
QUICK = PlantedRun("resend_without_lookup", "I1", seed=1, minutes=0.4, strategies=8, faults=("order_timeout",))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_planted_resend_without_lookup_fails_the_soak(tmp_path: Path) -> None:
    outcome = run_planted(QUICK, tmp_path)
    assert outcome.caught, ("the soak's checker reports I1 (one intent -> at most one executed order) when the engine "
                            f"resends without a lookup: {outcome.line()}")
    assert any("executed 2 times" in v.message or "exited" in v.message for v in outcome.caught), outcome.line()
    assert outcome.detect_s is not None and outcome.detect_s < QUICK.minutes * 60, outcome.line()
