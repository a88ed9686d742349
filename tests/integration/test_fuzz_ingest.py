"""Hypothesis against the ingest path of a running service, on both databases: random headers and bodies never get a
5xx, and a rejected request never leaves an event behind."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any

import httpx2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import run_service, scalar

EXAMPLES = int(os.environ.get("REDRIVE_FUZZ_EXAMPLES", "25")) * 6
SECRET = "fuzz-ingest-secret"
CONFIG = f"""
triggers:
  - name: plain
    action: {{kind: command, argv: ["true"]}}
  - name: signed
    source: {{verify: {{scheme: github, secret: {SECRET}}}}}
    action: {{kind: command, argv: ["true"]}}
  - name: keyed
    source:
      idempotency_key: ["header:X-Key", "body:id", "body:data.key.id"]
      filter: "payload.event == 'go'"
      max_body_bytes: 2048
    action: {{kind: command, argv: ["true"]}}
  - name: standard
    source: {{verify: {{scheme: standard-webhooks, secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}}}
    action: {{kind: command, argv: ["true"]}}
"""

# Header values h11 can put on the wire: visible ASCII and inner spaces, no line breaks.
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=300).map(str.strip)
json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_tree = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["id", "event", "data", "key"]), inner),
    max_leaves=20,
)
bodies = st.one_of(
    st.binary(max_size=3000),
    json_tree.map(lambda tree: json.dumps(tree).encode()),
    st.builds(
        lambda event, key: json.dumps({"event": event, "id": key}).encode(),
        st.sampled_from(["go", "stop"]),
        header_text,
    ),
    st.integers(1, 200).map(lambda depth: b"[" * depth + b"]" * depth),
)
headers = st.dictionaries(
    st.sampled_from(
        [
            "Content-Type",
            "Content-Encoding",
            "X-Key",
            "Idempotency-Key",
            "X-Hub-Signature-256",
            "X-GitHub-Delivery",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "Transfer-Encoding-Hint",
        ]
    ),
    header_text,
    max_size=6,
)


@st.composite
def deliveries(draw: Any) -> tuple[str, bytes, dict[str, str]]:
    trigger = draw(st.sampled_from(["plain", "signed", "keyed", "standard", "missing", "Bad%20Name"]))
    body = draw(bodies)
    sent = draw(headers)
    if trigger == "signed" and draw(st.booleans()):  # half of them signed properly: deep paths need valid ones
        sent["X-Hub-Signature-256"] = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return trigger, body, sent


def test_random_deliveries_never_5xx_and_rejections_store_nothing(db_url: str) -> None:
    with run_service(db_url, CONFIG, worker_concurrency=0) as service, httpx2.Client(timeout=30) as client:
        statuses: set[int] = set()

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(delivery=deliveries())
        def one(delivery: tuple[str, bytes, dict[str, str]]) -> None:
            trigger, body, sent = delivery
            before = scalar(db_url, "SELECT count(*) FROM events")
            response = client.post(f"{service.url}/hooks/{trigger}", content=body, headers=sent)
            after = scalar(db_url, "SELECT count(*) FROM events")
            statuses.add(response.status_code)
            assert response.status_code < 500, response.text
            assert response.headers["content-type"].startswith("application/json")
            if response.status_code >= 400:
                assert after == before, f"a {response.status_code} stored an event"
                error = response.json()["error"]
                assert error["code"]
                assert error["message"]
            else:
                assert after - before == (1 if response.status_code == 202 else 0)

        one()
    # The run reached both sides of the contract, or it proved little.
    assert {202, 400, 401, 404} <= statuses, statuses
