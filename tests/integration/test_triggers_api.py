"""/api/v1/triggers on both databases: redacted config and counters; pause keeps events but holds executions
(no attempts spent) until resume, then they run in order; the CLI beside it."""

from __future__ import annotations

import httpx2
import pytest
from pytest_httpserver import HTTPServer
from structlog.testing import capture_logs
from typer.testing import CliRunner
from werkzeug import Request, Response

from redrive.cli import app as cli
from support import query, run_service, scalar, wait_until

SECRET = "sk_live_5f0c1d2e3a4b"
SINK = "trigger_id = (SELECT id FROM triggers WHERE name = 'sink')"


def config(url: str) -> str:
    return f"""
triggers:
  - name: sink
    action:
      kind: http
      url: "{url}"
      allow: [127.0.0.1]
      headers: {{apikey: "${{SOME_KEY}}", X-Trace: "t-${{SOME_KEY}}"}}
      json: {{n: "{{{{ payload.n }}}}"}}
    limits: {{daily_watermark: 100}}
  - name: other
    action: {{kind: command, argv: ["true"]}}
"""


def test_list_and_show_mask_secrets_and_count(
    db_url: str, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOME_KEY", SECRET)
    with run_service(db_url, config(httpserver.url_for("/sink")), worker_concurrency=0) as service:
        for n in range(3):
            assert httpx2.post(f"{service.url}/hooks/sink", json={"n": n}).status_code == 202
        listed = httpx2.get(f"{service.url}/api/v1/triggers", headers=service.auth("viewer"))
        shown = httpx2.get(f"{service.url}/api/v1/triggers/sink", headers=service.auth("viewer"))
        missing = httpx2.get(f"{service.url}/api/v1/triggers/nope", headers=service.auth("viewer"))
        anonymous = httpx2.get(f"{service.url}/api/v1/triggers")
    assert listed.status_code == 200, listed.text
    assert SECRET not in listed.text
    assert SECRET not in shown.text
    items = listed.json()["items"]
    assert [t["name"] for t in items] == ["other", "sink"]
    sink = shown.json()
    assert sink == items[1]
    assert sink["kind"] == "http"
    assert sink["paused"] is False
    assert sink["paused_reason"] is None
    assert sink["daily_watermark"] == 100
    assert sink["config"]["action"]["headers"] == {"apikey": "[redacted]", "X-Trace": "t-[redacted]"}
    assert sink["config"]["action"]["json"] == {"n": "{{ payload.n }}"}  # templates as their source
    assert sink["counters"] == {
        "pending": 3,
        "running": 0,
        "dlq": 0,
        "failed": 0,
        "succeeded_today": 0,
        "events_today": 3,
    }
    assert items[0]["counters"]["events_today"] == 0
    assert items[0]["daily_watermark"] is None
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "unknown_trigger")
    assert anonymous.status_code == 401


def test_paused_trigger_stores_events_and_holds_them_until_resume_then_runs_them_in_order(
    db_url: str, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOME_KEY", SECRET)
    seen: list[str] = []

    def record(request: Request) -> Response:
        seen.append(request.get_json()["n"])
        return Response("ok")

    httpserver.expect_request("/sink").respond_with_handler(record)
    with run_service(db_url, config(httpserver.url_for("/sink")), worker_concurrency=1) as service:
        base = f"{service.url}/api/v1/triggers/sink"
        assert httpx2.post(f"{base}/pause", headers=service.auth("viewer")).status_code == 403
        with capture_logs() as logs:
            paused = httpx2.post(f"{base}/pause", headers=service.auth("operator"))
        assert paused.status_code == 200, paused.text
        assert (paused.json()["paused"], paused.json()["paused_reason"]) == (True, "paused by operator")
        assert {"event": "trigger_paused", "trigger": "sink", "by": "operator", "log_level": "info"} in logs
        for n in range(6):
            assert httpx2.post(f"{service.url}/hooks/sink", json={"n": n}).status_code == 202
        # A sentinel instead of a sleep: one slot, oldest first, so a worker that ignored the pause would have run
        # the six held executions before this later one of another trigger.
        sentinel = httpx2.post(f"{service.url}/hooks/other", json={}).json()["execution_id"]
        wait_until(
            lambda: scalar(db_url, "SELECT status FROM executions WHERE id = :id", id=sentinel) == "succeeded",
            what="the other trigger's execution to run",
        )
        rows = query(db_url, f"SELECT status, attempts FROM executions WHERE {SINK} ORDER BY id")
        assert [tuple(row) for row in rows] == [("pending", 0)] * 6
        assert (
            scalar(db_url, f"SELECT count(*) FROM attempts JOIN executions e ON e.id = execution_id WHERE {SINK}") == 0
        )
        assert seen == []
        counters = httpx2.get(base, headers=service.auth("viewer")).json()["counters"]
        assert (counters["pending"], counters["events_today"]) == (6, 6)

        with capture_logs() as logs:
            resumed = httpx2.post(f"{base}/resume", headers=service.auth("operator"))
        assert resumed.status_code == 200
        assert (resumed.json()["paused"], resumed.json()["paused_reason"]) == (False, None)
        assert {"event": "trigger_resumed", "trigger": "sink", "by": "operator", "log_level": "info"} in logs
        wait_until(
            lambda: scalar(db_url, f"SELECT count(*) FROM executions WHERE status = 'succeeded' AND {SINK}") == 6,
            what="the held executions to run after resume",
        )
    assert seen == [str(n) for n in range(6)]
    assert scalar(db_url, "SELECT max(attempts) FROM executions") == 1
    assert scalar(db_url, "SELECT paused FROM triggers WHERE name = 'sink'") in (False, 0)


def test_pause_and_resume_unknown_trigger_is_404(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_KEY", SECRET)
    with run_service(db_url, config("http://127.0.0.1:9/x"), worker_concurrency=0) as service:
        for action in ("pause", "resume"):
            response = httpx2.post(f"{service.url}/api/v1/triggers/nope/{action}", headers=service.auth("operator"))
            assert (response.status_code, response.json()["error"]["code"]) == (404, "unknown_trigger")


def test_cli_triggers_ls_pause_resume(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_KEY", SECRET)
    runner = CliRunner()
    with run_service(db_url, config("http://127.0.0.1:9/x"), worker_concurrency=0) as service:
        common = ["--url", service.url, "--token", service.tokens["operator"]]
        listed = runner.invoke(cli, ["triggers", "ls", *common])
        assert listed.exit_code == 0, listed.output
        assert "sink" in listed.stdout
        assert "other" in listed.stdout
        paused = runner.invoke(cli, ["triggers", "pause", "sink", *common])
        assert paused.exit_code == 0, paused.output
        assert "paused (paused by operator)" in paused.stdout
        as_json = runner.invoke(cli, ["triggers", "ls", "--json", *common])
        assert as_json.exit_code == 0
        assert SECRET not in as_json.stdout
        resumed = runner.invoke(cli, ["triggers", "resume", "sink", "--json", *common])
        assert resumed.exit_code == 0
        assert '"paused": false' in resumed.stdout
        missing = runner.invoke(cli, ["triggers", "pause", "nope", *common])
        weak = runner.invoke(
            cli, ["triggers", "pause", "sink", "--url", service.url, "--token", service.tokens["viewer"]]
        )
    assert missing.exit_code != 0
    assert "unknown_trigger" in missing.stderr
    assert "Traceback" not in missing.output
    assert weak.exit_code != 0
    assert "forbidden" in weak.stderr
