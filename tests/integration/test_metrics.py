"""/metrics equals the database after a scripted run (both databases); /api/v1/system reports nodes, queue, process
and database for a viewer and nobody else."""

from __future__ import annotations

from collections import Counter

import httpx2
from prometheus_client.parser import text_string_to_metric_families
from pytest_httpserver import HTTPServer
from werkzeug import Response

from support import query, run_service, wait_until

SETTLED = "('succeeded', 'failed', 'failed_retryable')"


def config(base: str) -> str:
    def trigger(name: str, path: str) -> str:
        return f"""
  - name: {name}
    action: {{kind: http, url: "{base}{path}", json: {{n: "{{{{ payload.n }}}}"}}, allow: [127.0.0.1]}}
    retry: {{max_attempts: 2, base: 10ms, max_delay: 20ms, jitter: none}}"""

    return "triggers:" + trigger("ok", "/ok") + trigger("flaky", "/down") + trigger("broken", "/refuse")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_equal_the_database_after_a_scripted_run(db_url: str, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/ok").respond_with_response(Response("fine"))
    httpserver.expect_request("/down").respond_with_response(Response("later", status=503))
    httpserver.expect_request("/refuse").respond_with_response(Response("no", status=400))
    with run_service(db_url, config(httpserver.url_for(""))) as service:
        sent: Counter[int] = Counter()

        def post(trigger: str, **kwargs: object) -> None:
            sent[httpx2.post(f"{service.url}/hooks/{trigger}", timeout=10, **kwargs).status_code] += 1  # type: ignore[arg-type]

        for n in range(3):
            post("ok", json={"n": n}, headers={"Idempotency-Key": f"ok-{n}"})
        post("ok", json={"n": 0}, headers={"Idempotency-Key": "ok-0"})  # duplicate
        post("ok", json={"n": 99}, headers={"Idempotency-Key": "ok-0"})  # conflict
        post("ok", content=b"{not json", headers={"Content-Type": "application/json"})
        post("nobody", json={"n": 1})
        for n in range(2):
            post("flaky", json={"n": n})
        post("broken", json={"n": 1})
        assert sent == Counter({202: 6, 200: 1, 422: 1, 400: 1, 404: 1})
        wait_until(
            lambda: query(db_url, f"SELECT count(*) FROM executions WHERE status IN {SETTLED}")[0][0] == 6,
            what="every execution to settle",
        )
        found = samples(httpx2.get(f"{service.url}/metrics").text)

    def metric(name: str, **labels: str) -> float:
        return found.get((name, tuple(sorted(labels.items()))), 0.0)

    for row in query(db_url, "SELECT t.name, count(*) FROM events e JOIN triggers t ON t.id = e.trigger_id GROUP BY 1"):
        assert metric("redrive_events_received_total", trigger=row[0]) == row[1]
    counters = {
        (row[0], row[1]): row[2]
        for row in query(
            db_url, "SELECT t.name, c.name, c.value FROM daily_counters c JOIN triggers t ON t.id = c.trigger_id"
        )
    }
    assert metric("redrive_events_duplicate_total", trigger="ok") == counters[("ok", "duplicates")] == 1
    assert metric("redrive_events_conflict_total", trigger="ok") == counters[("ok", "key_conflicts")] == 1
    assert metric("redrive_events_rejected_total", trigger="ok", status="400") == 1
    assert metric("redrive_events_rejected_total", trigger="ok", status="422") == 1
    assert metric("redrive_events_rejected_total", trigger="(unknown)", status="404") == 1
    assert metric("redrive_ingest_duration_seconds_count") == sum(sent.values())

    attempts = query(
        db_url,
        "SELECT x.action_kind, a.outcome, coalesce(a.error_code, ''), count(*) FROM attempts a "
        "JOIN executions x ON x.id = a.execution_id GROUP BY 1, 2, 3",
    )
    assert len(attempts) == 3  # succeeded, transient http_503, permanent http_400
    for kind, outcome, code, count in attempts:
        assert metric("redrive_attempts_total", kind=kind, category=outcome, code=code) == count
    assert metric("redrive_action_duration_seconds_count", kind="http") == sum(row[3] for row in attempts)
    for status, count in query(db_url, f"SELECT status, count(*) FROM executions WHERE status IN {SETTLED} GROUP BY 1"):
        assert metric("redrive_executions_total", status=status, kind="http") == count
    assert metric("redrive_executions_total", status="pending", kind="http") == 2  # the flaky ones' first retries
    assert metric("redrive_dlq_size") == 2
    assert metric("redrive_queue_due") == metric("redrive_queue_running") == 0
    # The writer's work: each accepted or absorbed delivery, claim and completion was one of its jobs.
    written = metric("redrive_writer_jobs_total")
    assert written >= 8 + sum(row[3] for row in attempts)
    assert metric("redrive_writer_transactions_total") >= 1
    assert 0 < metric("redrive_writer_cpu_seconds_total") <= metric("redrive_writer_busy_seconds_total")


def test_system_reports_nodes_queue_process_and_database_to_viewers(db_url: str) -> None:
    config = "triggers: [{name: t, action: {kind: command, argv: ['true']}}]"
    with run_service(db_url, config, heartbeat_interval=0.2) as service:
        assert httpx2.get(f"{service.url}/api/v1/system").status_code == 401

        def leading() -> dict:
            answer = httpx2.get(f"{service.url}/api/v1/system", headers=service.auth("viewer")).json()
            # The node's row says so too from its next beat on (the System page's nodes table reads the rows).
            return answer if answer["node"]["leader"] and answer["nodes"][0]["leader"] else {}

        body = wait_until(leading, what="this node to lead maintenance")
    [node] = body["nodes"]
    assert node["id"] == body["node"]["id"]
    assert node["alive"] is True
    assert node["role"] == "all"
    assert node["leader"] is True
    assert node["rss_bytes"] > 1_000_000
    assert body["node"]["leader"] is True
    assert body["node"]["process"]["rss_bytes"] > 0
    assert body["queue"] == {
        "pending": 0,
        "depth": 0,
        "running": 0,
        "oldest_pending_age_seconds": 0,
        "dlq_size": 0,
        "expired_leases": 0,
    }
    assert body["database"]["size_bytes"] > 0
    assert body["versions"]["database"] == db_url.split(":")[0].split("+")[0]
