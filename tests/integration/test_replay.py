"""Replaying one execution on both databases: the happy path, every refusal, the limits, concurrency, the preview,
and the audit log."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx2
from pytest_httpserver import HTTPServer
from replay_support import (
    dead_letter,
    error,
    execution,
    forget_last_replay,
    operations,
    replay,
    rows,
    send,
    settle,
    sink,
    write,
)
from sqlalchemy import update

from redrive.db.schema import events, executions
from support import Service, run_service, scalar


def audit_rows(db_url: str) -> list[tuple[str, str, str | None, str]]:
    return [(r.actor, r.action, r.target, r.result) for r in operations(db_url)]


def test_replay_runs_a_new_execution_linked_to_the_original(db_url: str, httpserver: HTTPServer) -> None:
    answer, config = sink(httpserver)
    with run_service(db_url, config) as service:
        [original] = dead_letter(service, db_url, 1)
        answer.status = 200
        response = replay(service, original)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["execution_id"] == original
        assert body["status"] == "replayed"
        new_id = body["new_execution_id"]
        assert settle(db_url, new_id) == "succeeded"
    old, new = execution(db_url, original), execution(db_url, new_id)
    assert old.status == "replayed"
    assert old.last_replay_at is not None
    assert (new.replay_of, new.event_id, new.trigger_id) == (original, old.event_id, old.trigger_id)
    assert new.action_kind == "http"
    assert new.attempts == 1
    assert new.bulk_replay_id is None
    event = rows(db_url, events, events.c.id == old.event_id)[0]
    assert (event.replay_count, event.last_replay_at) == (1, old.last_replay_at)
    [entry] = operations(db_url)
    assert (entry.actor, entry.action, entry.result) == ("operator", "replay", "ok")
    assert entry.target == f"execution:{original}"
    assert entry.detail["new_execution_id"] == new_id
    assert answer.hits == 2


def test_refusals_name_the_status_and_are_audited(db_url: str, httpserver: HTTPServer) -> None:
    answer, config = sink(httpserver, status=200)
    with run_service(db_url, config) as service:
        succeeded = send(service, 1)
        assert settle(db_url, succeeded) == "succeeded"
        response = replay(service, succeeded)
        assert (response.status_code, error(response)) == (409, "not_replayable")
        assert "succeeded" in response.json()["error"]["message"]

        answer.status = 503
        [dead] = dead_letter(service, db_url, 1, start=2)
        first = replay(service, dead)
        assert first.status_code == 200
        again = replay(service, dead)
        assert (again.status_code, error(again)) == (409, "not_replayable")
        assert f"already replayed as execution {first.json()['new_execution_id']}" in again.json()["error"]["message"]

        missing = replay(service, 999_999)
        assert (missing.status_code, error(missing)) == (404, "not_found")
        assert replay(service, dead, role="viewer").status_code == 403
    assert audit_rows(db_url) == [
        ("operator", "replay", f"execution:{succeeded}", "not_replayable"),
        ("operator", "replay", f"execution:{dead}", "ok"),
        ("operator", "replay", f"execution:{dead}", "not_replayable"),
        ("operator", "replay", "execution:999999", "not_found"),
    ]


def test_a_pending_execution_is_not_replayable(db_url: str, httpserver: HTTPServer) -> None:
    _, config = sink(httpserver)
    with run_service(db_url, config, worker_concurrency=0) as service:
        pending = send(service, 1)
        response = replay(service, pending)
    assert (response.status_code, error(response)) == (409, "not_replayable")
    assert "pending" in response.json()["error"]["message"]


def test_a_failed_execution_needs_force_and_an_admin(db_url: str, httpserver: HTTPServer) -> None:
    answer, config = sink(httpserver, status=400)
    with run_service(db_url, config) as service:
        failed = send(service, 1)
        assert settle(db_url, failed) == "failed"
        plain = replay(service, failed)
        assert (plain.status_code, error(plain)) == (409, "not_replayable")
        assert "force=true" in plain.json()["error"]["message"]
        operator = replay(service, failed, force="true")
        assert (operator.status_code, error(operator)) == (403, "forbidden")
        assert execution(db_url, failed).status == "failed"
        answer.status = 200
        admin = replay(service, failed, role="admin", force="true")
        assert admin.status_code == 200, admin.text
        assert settle(db_url, admin.json()["new_execution_id"]) == "succeeded"
    assert [r[3] for r in audit_rows(db_url)] == ["not_replayable", "forbidden", "ok"]
    assert operations(db_url)[-1].detail["force"] is True


def test_rate_limit_then_replay_limit(db_url: str, httpserver: HTTPServer) -> None:
    _, config = sink(httpserver)
    with run_service(db_url, config) as service:
        [current] = dead_letter(service, db_url, 1)
        for count in range(1, 6):
            response = replay(service, current)
            assert response.status_code == 200, response.text
            current = response.json()["new_execution_id"]
            assert settle(db_url, current) == "failed_retryable"
            if count == 1:  # the replay dead-lettered within 60 s of the first replay
                limited = replay(service, current)
                assert (limited.status_code, error(limited)) == (429, "rate_limited")
                assert 55 <= int(limited.headers["Retry-After"]) <= 60
                assert execution(db_url, current).status == "failed_retryable"  # nothing changed
            forget_last_replay(db_url)
        exhausted = replay(service, current)
    assert (exhausted.status_code, error(exhausted)) == (409, "replay_limit")
    assert "5" in exhausted.json()["error"]["message"]
    assert scalar(db_url, "SELECT replay_count FROM events") == 5
    assert scalar(db_url, "SELECT count(*) FROM executions") == 6
    results = [r[3] for r in audit_rows(db_url)]
    assert results == ["ok", "rate_limited", "ok", "ok", "ok", "ok", "replay_limit"]


def test_concurrent_replays_of_one_execution_create_exactly_one(db_url: str, httpserver: HTTPServer) -> None:
    _, config = sink(httpserver)
    with run_service(db_url, config, worker_concurrency=0) as service:
        [original] = dead_letter_without_worker(service, db_url)
        barrier = threading.Barrier(20)

        def attempt(_: int) -> int:
            with httpx2.Client(timeout=20) as client:
                barrier.wait()
                url = f"{service.url}/api/v1/executions/{original}/replay"
                return client.post(url, headers=service.auth("operator")).status_code

        with ThreadPoolExecutor(20) as pool:
            statuses = list(pool.map(attempt, range(20)))
    assert statuses.count(200) == 1, statuses
    assert set(statuses) <= {200, 409, 429}, statuses
    replays = rows(db_url, executions, executions.c.replay_of == original)
    assert len(replays) == 1
    assert scalar(db_url, "SELECT replay_count FROM events") == 1
    assert scalar(db_url, "SELECT count(*) FROM audit_log WHERE action = 'replay' AND result = 'ok'") == 1
    assert scalar(db_url, "SELECT count(*) FROM audit_log WHERE action = 'replay'") == 20


def dead_letter_without_worker(service: Service, db_url: str) -> list[int]:
    """An execution put straight into the DLQ (the worker is off, so nothing runs it again)."""
    execution_id = send(service, 1)
    write(db_url, update(executions).where(executions.c.id == execution_id).values(status="failed_retryable"))
    return [execution_id]


def test_preview_renders_the_current_action_redacted(db_url: str, httpserver: HTTPServer) -> None:
    _, config = sink(httpserver)
    with run_service(db_url, config) as service:
        [dead] = dead_letter(service, db_url, 1, start=7)
        url = f"{service.url}/api/v1/executions/{dead}/replay-preview"
        preview = httpx2.get(url, headers=service.auth("operator"), timeout=10)
        assert preview.status_code == 200, preview.text
        body = preview.json()
        assert httpx2.get(url, headers=service.auth("viewer"), timeout=10).status_code == 403
        missing_url = f"{service.url}/api/v1/executions/999999/replay-preview"
        missing = httpx2.get(missing_url, headers=service.auth("operator"), timeout=10)
        assert missing.status_code == 404
        replay(service, dead)
        after = httpx2.get(url, headers=service.auth("operator"), timeout=10).json()
    started = rows(db_url, executions, executions.c.id == dead)[0]
    assert body["execution_id"] == dead
    assert (body["trigger"], body["kind"], body["status"]) == ("sink", "http", "failed_retryable")
    assert (body["replayable"], body["reason"]) == (True, None)
    assert body["target"] == f"POST {httpserver.url_for('/sink')}"
    assert body["action"]["json"] == {"n": "7"}
    assert body["action"]["headers"]["Authorization"] == "[redacted]"
    assert body["replay_count"] == 0
    assert body["last_replay_at"] is None
    assert body["originally_ran_at"] <= started.updated_at.isoformat()
    assert after["replayable"] is False
    assert "already replayed" in after["reason"]
    assert after["replay_count"] == 1
    assert after["last_replay_at"] is not None


def test_preview_shows_a_render_error_as_the_reason(db_url: str, httpserver: HTTPServer) -> None:
    extra = """
  - name: broken
    action:
      kind: command
      argv: ["/bin/echo", "{{ payload.missing.deeper }}"]
"""
    _, config = sink(httpserver)
    with run_service(db_url, config + extra) as service:
        failed = send(service, 1, trigger="broken")
        assert settle(db_url, failed) == "failed"  # template_error: permanent
        url = f"{service.url}/api/v1/executions/{failed}/replay-preview"
        plain = httpx2.get(url, headers=service.auth("operator"), timeout=10).json()
        forced = httpx2.get(url, params={"force": "true"}, headers=service.auth("admin"), timeout=10).json()
    assert plain["replayable"] is False
    assert "force=true" in plain["reason"]
    assert plain["action"] is None  # it does not render either
    assert forced["replayable"] is True
    assert forced["action"] is None
    assert forced["target"] is None
    assert "missing" in forced["reason"]


def test_audit_log_is_admin_only_newest_first_with_a_cursor(db_url: str, httpserver: HTTPServer) -> None:
    _, config = sink(httpserver)
    with run_service(db_url, config) as service:
        for missing in (900, 901, 902):
            replay(service, missing)
        url = f"{service.url}/api/v1/audit"
        assert httpx2.get(url, headers=service.auth("operator"), timeout=10).status_code == 403
        first = httpx2.get(url, params={"limit": 2}, headers=service.auth("admin"), timeout=10).json()
        second = httpx2.get(
            url, params={"limit": 2, "before": first["next_cursor"]}, headers=service.auth("admin"), timeout=10
        ).json()
    assert [item["target"] for item in first["items"]] == ["execution:902", "execution:901"]
    assert [item["target"] for item in second["items"]] == ["execution:900", "token:admin"]  # then the setup's
    item = first["items"][0]
    assert (item["actor"], item["action"], item["result"]) == ("operator", "replay", "not_found")
    assert item["at"].endswith("+00:00")


def test_openapi_documents_every_replay_error() -> None:
    from redrive.api.app import create_app
    from redrive.settings import Settings
    from redrive.triggers.config import RedriveConfig

    schema = create_app(Settings(), RedriveConfig()).openapi()
    replay_responses = schema["paths"]["/api/v1/executions/{execution_id}/replay"]["post"]["responses"]
    assert {"200", "401", "403", "404", "409", "429"} <= set(replay_responses)
    bulk_responses = schema["paths"]["/api/v1/replays"]["post"]["responses"]
    assert {"200", "202", "401", "403", "404", "409", "422"} <= set(bulk_responses)
    assert "replay_in_progress" in bulk_responses["409"]["description"]
    assert "rate_limited" in replay_responses["429"]["description"]
