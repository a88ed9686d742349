"""redrive's outbound Standard Webhooks headers verify with the ``standardwebhooks`` library itself."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from redrive.outbound_signing import standard_webhooks_headers

OLD = "whsec_" + base64.b64encode(b"old-secret-32-bytes-long-enough!").decode()
NEW = "whsec_" + base64.b64encode(b"new-secret-32-bytes-long-enough!").decode()
OTHER = "whsec_" + base64.b64encode(b"some-other-receivers-secret-here").decode()


def test_every_rotated_secret_verifies_and_a_foreign_one_does_not() -> None:
    at = datetime.now(UTC)
    body = '{"order": "A-1001"}'
    headers = standard_webhooks_headers([NEW, OLD], "exec_42", at, body)
    assert headers["webhook-id"] == "exec_42"
    assert len(headers["webhook-signature"].split()) == 2
    for secret in (NEW, OLD):
        assert Webhook(secret).verify(body, headers) == {"order": "A-1001"}
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER).verify(body, headers)


def test_no_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        standard_webhooks_headers([], "exec_1", datetime.now(UTC), "{}")
