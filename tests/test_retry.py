"""The provider-failure rules: which failures wait, switch model, or stop the run."""

from __future__ import annotations

from daemon.service.retry import GiveUp, Retry, RetryPolicy


def test_auth_gives_up_at_once_with_what_to_fix() -> None:
    verdict = RetryPolicy().decide("auth", "401 invalid x-api-key", None, now=0)
    assert isinstance(verdict, GiveUp) and "credentials" in verdict.message


def test_quota_switches_to_the_fallback_once_then_gives_up() -> None:
    policy = RetryPolicy(fallback_model="small")
    first = policy.decide("quota", "insufficient_quota", None, now=0)
    assert isinstance(first, Retry) and first.switch_model == "small" and first.wait_s == 0
    assert isinstance(policy.decide("quota", "insufficient_quota", None, now=1), GiveUp)
    assert isinstance(RetryPolicy().decide("quota", "q", None, now=0), GiveUp)


def test_rate_limit_honours_retry_after_and_backs_off_without_it() -> None:
    policy = RetryPolicy(base_wait_s=10)
    assert policy.decide("rate_limit", "429", 3.0, now=0) == Retry(
        3.0, note="rate limited; retrying in 3s"
    )
    waits = [policy.decide("rate_limit", "429", None, now=0).wait_s for _ in range(3)]  # type: ignore[union-attr]
    assert waits == [20, 40, 80]


def test_rate_limit_budget_ends_the_wait() -> None:
    policy = RetryPolicy(base_wait_s=100, max_wait_s=100, rate_limit_budget_s=250)
    assert isinstance(policy.decide("rate_limit", "429", None, now=0), Retry)
    assert isinstance(policy.decide("rate_limit", "429", None, now=0), Retry)
    assert isinstance(policy.decide("rate_limit", "429", None, now=0), GiveUp)
    policy.new_experiment()
    assert isinstance(policy.decide("rate_limit", "429", None, now=0), Retry)


def test_generic_failures_stop_only_when_bunched() -> None:
    policy = RetryPolicy(max_failures=3, window_s=600, base_wait_s=1)
    assert isinstance(policy.decide("transient", "502", None, now=0), Retry)
    assert isinstance(policy.decide("other", "boom", None, now=10), Retry)
    verdict = policy.decide("transient", "502", None, now=20)
    assert isinstance(verdict, GiveUp) and "3 agent failures" in verdict.message

    spread = RetryPolicy(max_failures=3, window_s=600, base_wait_s=1)
    for hour in range(5):  # one failure an hour never stops the run
        assert isinstance(spread.decide("transient", "502", None, now=hour * 3600), Retry)
