"""Each attempt stores the request it sent, redacted and capped; the execution view shows that, not a re-render."""

from __future__ import annotations

import httpx2
import pytest
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner

from redrive.cli import app
from redrive.cli.executions import utc_time
from redrive.triggers.runtime import SENT_BODY_CAP
from support import query, run_service, scalar, wait_until

TOKEN = "tok-s3cr3t-from-the-env"


def config(url: str, team: str) -> str:
    return f"""
triggers:
  - name: orders
    action:
      kind: http
      allow: [127.0.0.1]
      url: "{url}?order={{{{ payload.order }}}}"
      headers:
        Authorization: "Bearer ${{SINK_TOKEN}}"
        X-Echo: "${{SINK_TOKEN}}"
        X-Team: "{team}-{{{{ payload.order }}}}"
      json: {{order: "{{{{ payload.order }}}}", note: "${{SINK_TOKEN}}", blob: "{{{{ payload.blob }}}}"}}
    retry: {{max_attempts: 2, base: 10ms, jitter: none}}
"""


def test_the_view_shows_what_each_attempt_sent_then_with_secrets_masked(
    db_url: str, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SINK_TOKEN", TOKEN)
    httpserver.expect_request("/v1").respond_with_data("down", status=503)
    with run_service(db_url, config(httpserver.url_for("/v1"), "red")) as service:
        sent = httpx2.post(f"{service.url}/hooks/orders", json={"order": "A-1", "blob": "x"}, timeout=10).json()
        wait_until(lambda: scalar(db_url, "SELECT status FROM executions") == "failed_retryable")
        tokens = service.tokens
    assert httpserver.log[0][0].headers["Authorization"] == f"Bearer {TOKEN}"  # the target got the real secret

    # The trigger file changes (new URL, new header value); the view still shows what was sent then.
    with run_service(db_url, config(httpserver.url_for("/v2"), "blue"), tokens=tokens) as service:
        detail = httpx2.get(
            f"{service.url}/api/v1/executions/{sent['execution_id']}", headers=service.auth("viewer"), timeout=10
        ).json()
        shown = CliRunner().invoke(
            app,
            ["executions", "show", str(sent["execution_id"])],
            env={"REDRIVE_URL": service.url, "REDRIVE_TOKEN": tokens["viewer"], "COLUMNS": "200"},
        )

    assert "action" not in detail  # no re-render from today's config
    assert [a["number"] for a in detail["attempts"]] == [1, 2]
    for attempt in detail["attempts"]:
        request = attempt["request"]
        assert request["method"] == "POST"
        assert request["url"] == httpserver.url_for("/v1") + "?order=A-1"
        assert request["headers"]["X-Team"] == "red-A-1"
        assert request["headers"]["Authorization"] == "[redacted]"  # a secret-looking header, masked whole
        assert request["headers"]["X-Echo"] == "[redacted]"  # a secret from the trigger file, masked anywhere
        assert request["json"] == {"order": "A-1", "note": "[redacted]", "blob": "x"}
    stored = query(db_url, "SELECT request FROM attempts")
    assert len(stored) == 2
    assert all(TOKEN not in str(row[0]) for row in stored)

    assert shown.exit_code == 0, shown.stdout
    for attempt in detail["attempts"]:
        assert utc_time(attempt["started_at"]) in shown.stdout
        assert f"{attempt['duration_ms']:.1f}" in shown.stdout
    assert "red-A-1" in shown.stdout
    assert "blue" not in shown.stdout
    assert TOKEN not in shown.stdout


def test_a_large_body_is_stored_capped(db_url: str, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SINK_TOKEN", TOKEN)
    httpserver.expect_request("/v1").respond_with_data("ok")
    blob = "y" * (SENT_BODY_CAP * 2)
    with run_service(db_url, config(httpserver.url_for("/v1"), "red")) as service:
        httpx2.post(f"{service.url}/hooks/orders", json={"order": "B-2", "blob": blob}, timeout=10)
        wait_until(lambda: scalar(db_url, "SELECT status FROM executions") == "succeeded")
        [attempt] = httpx2.get(
            f"{service.url}/api/v1/executions/{scalar(db_url, 'SELECT id FROM executions')}",
            headers=service.auth("viewer"),
            timeout=10,
        ).json()["attempts"]
    assert len(httpserver.log[0][0].get_data()) > SENT_BODY_CAP * 2  # the target got all of it
    request = attempt["request"]
    assert request["body_truncated"] is True
    assert "json" not in request
    assert SENT_BODY_CAP <= len(request["body"]) < SENT_BODY_CAP + 20
    assert TOKEN not in request["body"]
