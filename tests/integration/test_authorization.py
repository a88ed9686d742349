"""Who may call what: every /api/v1 route in the OpenAPI document against every kind of caller.

A route missing from ROUTES fails the test, so a new route cannot ship without a decision about who may call it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx2
import pytest
from structlog.testing import capture_logs

from redrive.api.limiter import FailureLimiter
from redrive.db.database import Database
from redrive.tokens import CLIENT_ADDRESS_HEADER, PROXY_KEY_HEADER, create_token, local_proxy_key, revoke_token
from support import fill_path, run_service

CONFIG = "triggers: [{name: t, action: {kind: command, argv: ['true']}}]"

# (method, path) -> the weakest role that may call it.
ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/events"): "operator",
    ("GET", "/api/v1/executions"): "viewer",
    ("GET", "/api/v1/executions/{execution_id}"): "viewer",
    ("GET", "/api/v1/executions/stats"): "viewer",
    ("POST", "/api/v1/executions/{execution_id}/replay"): "operator",
    ("GET", "/api/v1/executions/{execution_id}/replay-preview"): "operator",
    ("POST", "/api/v1/replays"): "operator",
    ("GET", "/api/v1/replays/{replay_id}"): "viewer",
    ("POST", "/api/v1/replays/{replay_id}/cancel"): "operator",
    ("GET", "/api/v1/audit"): "admin",
    ("GET", "/api/v1/stats"): "viewer",
    ("GET", "/api/v1/stats/timeseries"): "viewer",
    ("GET", "/api/v1/error-groups"): "viewer",
    ("GET", "/api/v1/error-groups/{fingerprint}"): "viewer",
    ("POST", "/api/v1/error-groups/{fingerprint}/resolve"): "operator",
    ("POST", "/api/v1/error-groups/{fingerprint}/ignore"): "operator",
    ("POST", "/api/v1/error-groups/{fingerprint}/acknowledge"): "operator",
    ("POST", "/api/v1/error-groups/{fingerprint}/unacknowledge"): "operator",
    ("POST", "/api/v1/error-groups/{fingerprint}/snooze"): "operator",
    ("POST", "/api/v1/error-groups/{fingerprint}/unsnooze"): "operator",
    ("GET", "/api/v1/alerts"): "viewer",
    ("GET", "/api/v1/alerts/history"): "viewer",
    ("POST", "/api/v1/alerts/{name}/test"): "operator",
    ("GET", "/api/v1/destinations"): "viewer",
    ("GET", "/api/v1/destinations/{name}"): "viewer",
    ("GET", "/api/v1/destinations/{name}/transitions"): "viewer",
    ("POST", "/api/v1/destinations/{name}/open"): "operator",
    ("POST", "/api/v1/destinations/{name}/close"): "operator",
    ("POST", "/api/v1/destinations/{name}/reset"): "operator",
    ("GET", "/api/v1/triggers"): "viewer",
    ("GET", "/api/v1/triggers/{name}"): "viewer",
    ("POST", "/api/v1/triggers/{name}/pause"): "operator",
    ("POST", "/api/v1/triggers/{name}/resume"): "operator",
    ("GET", "/api/v1/system"): "viewer",
    ("GET", "/api/v1/system/history"): "viewer",
    ("GET", "/api/v1/stream"): "viewer",
    ("GET", "/api/v1/me"): "viewer",
    ("GET", "/api/v1/plugins"): "admin",
}
RANK = {"viewer": 0, "operator": 1, "admin": 2}
PATH_VALUES = {"execution_id": "999999", "replay_id": "999999", "fingerprint": "0000000000000000", "name": "t"}


@pytest.fixture
def service(db_url: str):
    with run_service(db_url, CONFIG, worker_concurrency=0) as running:
        running.state.auth_failures = FailureLimiter(limit=1_000_000)  # the matrix fails on purpose, a lot
        db = Database(db_url)
        now = datetime.now(UTC)
        running.tokens["revoked"] = db.write_sync(create_token("revoked", "admin", now, actor="test"))
        db.write_sync(revoke_token("revoked", now, actor="test"))
        db.close()
        yield running


def test_every_api_route_has_an_entry(service) -> None:
    spec = httpx2.get(f"{service.url}/openapi.json").json()
    documented = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        if path.startswith("/api/v1")
        for method in operations
    }
    assert documented == set(ROUTES), "add new /api/v1 routes to ROUTES with the role they need"


def test_authorisation_matrix(service) -> None:
    failures = []
    with httpx2.Client(base_url=service.url, timeout=10) as http:
        for (method, path), needed in sorted(ROUTES.items()):
            url = fill_path(path, PATH_VALUES)
            callers = {
                "none": {},
                "bad": {"Authorization": "Bearer rdv_this-is-not-a-token-at-all-0000000000000"},
                "revoked": {"Authorization": f"Bearer {service.tokens['revoked']}"},
                **{role: service.auth(role) for role in RANK},
            }
            for caller, headers in callers.items():
                # Streamed, so the live stream's endpoint answers its status without being read to its (no) end.
                with http.stream(method, url, headers=headers, json={} if method == "POST" else None) as response:
                    status = response.status_code
                if caller in {"none", "bad", "revoked"}:
                    expected_ok = status == 401
                elif RANK[caller] < RANK[needed]:
                    expected_ok = status == 403
                else:
                    expected_ok = status not in {401, 403} and status < 500
                if not expected_ok:
                    failures.append(f"{method} {path} as {caller}: {status} (needs {needed})")
    assert failures == []


BAD_TOKEN = "rdv_BADtokenThatIsLongEnoughToLookReal0123456789abcdefg"


def test_bad_tokens_are_throttled_but_never_lock_out_a_valid_token(db_url: str) -> None:
    with (
        capture_logs() as logs,
        run_service(db_url, CONFIG, worker_concurrency=0) as service,
        httpx2.Client(base_url=service.url) as http,
    ):
        bad = {"Authorization": f"Bearer {BAD_TOKEN}"}
        statuses = [http.get("/api/v1/executions", headers=bad).status_code for _ in range(100)]
        throttled = http.get("/api/v1/executions", headers=bad)
        valid = http.get("/api/v1/executions", headers=service.auth("admin"))
        metrics = http.get("/metrics").text
    assert statuses == [401] * 10 + [429] * 90
    assert throttled.json()["error"]["code"] == "too_many_failures"
    assert int(throttled.headers["Retry-After"]) >= 1
    assert valid.status_code == 200, valid.text
    failed = [line for line in logs if line["event"] == "auth_failed"]
    refused = [line for line in logs if line["event"] == "auth_throttled"]
    assert (len(failed), len(refused)) == (10, 91)
    assert {(line["address"], line["token_prefix"]) for line in failed + refused} == {("127.0.0.1", "rdv_BADt")}
    assert BAD_TOKEN[8:] not in repr(logs)
    assert "redrive_auth_failures_total 10.0" in metrics
    assert "redrive_auth_throttled_total 91.0" in metrics
    assert BAD_TOKEN[8:] not in metrics


def test_the_failure_limit_counts_the_address_the_dashboard_vouches_for(db_url: str) -> None:
    with run_service(db_url, CONFIG, worker_concurrency=0) as service, httpx2.Client(base_url=service.url) as http:

        def bad(address: str, key: str) -> int:
            headers = {"Authorization": "Bearer nope", CLIENT_ADDRESS_HEADER: address, PROXY_KEY_HEADER: key}
            return http.get("/api/v1/me", headers=headers).status_code

        # Vouched for with the process's key: each browser has its own budget, however many share the server.
        assert [bad("203.0.113.7", local_proxy_key()) for _ in range(11)] == [401] * 10 + [429]
        assert bad("203.0.113.8", local_proxy_key()) == 401
        # Without the key the header is a claim like any other: ignored, and the failures count against the peer.
        assert [bad("198.51.100.1", "guess") for _ in range(11)] == [401] * 10 + [429]
        assert bad("198.51.100.2", "guess") == 429
