"""Issue 14 (seed 4242): when the settle loop looks an order in doubt up again. Pure: the venue
clock is passed in explicitly."""

from __future__ import annotations

from actors.core.settle import FINAL_LOOKUP_MARGIN_S, SettleTiming, lookup_delay, until_next_lookup
from actors.execution import MAX_SETTLE_DELAY_S


def loop_lookups(start_ms: float, final_at_ms: float | None, count: int) -> list[float]:
    """The venue-clock times of the settle loop's lookups (each scheduled from the one before)."""
    times, now = [], start_ms
    for attempt in range(1, count + 1):
        backoff = min(MAX_SETTLE_DELAY_S, lookup_delay(attempt) * 2)
        now += until_next_lookup(backoff, final_at_ms, now) * 1000.0
        times.append(now)
    return times


def test_seed4242_I3_the_settle_loop_looks_up_when_the_not_found_becomes_final():
    """t28:x37 after the restart: the cold start looked at +0.73 s, the loop at +1.15, +1.96, +3.56,
    +6.77, +13.17 s; final at +10.4 s (pending_since + the 12 s settle window): the exit waited 2.7 s
    for the backoff past it."""
    pending_since_ms = 1_000_000.0 - 1_600.0  # +0 is the restart; the send was 1.6 s before
    final_at_ms = SettleTiming().final_not_found_at(pending_since_ms, None)
    assert final_at_ms == 1_010_400.0
    blind = loop_lookups(1_000_730.0, None, 6)  # the loop starts from the cold start's lookup
    assert [round((t - 1_000_000.0) / 1000, 2) for t in blind] == [1.13, 1.93, 3.53, 6.73, 13.13, 23.13], \
        "without the final moment: the backoff alone, far past +10.4 s"
    capped = loop_lookups(1_000_730.0, final_at_ms, 6)
    assert capped[:4] == blind[:4], "before the final moment the backoff is unchanged (no extra lookups)"
    first_after = next(t for t in capped if t >= final_at_ms)
    assert first_after - final_at_ms <= FINAL_LOOKUP_MARGIN_S * 1000.0 + 1e-6, \
        f"I3: a lookup at the moment the NOT_FOUND becomes final: {first_after - final_at_ms:.1f} ms after it"


def test_issue14_never_a_lookup_scheduled_past_the_final_moment_nor_a_spin_after_it():
    final_at_ms = 50_000.0
    assert until_next_lookup(10.0, final_at_ms, 49_000.0) == 1.0 + FINAL_LOOKUP_MARGIN_S, "cut to the final moment"
    assert until_next_lookup(0.4, final_at_ms, 40_000.0) == 0.4, "a shorter backoff stands"
    assert until_next_lookup(6.4, final_at_ms, 50_000.0) == 6.4, \
        "once final, a lookup that found no final answer is retried on its backoff, never in a spin"
    assert until_next_lookup(6.4, None, 0.0) == 6.4, "no pending runtime known: the backoff"
