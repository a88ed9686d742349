"""redrive's outbound Standard Webhooks headers verify with the ``standardwebhooks`` library itself."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from redrive.errors import ConfigError
from redrive.observe.redaction import Redactor
from redrive.outbound_signing import standard_webhooks_headers
from redrive.triggers.config import parse_config

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


def signed_trigger(sign: str, headers: str = "{}") -> str:
    return f"""
triggers:
  - name: orders
    action:
      kind: http
      url: https://hooks.example.com/orders
      headers: {headers}
      sign: {sign}
"""


def test_a_sign_block_with_rotated_secrets_parses_and_its_secrets_are_masked() -> None:
    config = parse_config(
        signed_trigger('{scheme: standard-webhooks, secrets: ["${NEW}", "' + OLD + '"]}'), env={"NEW": NEW}
    )
    sign = config.triggers[0].action.sign
    assert sign.all_secrets == [NEW, OLD]
    # Both secrets, written in the file or taken from the environment, with and without their prefix.
    for secret in (NEW, OLD):
        assert {secret, secret.removeprefix("whsec_")} <= config.secrets
    assert "old-secret" not in Redactor(config.secrets).text(f"echo {OLD} {OLD.removeprefix('whsec_')}")


@pytest.mark.parametrize(
    ("sign", "headers", "message"),
    [
        ('{scheme: standard-webhooks, secret: "whsec_abcde"}', "{}", "'whsec_' followed by base64"),
        (f'{{scheme: standard-webhooks, secret: "{NEW}", secrets: ["{OLD}"]}}', "{}", "either 'secret' or 'secrets'"),
        ("{scheme: standard-webhooks, secrets: []}", "{}", "at least one secret"),
        (f'{{scheme: hmac, secret: "{NEW}"}}', "{}", "standard-webhooks"),
        (f'{{scheme: standard-webhooks, secret: "{NEW}"}}', "{Webhook-Id: x}", "'sign' sets the Webhook-Id header"),
    ],
)
def test_a_bad_sign_block_is_refused_naming_the_trigger(sign: str, headers: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(signed_trigger(sign, headers), source="t.yaml", env={})
    [problem] = caught.value.problems
    assert problem.source == "t.yaml"
    assert problem.path.startswith("triggers[0] (orders).action")
    assert message in problem.message
