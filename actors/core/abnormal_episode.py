"""F13 abnormal-move episodes: when the circuit breaker must hear of a move, and when the data validates.

The health tracker flags every update that is more than 20 % away from the last minute's
range (and every depth collapse), and alerts at most once a minute. The feed turns the
flags into *episodes*: one opens at the first flagged update and closes ``quiet_s`` after
the last one. Every episode must reach the breaker once as ``AbnormalPrice``: by the
tracker's alert, or, when that alert is still suppressed by its once-a-minute rule, by
the feed's own. ``PriceValidity`` is true only while the symbol is LIVE with no episode
open, so one step move pauses entries for the breaker's 60 s and no longer.

Pure: times are arguments, nothing is sent from here; the feed actor does the telling.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AbnormalEpisode:
    """The open-or-closed episode of one symbol."""

    quiet_s: float  # an episode closes this long after its last flagged update (> the price cadence)
    open: bool = False
    reported: bool = False  # the breaker has been told AbnormalPrice for the open episode
    last_flagged: float | None = None

    def flagged(self, now: float) -> None:
        """An update was flagged abnormal (price move or depth collapse): open or extend the episode."""
        if not self.open:
            self.open, self.reported = True, False
        self.last_flagged = now

    def alert_delivered(self) -> None:
        """The tracker's own abnormal-price alert reached the breaker."""
        self.reported = True

    def report_due(self, now: float) -> bool:
        """Close the episode once quiet; True while it is open and the breaker has not heard of it."""
        if self.open and self.last_flagged is not None and now - self.last_flagged >= self.quiet_s:
            self.open = False
        return self.open and not self.reported

    def validates(self, live: bool) -> bool:
        """The breaker may lift its pause: the symbol is LIVE and no episode is open."""
        return live and not self.open


__all__ = ["AbnormalEpisode"]
