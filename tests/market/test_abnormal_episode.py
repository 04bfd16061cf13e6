"""F13 abnormal-move episodes, driven with explicit times: each episode reaches the breaker
once, and the data validates once the move is over (not a window later)."""

from __future__ import annotations

from actors.core.abnormal_episode import AbnormalEpisode

T0 = 1_000.0


def test_f13_first_flag_opens_an_episode_the_breaker_must_hear_of():
    episode = AbnormalEpisode(quiet_s=3.0)
    assert not episode.report_due(T0) and episode.validates(True)
    episode.flagged(T0)
    assert episode.open and episode.report_due(T0 + 0.1), "an unreported episode is due"
    assert not episode.validates(True), "no validity while a move is under way"


def test_f13_the_trackers_alert_covers_the_episode():
    episode = AbnormalEpisode(quiet_s=3.0)
    episode.flagged(T0)
    episode.alert_delivered()
    assert not episode.report_due(T0 + 0.1), "told once, not twice"


def test_f13_episode_ends_quiet_s_after_its_last_flag_and_then_validates():
    episode = AbnormalEpisode(quiet_s=3.0)
    episode.flagged(T0)
    episode.alert_delivered()
    episode.flagged(T0 + 2.0)  # the move goes on: the episode is extended, not reopened
    assert episode.reported and not episode.report_due(T0 + 4.9)
    assert episode.open and not episode.validates(True)
    assert not episode.report_due(T0 + 5.0) and not episode.open
    assert episode.validates(True), "quiet for quiet_s: the data validates"
    assert not episode.validates(False), "only a LIVE symbol validates"


def test_f13_a_new_move_after_the_episode_must_be_reported_again():
    """The tracker alerts once a minute; a second episode inside that minute is the feed's to report."""
    episode = AbnormalEpisode(quiet_s=3.0)
    episode.flagged(T0)
    episode.alert_delivered()
    assert not episode.report_due(T0 + 3.5)
    episode.flagged(T0 + 10.0)
    assert episode.report_due(T0 + 10.0), "a new episode is due although the first was reported"
    episode.alert_delivered()
    assert not episode.report_due(T0 + 10.1)
