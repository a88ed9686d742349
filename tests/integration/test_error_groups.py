"""Error groups on both databases: the worker's upsert (open, counted, regressed), the API's window counts and hints,
resolve and ignore, and the CLI beside them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Connection
from typer.testing import CliRunner

from redrive.cli import app as cli
from redrive.db.schema import attempts, error_groups, events, executions, triggers
from redrive.failures.error_groups import record_failure, set_status
from redrive.failures.hints import hint_for
from support import recount, run_service

CONFIG = """
triggers:
  - name: orders
    action: {kind: http, url: "http://127.0.0.1:9/orders", allow: [127.0.0.1]}
  - name: reports
    action: {kind: command, argv: ["true"]}
"""


def _trigger(connection: Connection, name: str = "orders", kind: str = "http") -> int:
    found = connection.execute(select(triggers.c.id).where(triggers.c.name == name)).scalar_one_or_none()
    if found is not None:
        return int(found)
    now = datetime.now(UTC)
    return int(
        connection.execute(
            triggers.insert()
            .values(name=name, action_kind=kind, paused=False, created_at=now, updated_at=now)
            .returning(triggers.c.id)
        ).scalar_one()
    )


def _failed_execution(
    connection: Connection, trigger_id: int, fingerprint: str, at: datetime, *, status: str = "failed_retryable"
) -> int:
    event_id = connection.execute(
        events.insert()
        .values(trigger_id=trigger_id, body_sha256="0" * 64, headers={}, payload={}, received_at=at)
        .returning(events.c.id)
    ).scalar_one()
    execution_id = int(
        connection.execute(
            executions.insert()
            .values(
                event_id=event_id,
                trigger_id=trigger_id,
                action_kind="http",
                status=status,
                attempts=1,
                run_at=at,
                created_at=at,
                updated_at=at,
                finished_at=at,
                error_category="http",
                error_code="http_503",
                fingerprint=fingerprint,
            )
            .returning(executions.c.id)
        ).scalar_one()
    )
    return execution_id


def _fail(
    connection: Connection,
    trigger_id: int,
    fingerprint: str,
    at: datetime,
    *,
    status: str = "failed_retryable",
    **overrides: object,
) -> str:
    """One failed attempt, recorded the way the worker records it: the attempt row and the group upsert."""
    execution_id = _failed_execution(connection, trigger_id, fingerprint, at, status=status)
    connection.execute(
        attempts.insert().values(
            execution_id=execution_id,
            number=1,
            started_at=at,
            finished_at=at,
            duration_ms=1.0,
            outcome="transient",
            error_category="http",
            error_code="http_503",
            message="upstream answered 503",
            detail={"status": 503},
            fingerprint=fingerprint,
        )
    )
    fields: dict[str, object] = {
        "fingerprint": fingerprint,
        "trigger_id": trigger_id,
        "kind": "http",
        "code": "http_503",
        "category": "http",
        "title": "upstream answered <n>",
        "execution_id": execution_id,
        "at": at,
    }
    fields.update(overrides)
    return record_failure(connection, **fields)  # type: ignore[arg-type]


def _group(connection: Connection, fingerprint: str) -> dict[str, object]:
    row = connection.execute(select(error_groups).where(error_groups.c.fingerprint == fingerprint)).one()
    return dict(row._mapping)


def test_record_failure_opens_counts_regresses_and_respects_ignore(db_url: str) -> None:
    engine = create_engine(db_url)
    t0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    try:
        with engine.begin() as connection:
            trigger_id = _trigger(connection)
            assert _fail(connection, trigger_id, "a" * 16, t0) == "open"
            assert _fail(connection, trigger_id, "a" * 16, t0 + timedelta(minutes=5)) == "open"
            # An older failure committed late neither moves last_seen back nor becomes the sample.
            latest = _group(connection, "a" * 16)["sample_execution_id"]
            assert _fail(connection, trigger_id, "a" * 16, t0 + timedelta(minutes=1)) == "open"
            assert _fail(connection, trigger_id, "a" * 16, t0 - timedelta(minutes=1)) == "open"  # but moves first_seen
            group = _group(connection, "a" * 16)
            assert group["total"] == 4
            assert group["first_seen"] == t0 - timedelta(minutes=1)
            assert group["last_seen"] == t0 + timedelta(minutes=5)
            assert group["sample_execution_id"] == latest
            assert group["status_changed_at"] is None

            set_status("a" * 16, "resolved", t0 + timedelta(hours=1), actor="test")(connection)
            assert _group(connection, "a" * 16)["status"] == "resolved"
            again = t0 + timedelta(hours=2)
            assert _fail(connection, trigger_id, "a" * 16, again) == "regressed"
            group = _group(connection, "a" * 16)
            assert (group["status"], group["status_changed_at"], group["total"]) == ("regressed", again, 5)
            # Regressed stays regressed on further failures; only 'resolved' turns into 'regressed'.
            assert _fail(connection, trigger_id, "a" * 16, again + timedelta(minutes=1)) == "regressed"
            assert _group(connection, "a" * 16)["status_changed_at"] == again

            assert _fail(connection, trigger_id, "b" * 16, t0) == "open"
            set_status("b" * 16, "ignored", t0 + timedelta(hours=1), actor="test")(connection)
            assert _fail(connection, trigger_id, "b" * 16, t0 + timedelta(hours=3)) == "ignored"
            assert _group(connection, "b" * 16)["total"] == 2
            assert set_status("c" * 16, "ignored", t0, actor="test")(connection) is False
    finally:
        engine.dispose()


A, B, C = "a1" * 8, "b2" * 8, "c3" * 8


def _seed_groups(db_url: str, now: datetime) -> None:
    """A: 3 failures today (in the DLQ) and 2 three days ago (replayed since); B: 1 today; C: only old ones."""
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            orders, reports = _trigger(connection, "orders"), _trigger(connection, "reports", "command")
            for hours in (1, 2, 3):
                _fail(connection, orders, A, now - timedelta(hours=hours))
            for _ in range(2):
                _fail(connection, orders, A, now - timedelta(days=3), status="replayed")
            _fail(
                connection,
                reports,
                B,
                now - timedelta(minutes=10),
                kind="command",
                code="exit_127",
                category="permanent",
                title="sh: <str>: not found",
                status="failed",
            )
            _fail(connection, orders, C, now - timedelta(days=3), status="failed")
    finally:
        engine.dispose()
    recount(db_url)  # the rows went straight in, past the live path that keeps the rollups


def test_groups_api_counts_in_window_hints_resolve_ignore_and_regress(db_url: str) -> None:
    with run_service(db_url, CONFIG, worker_concurrency=0) as service, httpx2.Client(base_url=service.url) as http:
        now = datetime.now(UTC)
        _seed_groups(db_url, now)
        viewer, operator = service.auth("viewer"), service.auth("operator")

        def groups(**params: Any) -> list[dict[str, Any]]:
            response = http.get("/api/v1/error-groups", params=params, headers=viewer)
            assert response.status_code == 200, response.text
            items: list[dict[str, Any]] = response.json()["items"]
            return items

        day = groups()
        assert [(g["fingerprint"], g["count"], g["total"], g["dlq"]) for g in day] == [(A, 3, 5, 3), (B, 1, 1, 0)]
        a = day[0]
        assert (a["trigger"], a["kind"], a["code"], a["category"], a["status"]) == (
            "orders",
            "http",
            "http_503",
            "http",
            "open",
        )
        assert a["title"] == "upstream answered <n>"
        assert datetime.fromisoformat(a["first_seen"]) == now - timedelta(days=3)
        assert datetime.fromisoformat(a["last_seen"]) == now - timedelta(hours=1)
        assert isinstance(a["sample_execution_id"], int)
        expected = hint_for("http_503", "upstream answered <n>")
        assert a["hint"] == {"title": expected.title, "advice": expected.advice, "remedy": expected.remedy}
        assert day[1]["hint"]["title"] == hint_for("exit_127", "sh: <str>: not found").title
        assert [g["fingerprint"] for g in groups(since="7d")] == [A, B, C]  # 5, 1, 1: ties by last seen, newest first
        assert [g["fingerprint"] for g in groups(since="7d", trigger="reports")] == [B]
        assert [g["fingerprint"] for g in groups(since="7d", limit=1)] == [A]
        assert groups(since="1m") == []

        one = http.get(f"/api/v1/error-groups/{C}", params={"since": "7d"}, headers=viewer).json()
        assert (one["count"], one["total"], one["dlq"]) == (1, 1, 0)
        assert http.get(f"/api/v1/error-groups/{C}", headers=viewer).json()["count"] == 0
        missing = http.get("/api/v1/error-groups/ffffffffffffffff", headers=viewer)
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
        assert http.get("/api/v1/error-groups?since=8d", headers=viewer).json()["error"]["code"] == "invalid_window"

        assert http.post(f"/api/v1/error-groups/{A}/resolve", headers=viewer).status_code == 403
        resolved = http.post(f"/api/v1/error-groups/{A}/resolve", headers=operator)
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["status"] == "resolved"
        assert resolved.json()["status_changed_at"] is not None
        assert [g["fingerprint"] for g in groups(status="resolved")] == [A]
        ignored = http.post(f"/api/v1/error-groups/{B}/ignore", headers=operator)
        assert ignored.json()["status"] == "ignored"
        unknown = http.post("/api/v1/error-groups/ffffffffffffffff/resolve", headers=operator)
        assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")

        engine = create_engine(db_url)
        try:
            with engine.begin() as connection:
                orders = _trigger(connection, "orders")
                assert _fail(connection, orders, A, datetime.now(UTC)) == "regressed"
        finally:
            engine.dispose()
        recount(db_url)
        after = http.get(f"/api/v1/error-groups/{A}", headers=viewer).json()
        assert (after["status"], after["count"], after["total"], after["dlq"]) == ("regressed", 4, 6, 4)

        trend = http.get(
            "/api/v1/stats/timeseries", params={"since": "24h", "bucket": "1h", "fingerprint": A}, headers=viewer
        ).json()
        assert trend["by"] == "fingerprint"
        assert len(trend["buckets"]) == 25
        assert all(set(b["counts"]) == {"failed"} for b in trend["buckets"])
        assert sum(b["counts"]["failed"] for b in trend["buckets"]) == 4
        assert sum(1 for b in trend["buckets"] if b["counts"]["failed"]) >= 3  # 1 h, 2 h, 3 h ago and now


def json_output(stdout: str) -> Any:
    """The JSON a command printed; the in-process server's log lines may share the captured stdout."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line in ("{", "[", "[]", "{}") or line.startswith(("{", "[{")))
    end = next(i for i in range(start, len(lines)) if lines[i] in ("}", "]", "[]", "{}"))
    return json.loads("\n".join(lines[start : end + 1]))


def test_cli_errors_ls_resolve_ignore(db_url: str) -> None:
    runner = CliRunner()
    with run_service(db_url, CONFIG, worker_concurrency=0) as service:
        _seed_groups(db_url, datetime.now(UTC))
        common = ["--url", service.url, "--token", service.tokens["operator"]]
        listed = runner.invoke(cli, ["errors", "ls", *common])
        as_json = runner.invoke(cli, ["errors", "ls", "--since", "7d", "--json", *common])
        resolved = runner.invoke(cli, ["errors", "resolve", A, *common])
        ignored = runner.invoke(cli, ["errors", "ignore", B, "--json", *common])
        missing = runner.invoke(cli, ["errors", "resolve", "ffffffffffffffff", *common])
    assert listed.exit_code == 0, listed.output
    assert A in listed.stdout
    assert as_json.exit_code == 0, as_json.output
    assert [g["fingerprint"] for g in json_output(as_json.stdout)] == [A, B, C]
    assert json_output(as_json.stdout)[0]["hint"]["title"] == hint_for("http_503").title
    assert resolved.exit_code == 0, resolved.output
    assert f"{A} is resolved" in resolved.stdout
    assert ignored.exit_code == 0
    assert json_output(ignored.stdout)["status"] == "ignored"
    assert missing.exit_code != 0
    assert "not_found" in missing.stderr
    assert "Traceback" not in missing.output
