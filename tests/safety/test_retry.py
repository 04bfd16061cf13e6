"""F1-F5: order outcome -> retry action, with injected jitter and explicit attempts."""

from __future__ import annotations

import pytest

from actors.core.retry import OutcomeKind, RetryAction, RetryConfig, RetryPolicy

K = OutcomeKind


def policy(rand: float = 0.0, **kw) -> RetryPolicy:
    return RetryPolicy(RetryConfig(**kw), rand=lambda: rand)


@pytest.mark.parametrize("kind", [K.ACCEPTED, K.FILLED])
def test_success_is_done(kind):
    decision = policy().decide(kind, 1)
    assert decision.action is RetryAction.DONE and not decision.safety_abort


def test_f1_duplicate_client_id_means_the_order_exists():
    decision = policy().decide(K.DUPLICATE, 2, detail="-4116")
    assert decision.action is RetryAction.DONE, "a duplicate is our own earlier send: never send a new order"


def test_f1_unknown_queries_by_client_id_before_any_resend():
    decision = policy().decide(K.UNKNOWN, 1, detail="timeout after 2.0s")
    assert decision.action is RetryAction.LOOKUP_THEN_RETRY
    assert decision.retry_allowed and not decision.safety_abort
    assert "client id" in decision.reason


def test_f1_not_found_retries_with_backoff_1_2_4():
    p = policy(rand=0.0)
    delays = [p.decide(K.NOT_FOUND, attempt).delay for attempt in (1, 2, 3)]
    assert delays == [1.0, 2.0, 4.0]
    assert all(p.decide(K.NOT_FOUND, a).action is RetryAction.RETRY_AFTER for a in (1, 2, 3))


def test_f1_three_retries_then_safety_abort_position_unchanged():
    decision = policy().decide(K.NOT_FOUND, 4)
    assert decision.action is RetryAction.ABORT
    assert decision.safety_abort and not decision.retry_allowed
    assert "position unchanged" in decision.reason


def test_f1_unknown_on_the_last_attempt_is_still_looked_up_first():
    decision = policy().decide(K.UNKNOWN, 4)
    assert decision.action is RetryAction.LOOKUP_THEN_RETRY, "an order that may have filled is never abandoned blind"
    assert not decision.retry_allowed
    assert not decision.safety_abort


def test_f1_jitter_is_injected():
    assert policy(rand=1.0, jitter=0.2).decide(K.NOT_FOUND, 1).delay == pytest.approx(1.2)
    assert policy(rand=0.5, jitter=0.2).decide(K.NOT_FOUND, 3).delay == pytest.approx(4.4)


def test_f2_transient_reject_retries_then_aborts():
    p = policy()
    for attempt in (1, 2, 3):
        decision = p.decide(K.REJECTED_TRANSIENT, attempt, detail="-1001")
        assert decision.action is RetryAction.RETRY_AFTER
    final = p.decide(K.REJECTED_TRANSIENT, 4)
    assert final.action is RetryAction.ABORT and final.safety_abort


def test_f2_permanent_reject_aborts_at_once_with_reason():
    decision = policy().decide(K.REJECTED_PERMANENT, 1, detail="-2019 margin is insufficient")
    assert decision.action is RetryAction.ABORT
    assert decision.safety_abort and not decision.retry_allowed
    assert "-2019 margin is insufficient" in decision.reason


def test_f3_token_invalid_no_retry_pauses_account():
    decision = policy().decide(K.TOKEN_INVALID, 1, detail="-2015")
    assert decision.action is RetryAction.ABORT_ACCOUNT
    assert decision.safety_abort and decision.pause_account and not decision.retry_allowed


def test_f4_network_error_retries_as_f1():
    # the connector reports a connection error before any byte was sent as REJECTED_TRANSIENT
    assert policy().decide(K.REJECTED_TRANSIENT, 1).delay == 1.0


def test_f5_rate_limit_honours_retry_after():
    p = policy()
    assert p.decide(K.RATE_LIMITED, 1, retry_after=7.0).delay == 7.0
    assert p.decide(K.RATE_LIMITED, 1, retry_after=900.0).delay == 60.0, "Retry-After is capped"
    assert p.decide(K.RATE_LIMITED, 2).delay == 2.0, "no Retry-After: exponential backoff"
    assert p.decide(K.RATE_LIMITED, 4, retry_after=1.0).action is RetryAction.ABORT


def test_kinds_accepted_as_strings_and_attempt_is_one_based():
    assert policy().decide("FILLED", 1).action is RetryAction.DONE
    with pytest.raises(ValueError):
        policy().decide("BOGUS", 1)
    with pytest.raises(ValueError):
        policy().decide(K.FILLED, 0)


def test_every_outcome_kind_has_a_decision():
    p = policy()
    for kind in OutcomeKind:
        for attempt in (1, 4):
            decision = p.decide(kind, attempt)
            assert decision.action in RetryAction
            if decision.action is RetryAction.RETRY_AFTER:
                assert decision.delay > 0 and decision.retry_allowed


def test_connector_outcome_words_are_the_same_words():
    venue = pytest.importorskip("runtime.venue.outcomes")
    assert {k.value for k in venue.OutcomeKind} == {k.value for k in OutcomeKind}, \
        "the connector's outcome kinds and the retry policy's must be one vocabulary"
    assert policy().decide(venue.OutcomeKind.UNKNOWN, 1).action is RetryAction.LOOKUP_THEN_RETRY
