"""Unit tests for redrive.queue.retry: backoff schedule, jitter bounds, Retry-After floor and attempt limits."""

from __future__ import annotations

from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redrive.failures.classify import Failure, permanent, transient
from redrive.queue.retry import RetryDecision, RetryPolicy, decide

NO_JITTER = RetryPolicy(jitter="none")
FLAKY = transient("http_503", "HTTP 503 Service Unavailable from the target")
BROKEN = permanent("http_404", "HTTP 404 Not Found from the target")
HUGE_ATTEMPTS = [1_100, 10**6, 10**18, 2**63]


def with_retry_after(seconds: float) -> Failure:
    return Failure("transient", "http_429", "HTTP 429 Too Many Requests from the target", retry_after=seconds)


def test_defaults_match_the_design() -> None:
    assert RetryPolicy() == RetryPolicy(max_attempts=8, base=2.0, factor=2.0, max_delay=600.0, jitter="full")


def test_schedule_without_jitter() -> None:
    schedule = [NO_JITTER.backoff(attempt, 0.5) for attempt in range(1, 13)]
    assert schedule == [2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600, 600]


def test_schedule_with_other_parameters() -> None:
    policy = RetryPolicy(base=1.0, factor=3.0, max_delay=100.0, jitter="none")
    assert [policy.backoff(a, 0.0) for a in range(1, 7)] == [1, 3, 9, 27, 81, 100]


def test_constant_backoff_with_factor_one() -> None:
    policy = RetryPolicy(base=5.0, factor=1.0, jitter="none")
    assert {policy.backoff(a, 0.0) for a in (1, 2, 50, 10**9)} == {5.0}


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"), [(1, 0.0, 0.0), (1, 0.5, 1.0), (3, 0.25, 2.0), (20, 0.5, 300.0)]
)
def test_full_jitter_scales_the_ceiling(attempt: int, rand: float, expected: float) -> None:
    assert RetryPolicy().backoff(attempt, rand) == expected


@settings(database=None)
@given(
    attempt=st.integers(min_value=1, max_value=10**20),
    rand=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_full_jitter_stays_within_the_ceiling(attempt: int, rand: float) -> None:
    policy = RetryPolicy()
    ceiling = NO_JITTER.backoff(attempt, rand)
    delay = policy.backoff(attempt, rand)
    assert 0.0 <= delay <= ceiling <= policy.max_delay
    assert ceiling == policy.ceiling(attempt)


@pytest.mark.parametrize("rand", [-0.5, 1.5])
def test_out_of_range_rand_is_clamped(rand: float) -> None:
    assert 0.0 <= RetryPolicy().backoff(4, rand) <= 16.0


@pytest.mark.parametrize("attempt", HUGE_ATTEMPTS)
@pytest.mark.parametrize("jitter", ["full", "none"])
def test_huge_attempt_numbers_do_not_overflow(attempt: int, jitter: Literal["full", "none"]) -> None:
    policy = RetryPolicy(jitter=jitter)
    assert policy.backoff(attempt, 0.999) <= 600.0
    assert RetryPolicy(max_attempts=2**64, jitter="none").backoff(attempt, 0.0) == 600.0
    decision = decide(RetryPolicy(max_attempts=2**64), attempt=attempt, failure=FLAKY, rand=0.5)
    assert decision == RetryDecision("retry", 300.0)


def test_huge_base_is_capped() -> None:
    assert RetryPolicy(base=1e308, factor=10.0, jitter="none").backoff(3, 0.0) == 600.0


def test_success() -> None:
    assert decide(RetryPolicy(), attempt=1, failure=None, rand=0.3) == RetryDecision("succeeded")
    assert decide(RetryPolicy(), attempt=99, failure=None, rand=0.3) == RetryDecision("succeeded", None)


@pytest.mark.parametrize("attempt", [1, 4, 8, 100])
def test_permanent_fails_at_once(attempt: int) -> None:
    assert decide(RetryPolicy(), attempt=attempt, failure=BROKEN, rand=0.3) == RetryDecision("failed")


@pytest.mark.parametrize(
    ("max_attempts", "attempt", "verdict"),
    [
        (8, 1, "retry"),
        (8, 7, "retry"),
        (8, 8, "dead_letter"),
        (8, 9, "dead_letter"),
        (1, 1, "dead_letter"),
        (2, 1, "retry"),
        (2, 2, "dead_letter"),
    ],
)
def test_max_attempts_boundary(max_attempts: int, attempt: int, verdict: str) -> None:
    decision = decide(RetryPolicy(max_attempts=max_attempts), attempt=attempt, failure=FLAKY, rand=0.5)
    assert decision.verdict == verdict
    assert (decision.delay is not None) is (verdict == "retry")


def test_retry_delay_follows_backoff() -> None:
    assert decide(NO_JITTER, attempt=3, failure=FLAKY, rand=0.0) == RetryDecision("retry", 8.0)
    assert decide(RetryPolicy(), attempt=3, failure=FLAKY, rand=0.0) == RetryDecision("retry", 0.0)


@pytest.mark.parametrize(
    ("attempt", "retry_after", "expected"),
    [
        (1, 30.0, 30.0),  # Retry-After above the backoff wins
        (1, 1.0, 2.0),  # backoff above Retry-After wins
        (5, 0.0, 32.0),
        (9, 3600.0, 3600.0),  # the floor may exceed max_delay (classify already capped it at 24 h)
        (9, 86400.0, 86400.0),
    ],
)
def test_retry_after_is_a_floor(attempt: int, retry_after: float, expected: float) -> None:
    policy = RetryPolicy(max_attempts=10, jitter="none")
    decision = decide(policy, attempt=attempt, failure=with_retry_after(retry_after), rand=0.5)
    assert decision == RetryDecision("retry", expected)


def test_retry_after_floor_applies_under_full_jitter() -> None:
    decision = decide(RetryPolicy(), attempt=1, failure=with_retry_after(45.0), rand=0.0)
    assert decision == RetryDecision("retry", 45.0)


def test_retry_after_does_not_extend_the_attempt_budget() -> None:
    decision = decide(RetryPolicy(), attempt=8, failure=with_retry_after(10.0), rand=0.5)
    assert decision == RetryDecision("dead_letter")


@settings(database=None)
@given(
    attempt=st.integers(min_value=1, max_value=50),
    rand=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    retry_after=st.one_of(st.none(), st.floats(min_value=0.0, max_value=86400.0)),
)
def test_retry_delay_bounds(attempt: int, rand: float, retry_after: float | None) -> None:
    policy = RetryPolicy(max_attempts=100)
    failure = Failure("transient", "timeout", "The request to the target timed out", retry_after=retry_after)
    decision = decide(policy, attempt=attempt, failure=failure, rand=rand)
    assert decision.verdict == "retry"
    assert decision.delay is not None
    assert (retry_after or 0.0) <= decision.delay <= max(policy.max_delay, retry_after or 0.0)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base": -1.0}, {"max_delay": -1.0}, {"factor": 0.5}, {"jitter": "equal"}],
)
def test_invalid_policies_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
