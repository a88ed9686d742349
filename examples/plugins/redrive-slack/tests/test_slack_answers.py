"""What each of Slack's answers means: pure values in, pure values out."""

from __future__ import annotations

import pytest

from redrive_slack.answers import HINTS, classify_answer, unreachable
from redrive_slack.testing import STATUS


def test_ok_is_success() -> None:
    assert classify_answer(200, "ok") is None


def test_rate_limited_is_transient_and_carries_retry_after() -> None:
    failure = classify_answer(429, "rate_limited", "30")
    assert failure is not None
    assert (failure.category, failure.code, failure.retry_after) == ("transient", "slack_rate_limited", 30.0)
    assert failure.message == "Slack answered 429 rate_limited"


@pytest.mark.parametrize("value", [None, "soon", "Wed, 21 Oct 2026 07:28:00 GMT", ""])
def test_a_retry_after_that_is_not_seconds_is_ignored(value: str | None) -> None:
    failure = classify_answer(429, "rate_limited", value)
    assert failure is not None
    assert failure.retry_after is None


def test_a_huge_retry_after_is_capped() -> None:
    failure = classify_answer(429, "rate_limited", "999999")
    assert failure is not None
    assert failure.retry_after == 3600.0


@pytest.mark.parametrize(
    "error", ["invalid_token", "channel_not_found", "no_service", "channel_is_archived", "action_prohibited", "no_text"]
)
def test_refusals_are_permanent_with_a_code_that_has_a_hint(error: str) -> None:
    failure = classify_answer(STATUS[error], error)
    assert failure is not None
    assert (failure.category, failure.code) == ("permanent", f"slack_{error}")
    assert failure.code in HINTS


def test_server_errors_are_transient_whatever_the_body() -> None:
    page = classify_answer(502, "<html>Bad Gateway</html>")
    assert page is not None
    assert (page.category, page.code) == ("transient", "slack_server_error")
    rollup = classify_answer(500, "rollup_error")
    assert rollup is not None
    assert (rollup.category, rollup.code) == ("transient", "slack_rollup_error")


def test_an_unknown_body_on_a_4xx_is_permanent_by_status() -> None:
    failure = classify_answer(400, "<html>nope</html>")
    assert failure is not None
    assert (failure.category, failure.code) == ("permanent", "slack_http_400")


def test_no_answer_is_transient() -> None:
    assert unreachable(TimeoutError()).code == "slack_timeout"
    refused = unreachable(ConnectionRefusedError("refused"))
    assert (refused.category, refused.code) == ("transient", "slack_unreachable")
    assert "refused" in refused.message
