"""Per-symbol market-data health: may anyone trust this symbol's data right now?

Rows of the failure matrix this module decides (DESIGN §5):

- F7  feed drop: ``on_disconnected`` -> DISCONNECTED at once (the < 100 ms
  budget is the actor's: it calls this from the close callback).
- F8  feed stall: no message for more than ``heartbeat_timeout`` ->
  DISCONNECTED with ``needs_reconnect`` set, so the actor tears the socket down.
- F10 stale data: data age > ``stale_after`` (1 s) -> STALE; fresh again only
  after ``fresh_updates_to_resume`` (3) consecutive fresh updates.
- F11 timestamp anomaly: event time more than ``future_tolerance`` (5 s) ahead
  of receive time -> the message is rejected; event time going backwards ->
  accepted on its receive time and flagged suspect; repeats -> alert.
- F12 corrupt messages: counted over a rolling window (``CorruptRate``, one per
  symbol, shared by its connections' trackers); a rate above 5 % sets ``reduced`` (the degradation core turns that into REDUCED).
- F13 abnormal price: > 20 % move inside one minute -> ``abnormal_price``
  (the AbnormalPriceBreaker pauses entries); a rolling z-score of returns
  above 5 is flagged; depth falling > 95 % under its recent peak likewise.
- Recovery after a reconnect: the first price/OI are compared with the last
  known ones (> 5 % / > 20 % -> alert), and the symbol stays RECOVERING until
  ``resume_after_clean`` seconds of clean data and 3 fresh updates.

A feed holds two connections (DESIGN §4: /public for depth, /market for prices), each
with its own tracker; ``worst_health`` folds them into the symbol's health, which is
what degradation's gate and the stop index go by.

Times are seconds on one clock chosen by the caller (receive time ``now``;
venue event times converted to the same unit). Pure: no threads, no I/O, no
sleeps; alerts are queued as values and drained with ``take_alerts()``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from enum import Enum


class FeedStatus(str, Enum):
    LIVE = "LIVE"
    STALE = "STALE"
    DISCONNECTED = "DISCONNECTED"
    RECOVERING = "RECOVERING"


@dataclass(frozen=True)
class FeedHealthConfig:
    """Thresholds; defaults are DESIGN §5's numbers (``[feeds]`` config may override)."""

    stale_after: float = 1.0
    heartbeat_timeout: float = 2.0
    fresh_updates_to_resume: int = 3
    future_tolerance: float = 5.0
    anomaly_alert_count: int = 3  # timestamp anomalies inside the window -> alert
    anomaly_alert_window: float = 60.0
    corrupt_window: float = 60.0
    corrupt_rate_limit: float = 0.05
    corrupt_min_messages: int = 20  # no rate judgement on fewer messages than this
    abnormal_move: float = 0.20
    abnormal_window: float = 60.0
    zscore_limit: float = 5.0
    zscore_window: int = 100
    zscore_min_samples: int = 20
    depth_collapse: float = 0.95
    recovery_price_jump: float = 0.05
    recovery_oi_jump: float = 0.20
    resume_after_clean: float = 5.0


@dataclass
class FeedCounters:
    messages: int = 0  # everything the socket delivered, corrupt included
    updates: int = 0  # accepted data updates
    corrupt: int = 0
    future_rejected: int = 0
    backwards: int = 0
    abnormal_price: int = 0
    zscore_outliers: int = 0
    depth_collapses: int = 0
    stalls: int = 0
    disconnects: int = 0
    connects: int = 0
    stale_periods: int = 0


@dataclass(frozen=True)
class Alert:
    """Something an operator should hear about; the actor logs and forwards it."""

    symbol: str
    kind: str  # timestamp_anomalies_repeated, corrupt_rate, abnormal_price, recovery_price_jump, ...
    message: str
    at: float


@dataclass(frozen=True)
class UpdateVerdict:
    """What ``on_update`` decided about one data message."""

    accepted: bool  # False: do not apply it to hot state
    effective_time: float  # the timestamp to store with the data (receive time on anomalies)
    flags: tuple[str, ...] = ()  # future_timestamp, backwards_timestamp, abnormal_price, zscore_outlier, ...


@dataclass(frozen=True)
class FeedHealth:
    """The symbol's health as shown in the status tree and fed to degradation."""

    symbol: str
    status: FeedStatus
    since: float | None  # when the current status began
    data_age: float | None  # seconds since the last accepted update
    reasons: tuple[str, ...]
    reduced: bool  # F12 corrupt rate above the limit -> REDUCED signal
    suspect: bool  # timestamps went backwards recently (F11)
    abnormal_price: bool  # F13 detection inside the last abnormal_window
    needs_reconnect: bool  # F8 stall: the actor should drop and reconnect
    corrupt_rate: float
    counters: FeedCounters

    @property
    def tradable(self) -> bool:
        """Entries on this symbol may be considered (the gate decides the rest)."""
        return self.status is FeedStatus.LIVE


SEVERITY = {FeedStatus.LIVE: 0, FeedStatus.RECOVERING: 1, FeedStatus.STALE: 2, FeedStatus.DISCONNECTED: 3}
"""Worse is higher: blind (STALE, DISCONNECTED) is worse than validating, disconnected worst of all."""


def worst_status(*statuses: FeedStatus) -> FeedStatus:
    """The worst of several connections' statuses (the hot path's cheap form of ``worst_health``)."""
    return max(statuses, key=SEVERITY.__getitem__)


def worst_health(symbol: str, parts: Mapping[str, FeedHealth]) -> FeedHealth:
    """One symbol's health from its connections' (keyed by route): the worst status rules.

    Reasons are prefixed with the route they come from, worst connection first; the
    data age is the oldest; counters are summed; any connection's REDUCED, suspect or
    abnormal flag is the symbol's.
    """
    ordered = sorted(parts.items(), key=lambda item: -SEVERITY[item[1].status])
    worst = ordered[0][1]
    ages = [h.data_age for h in parts.values()]
    counters = FeedCounters(**{f.name: sum(getattr(h.counters, f.name) for h in parts.values())
                               for f in fields(FeedCounters)})
    return FeedHealth(
        symbol=symbol,
        status=worst.status,
        since=worst.since,
        data_age=None if None in ages else max(a for a in ages if a is not None),
        reasons=_route_reasons(ordered),
        reduced=any(h.reduced for h in parts.values()),
        suspect=any(h.suspect for h in parts.values()),
        abnormal_price=any(h.abnormal_price for h in parts.values()),
        needs_reconnect=any(h.needs_reconnect for h in parts.values()),
        corrupt_rate=max(h.corrupt_rate for h in parts.values()),
        counters=counters,
    )


def _route_reasons(ordered: list[tuple[str, FeedHealth]]) -> tuple[str, ...]:
    """``route: reason``, worst route first; a reason both connections share (the symbol's
    corrupt rate, F12) is named once."""
    seen: set[str] = set()
    out = []
    for route, health in ordered:
        for reason in health.reasons:
            if reason not in seen:
                seen.add(reason)
                out.append(f"{route}: {reason}")
    return tuple(out)


class _WindowExtremes:
    """Min and max of (time, value) samples over a sliding time window, amortised O(1)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._min: deque[tuple[float, float]] = deque()
        self._max: deque[tuple[float, float]] = deque()

    def add(self, now: float, value: float) -> None:
        while self._min and self._min[-1][1] >= value:
            self._min.pop()
        self._min.append((now, value))
        while self._max and self._max[-1][1] <= value:
            self._max.pop()
        self._max.append((now, value))

    def expire(self, now: float) -> None:
        for dq in (self._min, self._max):
            while dq and now - dq[0][0] > self.window:
                dq.popleft()

    def extremes(self) -> tuple[float, float] | None:
        if not self._min:
            return None
        return self._min[0][1], self._max[0][1]

    def clear(self) -> None:
        self._min.clear()
        self._max.clear()


class _RollingStats:
    """Mean/stddev of the last ``size`` values."""

    def __init__(self, size: int) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._sum = 0.0
        self._sumsq = 0.0

    def __len__(self) -> int:
        return len(self._values)

    def add(self, value: float) -> None:
        if len(self._values) == self._values.maxlen:
            old = self._values[0]
            self._sum -= old
            self._sumsq -= old * old
        self._values.append(value)
        self._sum += value
        self._sumsq += value * value

    def zscore(self, value: float) -> float | None:
        n = len(self._values)
        if n < 2:
            return None
        mean = self._sum / n
        var = max(self._sumsq / n - mean * mean, 0.0)
        std = math.sqrt(var)
        if std <= 1e-12 * max(1.0, abs(mean)):
            return None  # a flat series cannot say what an outlier is
        return (value - mean) / std

    def clear(self) -> None:
        self._values.clear()
        self._sum = self._sumsq = 0.0


class _RateWindow:
    """Corrupt/total message counts in one-second buckets over a sliding window."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._buckets: deque[list[int]] = deque()  # [second, total, corrupt]
        self.total = 0
        self.corrupt = 0

    def add(self, now: float, corrupt: bool) -> None:
        second = int(math.floor(now))
        if not self._buckets or self._buckets[-1][0] != second:
            self._buckets.append([second, 0, 0])
        bucket = self._buckets[-1]
        bucket[1] += 1
        self.total += 1
        if corrupt:
            bucket[2] += 1
            self.corrupt += 1

    def expire(self, now: float) -> None:
        horizon = math.floor(now) - self.window
        while self._buckets and self._buckets[0][0] <= horizon:
            _, total, corrupt = self._buckets.popleft()
            self.total -= total
            self.corrupt -= corrupt

    def rate(self) -> float:
        return self.corrupt / self.total if self.total else 0.0


class CorruptRate:
    """F12: corrupt / all messages over a sliding window, judged against the 5 % limit.

    One per symbol, shared by the trackers of its two connections: the rate is of the
    feed's messages, so a burst on the low-rate /market connection (a mark a second) is
    weighed against the symbol's whole traffic, as before the route split, and REDUCED
    is raised and alerted once, not once per connection.
    """

    def __init__(self, config: FeedHealthConfig) -> None:
        self.config = config
        self._window = _RateWindow(config.corrupt_window)
        self.reduced = False

    def add(self, now: float, corrupt: bool) -> None:
        self._window.add(now, corrupt)

    def rate(self) -> float:
        return self._window.rate()

    def update(self, now: float) -> bool:
        """Re-judge the window at ``now``; True when the rate has just gone over the limit."""
        cfg = self.config
        self._window.expire(now)
        over = self._window.total >= cfg.corrupt_min_messages and self._window.rate() > cfg.corrupt_rate_limit
        crossed = over and not self.reduced
        self.reduced = over
        return crossed


class FeedHealthTracker:
    """Data health of one symbol, driven by the feed actor's callbacks and a poll.

    Inputs: ``on_connected``, ``on_disconnected``, ``on_update`` (every parsed
    data message), ``on_corrupt`` (every message that failed parse/schema),
    ``on_depth`` (book depth after an update), ``set_book_live`` (order-book
    sequencer LIVE or not), and ``poll(now)`` from the actor's timer. Every
    input returns, and ``health(now)`` computes, a ``FeedHealth``.
    """

    def __init__(self, symbol: str, config: FeedHealthConfig | None = None,
                 corrupt_rate: CorruptRate | None = None) -> None:
        self.symbol = symbol
        self.config = cfg = config or FeedHealthConfig()
        self.counters = FeedCounters()
        self._status = FeedStatus.DISCONNECTED
        self._since: float | None = None
        self._reasons: list[str] = ["not connected yet"]
        self._needs_reconnect = False
        self._last_message: float | None = None
        self._last_update: float | None = None
        self._last_event_time: dict[str, float] = {}
        self._fresh_run = 0
        self._clean_since: float | None = None
        self._book_live = True  # feeds without a book are live by default
        self._alerts: list[Alert] = []
        self._anomalies: deque[float] = deque()
        self._corrupt = corrupt_rate or CorruptRate(cfg)
        self._prices = _WindowExtremes(cfg.abnormal_window)
        self._returns = _RollingStats(cfg.zscore_window)
        self._depth_peak = _WindowExtremes(cfg.abnormal_window)
        self._abnormal_at: float | None = None
        self._anomaly_alerted_at: float | None = None
        self._suspect_at: float | None = None
        self.last_price: float | None = None
        self.last_open_interest: float | None = None
        # F7 recovery: set from on_connected until the clean period has passed.
        self._reconnect_recovery = False
        self._ref_price: float | None = None  # checked once against the first price, then None
        self._ref_oi: float | None = None

    @property
    def status(self) -> FeedStatus:
        """The current status, without building a ``FeedHealth`` (read on every price)."""
        return self._status

    @property
    def reduced(self) -> bool:
        """F12: the corrupt rate is over its limit."""
        return self._corrupt.reduced

    # -- connection ----------------------------------------------------------

    def on_connected(
        self,
        now: float,
        *,
        last_known_price: float | None = None,
        last_known_open_interest: float | None = None,
    ) -> FeedHealth:
        """A socket is up. Data is not trusted until recovery validation passes.

        ``last_known_*`` override what this tracker saw before the drop (a cold
        start passes ``price:{S}`` from Redis); by default the last values seen
        are the reference for the F7 recovery checks.
        """
        self.counters.connects += 1
        self._needs_reconnect = False
        self._last_message = now
        self._fresh_run = 0
        self._clean_since = None
        self._reconnect_recovery = True
        self._ref_price = last_known_price if last_known_price is not None else self.last_price
        self._ref_oi = (
            last_known_open_interest if last_known_open_interest is not None else self.last_open_interest
        )
        # Windows from before the gap would compare prices across it: restart them.
        self._prices.clear()
        self._returns.clear()
        self._depth_peak.clear()
        self._last_event_time.clear()
        self._set(now, FeedStatus.RECOVERING, ["recovering: awaiting clean data"])
        return self.health(now)

    def on_disconnected(self, now: float, reason: str = "connection closed") -> FeedHealth:
        """F7: the socket closed or errored. Entries on this symbol stop now."""
        if self._status is not FeedStatus.DISCONNECTED:
            self.counters.disconnects += 1
        self._fresh_run = 0
        self._clean_since = None
        self._set(now, FeedStatus.DISCONNECTED, [f"disconnected: {reason}"])
        return self.health(now)

    def set_book_live(self, now: float, live: bool) -> FeedHealth:
        """F9: the order book is being rebuilt (False) or is LIVE again (True).

        A symbol whose book is not live cannot be LIVE; it shows RECOVERING.
        Once the book is rebuilt it returns to what the data justifies -- LIVE
        if updates are flowing fresh, else STALE (then 3 fresh updates) --
        with no extra clean period: the connection itself did not fail. During
        a reconnect recovery the clean-period rule still applies.
        """
        self._book_live = live
        if not live and self._status in (FeedStatus.LIVE, FeedStatus.STALE):
            self._set(now, FeedStatus.RECOVERING, ["order book resync"])
        elif live and self._status is FeedStatus.RECOVERING and not self._reconnect_recovery:
            fresh = (
                self._fresh_run >= self.config.fresh_updates_to_resume
                and self._last_update is not None
                and now - self._last_update <= self.config.stale_after
            )
            if fresh:
                self._set(now, FeedStatus.LIVE, [])
            else:
                self._fresh_run = 0
                self._set(now, FeedStatus.STALE, ["stale: awaiting fresh updates after book resync"])
        return self.health(now)

    # -- messages ------------------------------------------------------------

    def on_corrupt(self, now: float, detail: str = "") -> FeedHealth:
        """F12: a message failed parse or schema validation; it is dropped and counted."""
        self._heartbeat(now)
        self.counters.corrupt += 1
        self._corrupt.add(now, corrupt=True)
        self._break_clean_run()
        self._update_corrupt_rate(now)
        return self.health(now)

    def on_update(
        self,
        now: float,
        *,
        event_time: float | None = None,
        price: float | None = None,
        open_interest: float | None = None,
        stream: str = "",
    ) -> UpdateVerdict:
        """One parsed data message received at ``now``.

        ``stream`` keys the backwards-timestamp check, so streams with their
        own clocks (markPrice vs aggTrade) are not compared with each other.
        """
        cfg = self.config
        self._heartbeat(now)
        self._corrupt.add(now, corrupt=False)
        self._update_corrupt_rate(now)
        if self._status is FeedStatus.DISCONNECTED:
            return UpdateVerdict(False, now, ("not_connected",))

        flags: list[str] = []
        effective = event_time if event_time is not None else now
        if event_time is not None and event_time > now + cfg.future_tolerance:
            self.counters.future_rejected += 1
            self._anomaly(now, f"event time {event_time - now:.3f}s in the future")
            self._break_clean_run()
            return UpdateVerdict(False, now, ("future_timestamp",))
        if event_time is not None:
            previous = self._last_event_time.get(stream)
            if previous is not None and event_time < previous:
                self.counters.backwards += 1
                self._suspect_at = now
                self._anomaly(now, f"event time went back {previous - event_time:.3f}s")
                self._break_clean_run()
                flags.append("backwards_timestamp")
                effective = now
            else:
                self._last_event_time[stream] = event_time

        clean = not flags
        if price is not None:
            price_flags = self._check_price(now, price)
            flags.extend(price_flags)
            clean = clean and "abnormal_price" not in price_flags
        if open_interest is not None:
            self._check_recovery_oi(now, open_interest)
            self.last_open_interest = open_interest

        self._fresh_update(now, clean)
        self.counters.updates += 1
        return UpdateVerdict(True, effective, tuple(flags))

    def on_depth(self, now: float, depth: float) -> FeedHealth:
        """F13 depth collapse: ``depth`` (e.g. notional within 1 % of mid) vs its recent peak."""
        self._depth_peak.expire(now)
        extremes = self._depth_peak.extremes()
        self._depth_peak.add(now, depth)
        if extremes is not None:
            peak = extremes[1]
            if peak > 0 and depth < peak * (1.0 - self.config.depth_collapse):
                self.counters.depth_collapses += 1
                self._flag_abnormal(now, f"depth collapsed {1 - depth / peak:.1%} under its 1-min peak")
                self._depth_peak.clear()
                self._depth_peak.add(now, depth)
        return self.health(now)

    # -- time ----------------------------------------------------------------

    def poll(self, now: float) -> FeedHealth:
        """Apply the time-based rules (stall, staleness, clean-period resume)."""
        cfg = self.config
        if (
            self._status is not FeedStatus.DISCONNECTED
            and self._last_message is not None
            and now - self._last_message > cfg.heartbeat_timeout
        ):
            self.counters.stalls += 1
            self._needs_reconnect = True
            silent = now - self._last_message
            self._fresh_run = 0
            self._clean_since = None
            self._set(now, FeedStatus.DISCONNECTED, [f"heartbeat_timeout: no message for {silent:.3f}s"])
        self._check_stale(now)
        self._maybe_resume(now)
        self._update_corrupt_rate(now)
        return self.health(now)

    def health(self, now: float) -> FeedHealth:
        """A snapshot of the current health (does not change state)."""
        cfg = self.config
        reasons = list(self._reasons)
        if self._corrupt.reduced:
            reasons.append(f"corrupt_rate {self._corrupt.rate():.1%} > {cfg.corrupt_rate_limit:.0%}")
        abnormal = self._abnormal_at is not None and now - self._abnormal_at <= cfg.abnormal_window
        if abnormal:
            reasons.append("abnormal_price")
        suspect = self._suspect_at is not None and now - self._suspect_at <= cfg.anomaly_alert_window
        if suspect:
            reasons.append("suspect: backwards timestamps")
        return FeedHealth(
            symbol=self.symbol,
            status=self._status,
            since=self._since,
            data_age=None if self._last_update is None else now - self._last_update,
            reasons=tuple(reasons),
            reduced=self._corrupt.reduced,
            suspect=suspect,
            abnormal_price=abnormal,
            needs_reconnect=self._needs_reconnect,
            corrupt_rate=self._corrupt.rate(),
            counters=replace(self.counters),
        )

    def take_alerts(self) -> list[Alert]:
        """Alerts raised since the last call, oldest first."""
        alerts, self._alerts = self._alerts, []
        return alerts

    # -- internals -----------------------------------------------------------

    def _set(self, now: float, status: FeedStatus, reasons: list[str]) -> None:
        if status is not self._status:
            self._since = now
            if status is FeedStatus.STALE:
                self.counters.stale_periods += 1
        self._status = status
        self._reasons = reasons

    def _heartbeat(self, now: float) -> None:
        self.counters.messages += 1
        self._last_message = now

    def _alert(self, now: float, kind: str, message: str) -> None:
        self._alerts.append(Alert(self.symbol, kind, message, now))

    def _break_clean_run(self) -> None:
        self._fresh_run = 0
        if self._status is FeedStatus.RECOVERING:
            self._clean_since = None

    def _anomaly(self, now: float, message: str) -> None:
        cfg = self.config
        self._anomalies.append(now)
        while self._anomalies and now - self._anomalies[0] > cfg.anomaly_alert_window:
            self._anomalies.popleft()
        quiet = self._anomaly_alerted_at is None or now - self._anomaly_alerted_at > cfg.anomaly_alert_window
        if len(self._anomalies) >= cfg.anomaly_alert_count and quiet:  # one alert per burst, not per message
            self._alert(
                now,
                "timestamp_anomalies_repeated",
                f"{len(self._anomalies)} timestamp anomalies in {cfg.anomaly_alert_window:.0f}s; last: {message}",
            )
            self._anomaly_alerted_at = now

    def _update_corrupt_rate(self, now: float) -> None:
        if self._corrupt.update(now):
            self._alert(now, "corrupt_rate", f"corrupt message rate {self._corrupt.rate():.1%} over "
                                             f"{self.config.corrupt_window:.0f}s")

    def _check_stale(self, now: float) -> None:
        if (
            self._status is FeedStatus.LIVE
            and self._last_update is not None
            and now - self._last_update > self.config.stale_after
        ):
            self._fresh_run = 0
            age = now - self._last_update
            self._set(now, FeedStatus.STALE, [f"stale: data age {age:.3f}s > {self.config.stale_after}s"])

    def _fresh_update(self, now: float, clean: bool) -> None:
        """Count consecutive fresh, clean updates (F10) and track the clean period (F7)."""
        cfg = self.config
        self._check_stale(now)
        if not clean:
            self._break_clean_run()
            self._last_update = now  # accepted data, just not clean
            return
        gap_ok = self._last_update is not None and now - self._last_update <= cfg.stale_after
        # An update after a silence starts a new run: "fresh" means flowing again.
        self._fresh_run = self._fresh_run + 1 if (gap_ok and self._fresh_run) else 1
        if self._status is FeedStatus.RECOVERING and (self._clean_since is None or not gap_ok):
            self._clean_since = now  # silence is not clean data: the clean period restarts
        self._last_update = now
        self._maybe_resume(now)

    def _maybe_resume(self, now: float) -> None:
        cfg = self.config
        if self._fresh_run < cfg.fresh_updates_to_resume:
            return
        if self._last_update is None or now - self._last_update > cfg.stale_after:
            return  # a run that has since gone quiet proves nothing about now
        if self._status is FeedStatus.STALE:
            self._set(now, FeedStatus.LIVE, [])
        elif self._status is FeedStatus.RECOVERING:
            if not self._book_live:
                self._reasons = ["order book resync"]
                return
            if not self._reconnect_recovery:  # recovering only from a book resync
                self._set(now, FeedStatus.LIVE, [])
                return
            if self._clean_since is not None and now - self._clean_since >= cfg.resume_after_clean:
                self._reconnect_recovery = False
                self._ref_price = self._ref_oi = None
                self._set(now, FeedStatus.LIVE, [])
            else:
                clean_for = 0.0 if self._clean_since is None else now - self._clean_since
                self._reasons = [f"recovering: clean for {clean_for:.1f}s of {cfg.resume_after_clean:.1f}s"]

    def _check_price(self, now: float, price: float) -> list[str]:
        cfg = self.config
        flags: list[str] = []
        ref = self._ref_price
        if self._reconnect_recovery and ref is not None:
            self._ref_price = None  # checked once per recovery
            if ref > 0 and abs(price / ref - 1.0) > cfg.recovery_price_jump:
                self._alert(now, "recovery_price_jump",
                            f"price {price} vs last known {ref}: {price / ref - 1.0:+.1%} (possible data gap)")
                flags.append("recovery_price_jump")
        self._prices.expire(now)
        extremes = self._prices.extremes()
        if extremes is not None:
            low, high = extremes
            up = low > 0 and price / low - 1.0 > cfg.abnormal_move
            down = high > 0 and 1.0 - price / high > cfg.abnormal_move
            if up or down:
                self.counters.abnormal_price += 1
                self._flag_abnormal(now, f"price {price} moved > {cfg.abnormal_move:.0%} within "
                                         f"{cfg.abnormal_window:.0f}s (range {low}..{high})")
                flags.append("abnormal_price")
                self._prices.clear()  # one move is one event: later prices compare with the new level
        self._prices.add(now, price)
        if self.last_price is not None and self.last_price > 0 and price > 0:
            ret = math.log(price / self.last_price)
            if len(self._returns) >= cfg.zscore_min_samples:
                z = self._returns.zscore(ret)
                if z is not None and abs(z) > cfg.zscore_limit:
                    self.counters.zscore_outliers += 1
                    flags.append("zscore_outlier")
            self._returns.add(ret)
        self.last_price = price
        return flags

    def _check_recovery_oi(self, now: float, oi: float) -> None:
        ref = self._ref_oi
        if not self._reconnect_recovery or ref is None:
            return
        self._ref_oi = None  # checked once per recovery
        if ref > 0 and abs(oi / ref - 1.0) > self.config.recovery_oi_jump:
            self._alert(now, "recovery_oi_jump",
                        f"open interest {oi} vs last known {ref}: {oi / ref - 1.0:+.1%} (missed liquidations?)")

    def _flag_abnormal(self, now: float, message: str) -> None:
        first = self._abnormal_at is None or now - self._abnormal_at > self.config.abnormal_window
        self._abnormal_at = now
        if first:
            self._alert(now, "abnormal_price", message)


__all__ = [
    "Alert",
    "CorruptRate",
    "FeedCounters",
    "FeedHealth",
    "FeedHealthConfig",
    "FeedHealthTracker",
    "FeedStatus",
    "UpdateVerdict",
    "worst_health",
    "worst_status",
]
