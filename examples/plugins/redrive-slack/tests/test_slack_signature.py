"""The ``slack`` signature scheme against Slack's documented example and the ways a request can be wrong."""

from __future__ import annotations

import pytest
from redrive.errors import InvalidSignature

from redrive_slack.signature import SlackVerify, sign, verify

# Slack's own worked example ("Verifying requests from Slack"): this secret, timestamp and body give this signature.
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # noqa: S105 (the secret of Slack's published example)
TIMESTAMP = "1531420618"
BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&"
    b"channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"
    b"response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
    b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
EXPECTED = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
CONFIG = SlackVerify(scheme="slack", secrets=["an-older-secret-still-valid", SECRET])


def headers(signature: str, timestamp: str = TIMESTAMP) -> dict[str, str]:
    return {"x-slack-signature": signature, "x-slack-request-timestamp": timestamp}


def test_slacks_worked_example_verifies_with_any_of_the_secrets() -> None:
    assert sign(SECRET, TIMESTAMP, BODY) == EXPECTED
    verify(CONFIG, BODY, headers(EXPECTED), float(TIMESTAMP) + 10)


@pytest.mark.parametrize(
    ("given", "now", "reason"),
    [
        (headers(EXPECTED), float(TIMESTAMP) + 301, "away from now"),
        (headers(EXPECTED, "soon"), float(TIMESTAMP), "not a number"),
        (headers("v1=" + EXPECTED[3:]), float(TIMESTAMP), "not 'v0=<64 hex digits>'"),
        (headers("v0=" + "0" * 64), float(TIMESTAMP), "no configured signing secret"),
    ],
)
def test_a_stale_malformed_or_forged_request_is_refused(given: dict[str, str], now: float, reason: str) -> None:
    with pytest.raises(InvalidSignature, match=reason):
        verify(CONFIG, BODY, given, now)


def test_a_changed_body_is_refused() -> None:
    with pytest.raises(InvalidSignature):
        verify(CONFIG, BODY + b"&admin=true", headers(EXPECTED), float(TIMESTAMP))
