"""Bulk replay on both databases: dry run, paced runs measured, one job per trigger, cancel, fingerprints, stale
jobs, shutdown, and the audit trail."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
from pytest_httpserver import HTTPServer
from replay_support import dead_letter, error, operations, rows, send, settle, sink, write
from sqlalchemy import insert, update

from redrive.db.schema import bulk_replays, error_groups, executions
from support import Service, run_service, scalar, wait_until


def start(service: Service, filters: dict[str, Any], role: str = "operator", **body: Any) -> httpx2.Response:
    return httpx2.post(
        f"{service.url}/api/v1/replays", json={"filter": filters, **body}, headers=service.auth(role), timeout=10
    )


def job(service: Service, bulk_id: int) -> dict[str, Any]:
    response = httpx2.get(f"{service.url}/api/v1/replays/{bulk_id}", headers=service.auth("viewer"), timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def finished(service: Service, bulk_id: int, timeout: float = 20.0) -> dict[str, Any]:
    return wait_until(
        lambda: (found := job(service, bulk_id))["status"] != "running" and found,
        timeout=timeout,
        what=f"bulk replay {bulk_id} to finish",
    )


def cancel(service: Service, bulk_id: int) -> httpx2.Response:
    url = f"{service.url}/api/v1/replays/{bulk_id}/cancel"
    return httpx2.post(url, headers=service.auth("operator"), timeout=10)


def test_dry_run_counts_samples_and_changes_nothing(db_url: str, httpserver: HTTPServer) -> None:
    _, config = sink(httpserver)
    with run_service(db_url, config) as service:
        ids = dead_letter(service, db_url, 12)
        response = start(service, {"trigger": "sink"}, dry_run=True)
        limited = start(service, {"trigger": "sink", "limit": 3}, dry_run=True).json()
        by_code = start(service, {"trigger": "sink", "code": "http_404"}, dry_run=True).json()
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["dry_run"], body["matched"]) == (True, 12)
    assert [row["id"] for row in body["sample"]] == ids[:10]
    assert body["sample"][0]["error_code"] == "http_503"
    assert (limited["matched"], len(limited["sample"])) == (3, 3)
    assert by_code["matched"] == 0
    assert scalar(db_url, "SELECT count(*) FROM executions WHERE status = 'failed_retryable'") == 12
    assert scalar(db_url, "SELECT count(*) FROM bulk_replays") == 0
    assert scalar(db_url, "SELECT count(*) FROM audit_log WHERE action <> 'token_create'") == 0


def test_bulk_replay_at_20_per_second_keeps_its_rate(db_url: str, httpserver: HTTPServer) -> None:
    answer, config = sink(httpserver)
    with run_service(db_url, config) as service:
        originals = dead_letter(service, db_url, 40)
        answer.status = 200
        response = start(service, {"trigger": "sink"}, rate=20)
        assert response.status_code == 202, response.text
        accepted = response.json()
        assert (accepted["status"], accepted["matched"], accepted["created_by"]) == ("running", 40, "operator")
        done = finished(service, accepted["id"])
        assert (done["status"], done["matched"], done["replayed"], done["skipped"]) == ("done", 40, 40, 0)
        progress = wait_until(lambda: (found := job(service, accepted["id"]))["succeeded"] == 40 and found)
    assert (progress["failed"], progress["pending"], progress["stale"]) == (0, 0, False)
    replays = rows(db_url, executions, executions.c.bulk_replay_id == accepted["id"])
    assert sorted(r.replay_of for r in replays) == originals
    times = sorted(r.created_at for r in replays)
    span = (times[-1] - times[0]).total_seconds()
    rate = 39 / span
    assert 16 <= rate <= 24, f"40 replays took {span:.3f} s: {rate:.1f}/s against 20/s"
    statuses = {r.status for r in rows(db_url, executions, executions.c.id.in_(originals))}
    assert statuses == {"replayed"}
    audit = operations(db_url)
    assert (audit[0].action, audit[0].target, audit[0].result) == ("bulk_replay", f"bulk:{accepted['id']}", "ok")
    assert audit[0].detail["filter"]["trigger"] == "sink"
    assert audit[0].detail["rate"] == 20
    items = [a for a in audit if a.action == "replay"]
    assert len(items) == 40
    assert {a.detail["bulk_replay_id"] for a in items} == {accepted["id"]}


def test_one_bulk_replay_per_trigger_and_cancel_stops_it(db_url: str, httpserver: HTTPServer) -> None:
    _, config = sink(httpserver)
    with run_service(db_url, config) as service:
        dead_letter(service, db_url, 6)
        first = start(service, {"trigger": "sink"}, rate=2).json()
        second = start(service, {"trigger": "sink"}, rate=50)
        assert (second.status_code, error(second)) == (409, "replay_in_progress")
        assert f"/api/v1/replays/{first['id']}/cancel" in second.json()["error"]["message"]
        wait_until(lambda: job(service, first["id"])["replayed"] >= 1)
        cancelled = cancel(service, first["id"])
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        at_cancel = cancelled.json()["replayed"]
        again = cancel(service, first["id"])
        assert (again.status_code, error(again)) == (409, "not_running")
        unknown = cancel(service, 999_999)
        assert (unknown.status_code, error(unknown)) == (404, "not_found")
        time.sleep(1.2)  # two more slots at 2/s: a runner that missed the cancel would replay again
        after = job(service, first["id"])
        third = start(service, {"trigger": "sink"}, rate=100)
        assert third.status_code == 202, third.text
        finished(service, third.json()["id"])
    assert after["status"] == "cancelled"
    assert after["replayed"] == at_cancel < after["matched"] == 6
    assert after["finished_at"] is not None
    results = [(a.action, a.result) for a in operations(db_url) if a.action != "replay"]
    assert results == [
        ("bulk_replay", "ok"),
        ("bulk_replay", "replay_in_progress"),
        ("bulk_replay_cancel", "ok"),
        ("bulk_replay_cancel", "not_running"),
        ("bulk_replay_cancel", "not_found"),
        ("bulk_replay", "ok"),
    ]


def test_replay_by_fingerprint(db_url: str, httpserver: HTTPServer) -> None:
    _, config = sink(httpserver)
    with run_service(db_url, config) as service:
        ids = dead_letter(service, db_url, 3)
        trigger_id = scalar(db_url, "SELECT id FROM triggers WHERE name = 'sink'")
        now = datetime.now(UTC)
        write(
            db_url,
            insert(error_groups).values(
                fingerprint="fp0123456789abcd",
                trigger_id=trigger_id,
                action_kind="http",
                code="http_503",
                category="transient",
                title="HTTP <n> SERVICE UNAVAILABLE",
                status="open",
                total=2,
                first_seen=now,
                last_seen=now,
            ),
        )
        write(db_url, update(executions).where(executions.c.id.in_(ids[:2])).values(fingerprint="fp0123456789abcd"))
        write(db_url, update(executions).where(executions.c.id == ids[2]).values(fingerprint="fpother000000000"))
        dry = start(service, {"fingerprint": "fp0123456789abcd"}, dry_run=True).json()
        unknown = start(service, {"fingerprint": "fpnope"}, dry_run=True)
        accepted = start(service, {"fingerprint": "fp0123456789abcd"}, rate=100).json()
        done = finished(service, accepted["id"])
    assert dry["matched"] == 2
    assert (unknown.status_code, error(unknown)) == (404, "not_found")
    assert (done["status"], done["replayed"], done["trigger"]) == ("done", 2, "sink")
    assert done["filter"]["fingerprint"] == "fp0123456789abcd"
    statuses = [r.status for r in rows(db_url, executions, executions.c.id.in_(ids), order=executions.c.id)]
    assert statuses == ["replayed", "replayed", "failed_retryable"]


def test_rules_for_starting_a_bulk_replay(db_url: str, httpserver: HTTPServer) -> None:
    _, config = sink(httpserver, status=400)
    with run_service(db_url, config) as service:
        [failed] = dead_letter_permanently(service, db_url)
        cases = {
            "no trigger": start(service, {}),
            "rate 0": start(service, {"trigger": "sink"}, rate=0),
            "rate 501": start(service, {"trigger": "sink"}, rate=501),
            "limit 0": start(service, {"trigger": "sink", "limit": 0}),
            "naive since": start(service, {"trigger": "sink", "since": "2024-01-01T00:00:00"}),
            "unknown status": start(service, {"trigger": "sink", "status": "succeeded"}),
        }
        unknown = start(service, {"trigger": "nope"})
        viewer = start(service, {"trigger": "sink"}, role="viewer")
        operator_failed = start(service, {"trigger": "sink", "status": "failed"})
        admin_failed = start(service, {"trigger": "sink", "status": "failed"}, role="admin", rate=100)
        assert admin_failed.status_code == 202, admin_failed.text
        done = finished(service, admin_failed.json()["id"])
        missing = httpx2.get(f"{service.url}/api/v1/replays/999999", headers=service.auth("viewer"), timeout=10)
    for name, response in cases.items():
        assert (response.status_code, error(response)) == (422, "invalid_request"), name
    assert (unknown.status_code, error(unknown)) == (404, "unknown_trigger")
    assert viewer.status_code == 403
    assert (operator_failed.status_code, error(operator_failed)) == (403, "forbidden")
    assert (done["status"], done["replayed"]) == ("done", 1)
    assert rows(db_url, executions, executions.c.replay_of == failed)[0].status in {"pending", "running", "failed"}
    assert (missing.status_code, error(missing)) == (404, "not_found")
    audit = [(a.action, a.result) for a in operations(db_url)]
    assert audit == [("bulk_replay", "forbidden"), ("bulk_replay", "ok"), ("replay", "ok")]


def dead_letter_permanently(service: Service, db_url: str) -> list[int]:
    execution_id = send(service, 1)
    assert settle(db_url, execution_id) == "failed"
    return [execution_id]


def test_a_stale_job_is_reported_and_can_be_cancelled(db_url: str, httpserver: HTTPServer) -> None:
    _, config = sink(httpserver)
    with run_service(db_url, config) as service:
        dead_letter(service, db_url, 2)
        trigger_id = scalar(db_url, "SELECT id FROM triggers WHERE name = 'sink'")
        long_ago = datetime.now(UTC) - timedelta(minutes=10)
        write(
            db_url,
            insert(bulk_replays).values(
                trigger_id=trigger_id,
                filter={"trigger": "sink"},
                rate=10,
                status="running",
                matched=5,
                created_by="someone",
                created_at=long_ago,
            ),
        )
        orphan = int(scalar(db_url, "SELECT id FROM bulk_replays"))
        refused = start(service, {"trigger": "sink"})
        shown = job(service, orphan)
        assert cancel(service, orphan).status_code == 200
        accepted = start(service, {"trigger": "sink"}, rate=100)
        assert accepted.status_code == 202, accepted.text
        finished(service, accepted.json()["id"])
    assert (refused.status_code, error(refused)) == (409, "replay_in_progress")
    assert "probably stopped" in refused.json()["error"]["message"]
    assert shown["stale"] is True
    assert shown["last_progress_at"] == long_ago.isoformat()


def test_shutdown_marks_a_running_job_stopped(db_url: str, httpserver: HTTPServer) -> None:
    _, config = sink(httpserver)
    with run_service(db_url, config) as service:
        dead_letter(service, db_url, 4)
        accepted = start(service, {"trigger": "sink"}, rate=0.5).json()
        wait_until(lambda: job(service, accepted["id"])["replayed"] >= 1)
    row = rows(db_url, bulk_replays)[0]
    assert (row.status, row.error) == ("failed", "runner stopped: the service shut down")
    assert row.replayed < 4
    assert row.finished_at is not None


def test_items_that_stop_matching_are_skipped(db_url: str, httpserver: HTTPServer) -> None:
    _, config = sink(httpserver)
    with run_service(db_url, config, worker_concurrency=0) as service:
        ids = [send(service, n) for n in range(3)]
        write(db_url, update(executions).where(executions.c.id.in_(ids)).values(status="failed_retryable"))
        accepted = start(service, {"trigger": "sink"}, rate=2).json()
        # While the runner waits for the second slot, the last one is replayed by hand.
        last = httpx2.post(
            f"{service.url}/api/v1/executions/{ids[2]}/replay", headers=service.auth("operator"), timeout=10
        )
        assert last.status_code == 200
        done = finished(service, accepted["id"])
    assert (done["status"], done["matched"], done["replayed"], done["skipped"]) == ("done", 3, 2, 1)
