"""Signed webhooks over real HTTP on both databases: real GitHub payloads, Standard Webhooks, Stripe; a bad signature
is a counted 401 that stores nothing and reserves no idempotency key."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx2
import pytest
from standardwebhooks.webhooks import Webhook

from support import run_service, scalar

DATA = Path(__file__).resolve().parents[1] / "data"
PAYLOADS = Path(__file__).resolve().parents[2] / "examples" / "payloads"
VECTORS = json.loads((DATA / "signatures.json").read_text())
GH_SECRET = "gh-signing-secret-7f3a"
SW_SECRET = VECTORS["standard_webhooks"]["secret"]
STRIPE_SECRET = VECTORS["stripe"]["secret"]

CONFIG = f"""
triggers:
  - name: github
    source: {{verify: {{scheme: github, secrets: ["{GH_SECRET}", "gh-old-secret-0001"]}}}}
    action: {{kind: command, argv: ["true"]}}
  - name: sw
    source: {{verify: {{scheme: standard-webhooks, secret: "{SW_SECRET}"}}}}
    action: {{kind: command, argv: ["true"]}}
  - name: stripe
    source: {{verify: {{scheme: stripe, secret: "{STRIPE_SECRET}"}}, idempotency_key: ["body:id"]}}
    action: {{kind: command, argv: ["true"]}}
  - name: open
    action: {{kind: command, argv: ["true"]}}
"""


@pytest.fixture
def service(db_url: str):
    with run_service(db_url, CONFIG, worker_concurrency=0) as running:
        yield running


def github_headers(body: bytes, delivery: str, secret: str = GH_SECRET, event: str = "push") -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": f"sha256={digest}"}


def sw_headers(body: bytes, msg_id: str, at: int | None = None) -> dict[str, str]:
    at = int(time.time()) if at is None else at
    signature = Webhook(SW_SECRET).sign(msg_id, datetime.fromtimestamp(at, UTC), body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(at), "webhook-signature": signature}


def post(service, trigger: str, body: bytes, headers: dict[str, str]) -> httpx2.Response:
    return httpx2.post(f"{service.url}/hooks/{trigger}", content=body, headers=headers, timeout=10)


def counted(db_url: str) -> int:
    return scalar(db_url, "SELECT coalesce(sum(value), 0) FROM daily_counters WHERE name = 'invalid_signatures'")


def events(db_url: str) -> int:
    return scalar(db_url, "SELECT count(*) FROM events")


@pytest.mark.parametrize("payload", ["push.json", "ping.json", "pull_request_opened.json", "issues_opened.json"])
def test_real_github_payloads_are_accepted_keyed_by_their_delivery(service, db_url: str, payload: str) -> None:
    body = (PAYLOADS / "github" / payload).read_bytes()
    delivery = f"delivery-{payload}"
    first = post(service, "github", body, github_headers(body, delivery))
    again = post(service, "github", body, github_headers(body, delivery))
    assert (first.status_code, again.status_code) == (202, 200), first.text
    assert scalar(db_url, "SELECT idempotency_key FROM events") == delivery
    stored = scalar(db_url, "SELECT headers FROM events")
    stored = json.loads(stored) if isinstance(stored, str) else stored
    assert stored["x-hub-signature-256"] == "[redacted]"


def test_a_secret_being_rotated_out_still_verifies(service) -> None:
    body = (PAYLOADS / "github" / "ping.json").read_bytes()
    assert post(service, "github", body, github_headers(body, "d-old", secret="gh-old-secret-0001")).status_code == 202


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-Hub-Signature-256": "no-equals-sign"},
        {"X-Hub-Signature-256": "sha256=" + "A" * 10_240},
        {"X-Hub-Signature-256": "sha1=" + "0" * 40},
    ],
    ids=["missing", "wrong", "malformed", "10KB-junk", "wrong-algorithm"],
)
def test_a_bad_signature_is_a_counted_401_storing_nothing(service, db_url: str, headers: dict[str, str]) -> None:
    body = (PAYLOADS / "github" / "push.json").read_bytes()
    response = post(service, "github", body, {"X-GitHub-Delivery": "d-1", **headers})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    assert GH_SECRET not in response.text
    assert (events(db_url), counted(db_url)) == (0, 1)


def test_a_refused_delivery_never_reserves_its_idempotency_key(service, db_url: str) -> None:
    body = (PAYLOADS / "github" / "push.json").read_bytes()
    forged = post(service, "github", body, github_headers(body, "d-2", secret="attacker-guess-123"))
    genuine = post(service, "github", body, github_headers(body, "d-2"))
    assert (forged.status_code, genuine.status_code) == (401, 202)
    assert genuine.json()["duplicate"] is False
    assert scalar(db_url, "SELECT idempotency_key FROM events") == "d-2"


def test_the_signature_covers_the_exact_raw_bytes(service, db_url: str) -> None:
    body = b'{"a": 1,   "b": [1, 2]}'  # the same JSON re-serialised would sign differently
    headers = github_headers(body, "d-raw")
    assert post(service, "github", json.dumps(json.loads(body)).encode(), headers).status_code == 401
    assert post(service, "github", body, headers).status_code == 202


def test_standard_webhooks_keyed_by_webhook_id_with_tolerance(service, db_url: str) -> None:
    body = b'{"type": "invoice.paid", "n": 1}'
    assert post(service, "sw", body, sw_headers(body, "msg_1")).status_code == 202
    assert post(service, "sw", body, sw_headers(body, "msg_1")).status_code == 200
    stale = post(service, "sw", body, sw_headers(body, "msg_2", at=int(time.time()) - 3600))
    assert stale.status_code == 401
    assert "300 seconds" in stale.json()["error"]["message"]
    assert scalar(db_url, "SELECT idempotency_key FROM events") == "msg_1"
    assert counted(db_url) == 1


def test_stripe_signed_now_is_accepted_and_a_replayed_old_header_is_not(service, db_url: str) -> None:
    body = VECTORS["stripe"]["body"].encode()
    now = int(time.time())
    digest = hmac.new(STRIPE_SECRET.encode(), f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    assert post(service, "stripe", body, {"Stripe-Signature": f"t={now},v1={digest}"}).status_code == 202
    old = post(service, "stripe", body, {"Stripe-Signature": VECTORS["stripe"]["stripe_signature"]})
    assert old.status_code == 401
    assert scalar(db_url, "SELECT idempotency_key FROM events") == "evt_1"


def test_invalid_signatures_show_in_the_stats_summary(service) -> None:
    post(service, "github", b"{}", {"X-Hub-Signature-256": "sha256=" + "0" * 64})
    post(service, "sw", b"{}", {})
    summary = httpx2.get(f"{service.url}/api/v1/stats", headers=service.auth("viewer"), timeout=10).json()
    assert summary["invalid_signatures"] == 2


def test_an_unsigned_trigger_is_unaffected(service) -> None:
    assert post(service, "open", b"{}", {}).status_code == 202
