"""The worker end to end on both databases: success, retries, dead letters, permanent failures, wake-ups."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx2
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from support import query, run_service, scalar, wait_until


def http_trigger(url: str, *, attempts: int = 3, base: str = "10ms", name: str = "target") -> str:
    return f"""
triggers:
  - name: {name}
    action:
      kind: http
      url: "{url}"
      allow_private: true
      json: {{order: "{{{{ payload.order }}}}"}}
      headers: {{X-Order: "{{{{ payload.order }}}}"}}
      timeout: 5s
    retry: {{max_attempts: {attempts}, base: {base}, max_delay: 1s, jitter: none}}
"""


def send(service, trigger: str, payload: dict) -> int:
    response = httpx2.post(f"{service.url}/hooks/{trigger}", json=payload, timeout=10)
    assert response.status_code == 202, response.text
    return int(response.json()["execution_id"])


def status_of(db_url: str, execution_id: int) -> str:
    return str(scalar(db_url, "SELECT status FROM executions WHERE id = :id", id=execution_id))


def settled(db_url: str, execution_id: int) -> str | None:
    status = status_of(db_url, execution_id)
    return status if status in {"succeeded", "failed", "failed_retryable"} else None


def test_success_records_the_rendered_request_and_one_attempt(db_url: str, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/orders", method="POST").respond_with_json({"ok": True})
    with run_service(db_url, http_trigger(httpserver.url_for("/orders"))) as service:
        execution_id = send(service, "target", {"order": "A-1"})
        assert wait_until(lambda: settled(db_url, execution_id)) == "succeeded"
    request, _ = httpserver.log[0]
    assert request.get_json() == {"order": "A-1"}
    assert request.headers["X-Order"] == "A-1"
    rows = query(db_url, "SELECT number, outcome, detail FROM attempts WHERE execution_id = :id", id=execution_id)
    assert len(rows) == 1
    number, outcome, detail = rows[0]
    detail = json.loads(detail) if isinstance(detail, str) else detail
    assert (number, outcome, detail["status"]) == (1, "succeeded", 200)
    assert scalar(db_url, "SELECT attempts FROM executions WHERE id = :id", id=execution_id) == 1


def test_503_every_time_dead_letters_after_exactly_max_attempts(db_url: str, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/down").respond_with_data("maintenance", status=503)
    with run_service(db_url, http_trigger(httpserver.url_for("/down"), attempts=4)) as service:
        execution_id = send(service, "target", {"order": "B-1"})
        assert wait_until(lambda: settled(db_url, execution_id)) == "failed_retryable"
    assert len(httpserver.log) == 4
    rows = query(
        db_url,
        "SELECT number, outcome, error_code, excerpt FROM attempts WHERE execution_id = :id ORDER BY number",
        id=execution_id,
    )
    assert [tuple(row) for row in rows] == [(n, "transient", "http_503", "maintenance") for n in range(1, 5)]
    code = scalar(db_url, "SELECT error_code FROM executions WHERE id = :id", id=execution_id)
    assert code == "http_503"
    # Four failed attempts of one cause: one error group counting four, the execution pointing at it.
    groups = query(db_url, "SELECT fingerprint, total, code, status, sample_execution_id FROM error_groups")
    assert len(groups) == 1
    fingerprint, total, group_code, group_status, sample = groups[0]
    assert (total, group_code, group_status, sample) == (4, "http_503", "open", execution_id)
    assert scalar(db_url, "SELECT fingerprint FROM executions WHERE id = :id", id=execution_id) == fingerprint
    assert scalar(db_url, "SELECT count(DISTINCT fingerprint) FROM attempts") == 1


def test_400_fails_permanently_after_one_attempt(db_url: str, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/bad").respond_with_data("no such field", status=400)
    with run_service(db_url, http_trigger(httpserver.url_for("/bad"), attempts=5)) as service:
        execution_id = send(service, "target", {"order": "C-1"})
        assert wait_until(lambda: settled(db_url, execution_id)) == "failed"
    # That nothing runs after a permanent failure is shown with a moved clock: test_worker_unit.py.
    assert len(httpserver.log) == 1
    assert scalar(db_url, "SELECT count(*) FROM attempts") == 1
    assert scalar(db_url, "SELECT error_category FROM executions") == "permanent"


def test_429_retry_after_is_honoured(db_url: str, httpserver: HTTPServer) -> None:
    seen: list[float] = []

    def handler(request: Request) -> Response:
        seen.append(time.monotonic())
        if len(seen) == 1:
            return Response("slow down", status=429, headers={"Retry-After": "2"})
        return Response("ok", status=200)

    httpserver.expect_request("/limited").respond_with_handler(handler)
    # base 10ms without jitter: only Retry-After can make the second attempt wait 2 s.
    with run_service(db_url, http_trigger(httpserver.url_for("/limited"), attempts=3)) as service:
        execution_id = send(service, "target", {"order": "D-1"})
        assert wait_until(lambda: settled(db_url, execution_id), timeout=15) == "succeeded"
    assert len(seen) == 2
    assert seen[1] - seen[0] >= 2.0


def test_410_fails_and_pauses_the_trigger(db_url: str, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/gone").respond_with_data("gone", status=410)
    with run_service(db_url, http_trigger(httpserver.url_for("/gone"))) as service:
        first = send(service, "target", {"order": "E-1"})
        assert wait_until(lambda: settled(db_url, first)) == "failed"
    # That a paused trigger's next execution waits is shown with a moved clock: test_worker_unit.py.
    assert scalar(db_url, "SELECT paused FROM triggers WHERE name = 'target'") in (True, 1)
    assert len(httpserver.log) == 1


def test_template_that_cannot_render_fails_permanently(db_url: str, httpserver: HTTPServer) -> None:
    with run_service(db_url, http_trigger(httpserver.url_for("/never"))) as service:
        execution_id = send(service, "target", {"not_order": 1})
        assert wait_until(lambda: settled(db_url, execution_id)) == "failed"
    code, message = query(db_url, "SELECT error_code, error_message FROM executions")[0]
    assert code == "template_error"
    assert "order" in message
    assert len(httpserver.log) == 0


def test_hostile_payload_values_reach_a_command_as_literal_arguments(db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "argv.json"
    script = tmp_path / "dump.py"
    script.write_text(f"import json, sys\nopen({str(out)!r}, 'w').write(json.dumps(sys.argv[1:]))\n")
    config = f"""
triggers:
  - name: cmd
    action:
      kind: command
      argv: ["{sys.executable}", "{script}", "{{{{ payload.a }}}}", "{{{{ payload.b }}}}", "{{{{ payload.c }}}}"]
"""
    hostile = {"a": "; rm -rf / #", "b": "$(id) `id`", "c": "--output=/etc/x\nsecond line"}
    with run_service(db_url, config) as service:
        execution_id = send(service, "cmd", hostile)
        assert wait_until(lambda: settled(db_url, execution_id)) == "succeeded"
    assert json.loads(out.read_text()) == [hostile["a"], hostile["b"], hostile["c"]]


def test_ingest_wakes_the_worker_without_waiting_for_a_poll(db_url: str, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/fast").respond_with_data("ok")
    # A 60 s poll interval: only the in-process wake-up can start the execution within the wait below.
    with run_service(db_url, http_trigger(httpserver.url_for("/fast")), poll_interval=60) as service:
        time.sleep(0.5)  # let the worker go to sleep on an empty queue
        execution_id = send(service, "target", {"order": "F-1"})
        assert wait_until(lambda: settled(db_url, execution_id), timeout=5) == "succeeded"


@pytest.mark.parametrize("count", [120])
def test_many_executions_all_run_exactly_once(db_url: str, httpserver: HTTPServer, count: int) -> None:
    httpserver.expect_request("/bulk").respond_with_data("ok")
    with run_service(db_url, http_trigger(httpserver.url_for("/bulk")), claim_batch=7) as service:
        ids = [send(service, "target", {"order": f"G-{n}"}) for n in range(count)]
        wait_until(
            lambda: scalar(db_url, "SELECT count(*) FROM executions WHERE status = 'succeeded'") == count,
            timeout=30,
        )
    assert len(set(ids)) == count
    orders = sorted(request.get_json()["order"] for request, _ in httpserver.log)
    assert orders == sorted(f"G-{n}" for n in range(count))
    assert scalar(db_url, "SELECT count(*) FROM attempts") == count


def test_work_nobody_announced_is_found_by_the_slow_poll(db_url: str, httpserver: HTTPServer) -> None:
    """The fallback: an execution written behind the service's back (no in-process wake-up, no NOTIFY: a node whose
    notification was lost) still runs, found by the poll."""
    from datetime import UTC, datetime

    from redrive.db.database import Database
    from redrive.ingest.prepare import prepare
    from redrive.ingest.store import store_event
    from redrive.observe.redaction import Redactor
    from redrive.triggers.config import parse_config

    httpserver.expect_request("/polled").respond_with_data("ok")
    config = http_trigger(httpserver.url_for("/polled"))
    with run_service(db_url, config, poll_interval=0.3):
        time.sleep(0.6)  # the worker has found the queue empty and sleeps until the poll
        trigger = parse_config(config).triggers[0]
        trigger_id = int(scalar(db_url, "SELECT id FROM triggers WHERE name = 'target'"))
        event = prepare(
            trigger,
            trigger_id,
            body=b'{"order": "P-1"}',
            headers={},
            received_at=datetime.now(UTC),
            redactor=Redactor(),
        )
        behind = Database(db_url)
        try:
            stored = behind.write_sync(store_event(event))
        finally:
            behind.close()
        assert stored.execution_id is not None
        assert wait_until(lambda: settled(db_url, stored.execution_id), timeout=10) == "succeeded"
    assert [request.get_json()["order"] for request, _ in httpserver.log] == ["P-1"]
