"""The nemesis schedule is a pure function of the seed, combines faults, and stays in its window."""

from __future__ import annotations

from collections import Counter

import pytest

from chaos.soak.faults import sim_fault
from chaos.soak.nemesis import CATALOGUE, KINDS, market_moves, overlapping, schedule
from runtime.config import VenueConfig
from runtime.simexchange.faults import MAX_LATE_EXECUTION_S


def test_same_seed_same_faults_at_the_same_offsets() -> None:
    assert schedule(7, 600) == schedule(7, 600), "the schedule replays exactly for one seed"
    assert market_moves(7, 600) == market_moves(7, 600)
    assert schedule(7, 600) != schedule(8, 600)


def test_ten_minutes_draw_from_the_whole_catalogue_one_at_a_time_and_overlapping() -> None:
    kinds: Counter[str] = Counter()
    for seed in range(1, 6):
        events = schedule(seed, 600)
        kinds.update(e.kind for e in events)
        assert overlapping(events) >= 5, f"seed {seed}: faults must combine, not only come one at a time"
        assert len(events) - overlapping(events) >= 5, f"seed {seed}: and some come alone"
    assert set(kinds) == set(KINDS), f"every fault kind is drawn ({set(KINDS) - set(kinds)} never)"


@pytest.mark.parametrize("seed", [1, 2, 3, 99])
def test_faults_stay_in_the_window_and_one_group_never_overlaps_itself(seed: int) -> None:
    events = schedule(seed, 300, warmup_s=5.0, quiet_s=30.0)
    assert all(5.0 <= e.start_s and e.end_s <= 270.0 + 1e-6 for e in events), "every fault heals before the quiet end"
    by_group: dict[str, list[tuple[float, float]]] = {}
    for e in events:
        by_group.setdefault(KINDS[e.kind].group, []).append((e.start_s, e.end_s))
    for group, spans in by_group.items():
        spans.sort()
        assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:])), f"{group} faults overlap each other"


def test_a_restricted_catalogue_draws_only_those_kinds() -> None:
    events = schedule(5, 600, kinds=("daemon_kill", "ws_drop"))
    assert events and {e.kind for e in events} <= {"daemon_kill", "ws_drop"}
    with pytest.raises(ValueError, match="unknown fault kinds"):
        schedule(5, 60, kinds=("meteor",))


def test_every_simple_kind_maps_to_a_simulator_fault_or_a_documented_candidate() -> None:
    simulator_side = {"ws_drop", "ws_stall", "ws_gap", "ws_corrupt", "http_429", "http_418", "unknown_503",
                      "internal_error", "clock_skew", "price_spike"}
    assert all(sim_fault(kind) == kind for kind in simulator_side), "the simulator has these under our names"
    assert {k.name for k in CATALOGUE} >= simulator_side


def test_issue14_unknown_late_never_draws_beyond_the_simulators_horizon() -> None:
    """The engine's settle window covers the simulator's documented horizon; the nemesis stays within it."""
    delays = [e.params["execute_after_s"] for seed in range(1, 40) for e in schedule(seed, 1800)
              if e.kind == "unknown_late"]
    assert delays and max(delays) <= MAX_LATE_EXECUTION_S < VenueConfig().settle_window_s
