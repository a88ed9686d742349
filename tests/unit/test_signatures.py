"""Unit tests for redrive.ingest.signatures: published vectors, tolerance edges, rotation, and hostile headers."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from standardwebhooks.webhooks import Webhook

from redrive.errors import ConfigError, InvalidSignature
from redrive.ingest.signatures import verify_delivery
from redrive.plugins import builtin_registry
from redrive.triggers.config import DEFAULT_KEY_SOURCES, parse_config

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "data" / "signatures.json").read_text())
SW, GH, STRIPE = VECTORS["standard_webhooks"], VECTORS["github"], VECTORS["stripe"]


def scheme(**fields: Any) -> Any:
    """A verify block validated as the trigger file validates it (through the registry's model)."""
    return builtin_registry().schemes[fields["scheme"]].config.model_validate(fields)


def verify(config: BaseModel, body: bytes, headers: dict[str, str], now: float) -> None:
    """Check a delivery the way ingest does: through the registered scheme, guarded."""
    verify_delivery(builtin_registry().schemes[config.scheme], config, body, headers, now)  # type: ignore[attr-defined]


def sw_headers(signature: str = SW["webhook_signature"], timestamp: int = SW["webhook_timestamp"]) -> dict[str, str]:
    return {"webhook-id": SW["webhook_id"], "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def refused(config: Any, body: bytes, headers: dict[str, str], now: float) -> str:
    with pytest.raises(InvalidSignature) as caught:
        verify(config, body, headers, now)
    assert caught.value.status == 401
    assert caught.value.code == "invalid_signature"
    return caught.value.message


# --- the published vectors ---------------------------------------------------------------------------------------


def test_standard_webhooks_vector_verifies_at_its_time() -> None:
    config = scheme(scheme="standard-webhooks", secret=SW["secret"])
    verify(config, SW["body"].encode(), sw_headers(), SW["webhook_timestamp"])


def test_github_vector_verifies() -> None:
    config = scheme(scheme="github", secret=GH["secret"])
    verify(config, GH["body"].encode(), {"x-hub-signature-256": GH["x_hub_signature_256"]}, 0)


def test_stripe_vector_verifies_at_its_time() -> None:
    config = scheme(scheme="stripe", secret=STRIPE["secret"])
    verify(config, STRIPE["body"].encode(), {"stripe-signature": STRIPE["stripe_signature"]}, STRIPE["timestamp"])


GENUINE = {
    "standard-webhooks": (
        {"scheme": "standard-webhooks"},
        SW["secret"],
        SW["body"],
        sw_headers(),
        SW["webhook_timestamp"],
    ),
    "github": ({"scheme": "github"}, GH["secret"], GH["body"], {"x-hub-signature-256": GH["x_hub_signature_256"]}, 0),
    "stripe": (
        {"scheme": "stripe"},
        STRIPE["secret"],
        STRIPE["body"],
        {"stripe-signature": STRIPE["stripe_signature"]},
        STRIPE["timestamp"],
    ),
}
OTHER_SECRET = {
    "standard-webhooks": "whsec_" + base64.b64encode(b"another secret!").decode(),
    "github": "It's a secret to everybody",
    "stripe": "whsec_test_secret_redrivE",
}


@pytest.mark.parametrize("name", GENUINE)
def test_one_changed_byte_of_the_body_is_refused(name: str) -> None:
    fields, secret, body, headers, now = GENUINE[name]
    config = scheme(**fields, secret=secret)
    verify(config, body.encode(), headers, now)
    assert "no signature matches" in refused(config, body.encode() + b" ", headers, now)


@pytest.mark.parametrize("name", GENUINE)
def test_another_secret_is_refused(name: str) -> None:
    fields, _, body, headers, now = GENUINE[name]
    refused(scheme(**fields, secret=OTHER_SECRET[name]), body.encode(), headers, now)


def test_library_signatures_and_ours_agree_on_raw_utf8_bytes() -> None:
    secret = "whsec_" + base64.b64encode(b"rotating-key-material-1234").decode()
    body = '{"name": "Zoë", "emoji": "🚀"}'.encode()
    at = datetime.fromtimestamp(1_700_000_000, UTC)
    signature = Webhook(secret).sign("msg_1", at, body.decode())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": "1700000000", "webhook-signature": signature}
    verify(scheme(scheme="standard-webhooks", secret=secret), body, headers, 1_700_000_000)


# --- tolerance: 300 s accepted, 301 s refused, both directions ----------------------------------------------------


@pytest.mark.parametrize(("offset", "accepted"), [(0, True), (300, True), (-300, True), (301, False), (-301, False)])
def test_standard_webhooks_tolerance_edges(offset: int, accepted: bool) -> None:
    config = scheme(scheme="standard-webhooks", secret=SW["secret"])
    now = SW["webhook_timestamp"] + offset
    if accepted:
        verify(config, SW["body"].encode(), sw_headers(), now)
    else:
        assert "300 seconds" in refused(config, SW["body"].encode(), sw_headers(), now)


@pytest.mark.parametrize(("offset", "accepted"), [(300, True), (-300, True), (301, False), (-301, False)])
def test_stripe_tolerance_edges(offset: int, accepted: bool) -> None:
    config = scheme(scheme="stripe", secret=STRIPE["secret"])
    headers = {"stripe-signature": STRIPE["stripe_signature"]}
    if accepted:
        verify(config, STRIPE["body"].encode(), headers, STRIPE["timestamp"] + offset)
    else:
        refused(config, STRIPE["body"].encode(), headers, STRIPE["timestamp"] + offset)


def test_a_resigned_stale_timestamp_is_refused_even_with_a_valid_signature() -> None:
    at = SW["webhook_timestamp"] - 3600
    signature = Webhook(SW["secret"]).sign(SW["webhook_id"], datetime.fromtimestamp(at, UTC), SW["body"])
    config = scheme(scheme="standard-webhooks", secret=SW["secret"])
    refused(config, SW["body"].encode(), sw_headers(signature, at), SW["webhook_timestamp"])


def test_a_tolerance_can_be_configured() -> None:
    config = scheme(scheme="standard-webhooks", secret=SW["secret"], tolerance=60)
    refused(config, SW["body"].encode(), sw_headers(), SW["webhook_timestamp"] + 61)


# --- rotation and several signatures ------------------------------------------------------------------------------


def test_any_of_several_secrets_verifies_for_rotation() -> None:
    old = "whsec_" + base64.b64encode(b"the old key that is leaving").decode()
    config = scheme(scheme="standard-webhooks", secrets=[old, SW["secret"]])
    verify(config, SW["body"].encode(), sw_headers(), SW["webhook_timestamp"])
    github = scheme(scheme="github", secrets=["new-secret-123", GH["secret"]])
    verify(github, GH["body"].encode(), {"x-hub-signature-256": GH["x_hub_signature_256"]}, 0)


def test_a_sender_may_send_several_space_separated_signatures() -> None:
    other = "v1," + base64.b64encode(b"x" * 32).decode()
    headers = sw_headers(f"v2,abc {other} {SW['webhook_signature']}")
    config = scheme(scheme="standard-webhooks", secret=SW["secret"])
    verify(config, SW["body"].encode(), headers, SW["webhook_timestamp"])


def test_stripe_accepts_any_v1_and_ignores_v0() -> None:
    header = STRIPE["stripe_signature"].replace(",v1=", f",v0={'0' * 64},v1={'1' * 64},v1=")
    config = scheme(scheme="stripe", secret=STRIPE["secret"])
    verify(config, STRIPE["body"].encode(), {"stripe-signature": header}, STRIPE["timestamp"])


# --- hmac: Shopify (base64), Slack-style (prefix, timestamp in the message), in-house (sha512 hex) ----------------


def test_hmac_base64_like_shopify() -> None:
    secret, body = "shopify-secret", b'{"id": 1}'
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    config = scheme(scheme="hmac", secret=secret, header="X-Shopify-Hmac-Sha256", encoding="base64")
    verify(config, body, {"x-shopify-hmac-sha256": digest}, 0)
    refused(config, body + b" ", {"x-shopify-hmac-sha256": digest}, 0)


def test_hmac_slack_style_prefix_and_timestamp() -> None:
    secret, body, ts = "slack-signing-secret", b"token=x&team_id=T1", 1_700_000_000
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    config = scheme(
        scheme="hmac",
        secret=secret,
        header="X-Slack-Signature",
        prefix="v0=",
        timestamp_header="X-Slack-Request-Timestamp",
        message="v0:{timestamp}:{body}",
    )
    headers = {"x-slack-signature": f"v0={digest}", "x-slack-request-timestamp": str(ts)}
    verify(config, body, headers, ts + 300)
    refused(config, body, headers, ts + 301)
    assert "does not start with" in refused(config, body, {**headers, "x-slack-signature": digest}, ts)


def test_hmac_sha512_hex() -> None:
    secret, body = "in-house-secret", b"\x00\xffraw bytes, not JSON"
    digest = hmac.new(secret.encode(), body, hashlib.sha512).hexdigest().upper()
    config = scheme(scheme="hmac", secret=secret, header="X-Signature", algorithm="sha512")
    verify(config, body, {"x-signature": digest}, 0)


# --- hostile headers: always InvalidSignature, never anything else -------------------------------------------------

HOSTILE = [
    "",
    "v1",
    "v1,",
    "v1,!!!notbase64!!!",
    "nocomma",
    "sha256=",
    "sha256=zz",
    "sha256=" + "g" * 64,
    "t=,v1=",
    "t=abc,v1=" + "0" * 64,
    "t=1700000000",
    "v1=" + "0" * 64,
    "t=1,t=2,v1=" + "0" * 64,
    "=,=,=",
    "é" * 40,
    "\x00\x01",
    "A" * 10_240,
    ",".join(["v1,AAAA"] * 2000),
    "t=" + "9" * 400 + ",v1=" + "0" * 64,
]
CONFIGS = [
    {"scheme": "standard-webhooks", "secret": SW["secret"]},
    {"scheme": "github", "secret": GH["secret"]},
    {"scheme": "stripe", "secret": STRIPE["secret"]},
    {
        "scheme": "hmac",
        "secret": "hmac-secret",
        "header": "X-Sig",
        "encoding": "base64",
        "timestamp_header": "X-Ts",
        "message": "{timestamp}.{body}",
    },
    {"scheme": "hmac", "secret": "hmac-secret", "header": "X-Sig", "prefix": "sha256="},
]
ALL_HEADERS = ("webhook-signature", "webhook-timestamp", "x-hub-signature-256", "stripe-signature", "x-sig", "x-ts")


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c["scheme"] + c.get("encoding", ""))
def test_hostile_header_values_are_invalid_signatures(config: dict[str, Any], value: str) -> None:
    headers = dict.fromkeys(ALL_HEADERS, value) | {"webhook-id": "msg_1"}
    refused(scheme(**config), b"{}", headers, SW["webhook_timestamp"])


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c["scheme"] + c.get("encoding", ""))
def test_missing_headers_are_invalid_signatures(config: dict[str, Any]) -> None:
    assert "missing" in refused(scheme(**config), b"{}", {}, 0)


def test_a_non_utf8_body_is_refused_by_standard_webhooks() -> None:
    config = scheme(scheme="standard-webhooks", secret=SW["secret"])
    refused(config, b"\xff\xfe", sw_headers(), SW["webhook_timestamp"])


@settings(max_examples=300, deadline=None)
@given(
    headers=st.dictionaries(st.sampled_from((*ALL_HEADERS, "webhook-id")), st.text(max_size=200), max_size=7),
    body=st.binary(max_size=200),
    which=st.integers(0, len(CONFIGS) - 1),
)
def test_any_headers_and_body_end_in_a_verdict_never_a_crash(headers: dict[str, str], body: bytes, which: int) -> None:
    # InvalidSignature is the only exception allowed; random input matching a 256-bit signature is not a concern.
    with contextlib.suppress(InvalidSignature):
        verify(scheme(**CONFIGS[which]), body, headers, SW["webhook_timestamp"])


def test_reasons_never_hold_the_secret_or_the_expected_signature() -> None:
    config = scheme(scheme="github", secret=GH["secret"])
    reason = refused(config, b"other body", {"x-hub-signature-256": GH["x_hub_signature_256"]}, 0)
    expected = hmac.new(GH["secret"].encode(), b"other body", hashlib.sha256).hexdigest()
    assert GH["secret"] not in reason
    assert expected not in reason


# --- configuration --------------------------------------------------------------------------------------------------

ACTION = "    action: {kind: command, argv: ['true']}\n"


def load(verify_yaml: str, env: dict[str, str] | None = None, extra: str = "") -> Any:
    text = f"triggers:\n  - name: t\n    source: {{verify: {verify_yaml}{extra}}}\n{ACTION}"
    return parse_config(text, env=env or {})


def test_scheme_delivery_ids_are_the_default_idempotency_keys() -> None:
    sw = load(f"{{scheme: standard-webhooks, secret: {SW['secret']}}}").triggers[0].source
    gh = load("{scheme: github, secret: abcdefgh}").triggers[0].source
    stripe = load("{scheme: stripe, secret: abcdefgh}").triggers[0].source
    assert sw.idempotency_key[0] == "header:webhook-id"
    assert gh.idempotency_key[0] == "header:X-GitHub-Delivery"
    assert stripe.idempotency_key == list(DEFAULT_KEY_SOURCES)
    named = load("{scheme: github, secret: abcdefgh}", extra=", idempotency_key: ['body:id']").triggers[0].source
    assert named.idempotency_key == ["body:id"]


def test_signing_secrets_are_registered_with_the_redactor_even_when_literal() -> None:
    config = parse_config(
        "triggers:\n"
        f"  - name: a\n    source: {{verify: {{scheme: standard-webhooks, secret: {SW['secret']}}}}}\n{ACTION}"
        "  - name: b\n    source: {verify: {scheme: github, secrets: ['${GH_SECRET}', literal-old-secret]}}\n"
        f"{ACTION}",
        env={"GH_SECRET": "from-the-environment"},
    )
    assert {SW["secret"], SW["secret"].removeprefix("whsec_"), "from-the-environment", "literal-old-secret"} <= (
        config.secrets
    )


@pytest.mark.parametrize(
    ("verify_yaml", "message"),
    [
        ("{scheme: github}", "give either 'secret' or 'secrets'"),
        ("{scheme: github, secret: abcdefgh, secrets: [abcdefgh]}", "give either 'secret' or 'secrets'"),
        ("{scheme: github, secrets: []}", "at least one secret"),
        ("{scheme: github, secret: short}", "at least 6 characters"),
        ("{scheme: standard-webhooks, secret: 'whsec_!!!!'}", "'whsec_' followed by base64"),
        ("{scheme: rot13, secret: abcdefgh}", "does not match any of the expected tags"),
        ("{scheme: hmac, secret: abcdefgh}", "Field required"),
        ("{scheme: hmac, secret: abcdefgh, header: X-Sig, message: 'no body'}", "'{body}' exactly once"),
        ("{scheme: hmac, secret: abcdefgh, header: X-Sig, message: '{timestamp}.{body}'}", "timestamp_header"),
        ("{scheme: hmac, secret: abcdefgh, header: X-Sig, message: '{body}{x}'}", "only use the placeholders"),
        ("{scheme: hmac, secret: abcdefgh, header: X-Sig, timestamp_header: X-Ts}", "must sign it"),
        ("{scheme: hmac, secret: abcdefgh, header: 'X Sig'}", "should match pattern"),
        ("{scheme: stripe, secret: abcdefgh, tolerance: 0}", "greater than or equal to 1"),
    ],
)
def test_bad_verify_config_is_a_config_error_at_verify(verify_yaml: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(verify_yaml)
    assert any(p.path.startswith("triggers[0].source.verify") and message in p.message for p in caught.value.problems)


def test_config_errors_never_echo_a_secret() -> None:
    with pytest.raises(ConfigError) as caught:
        load("{scheme: standard-webhooks, secret: 'whsec_!!!!secretish'}")
    assert "secretish" not in str(caught.value)
