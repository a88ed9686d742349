"""The stats API on both databases: the since rule, windowed counts equal to the database, the summary with its
warnings and counters, zero-filled time series, the watermark warning logged once, and the CLI."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from sqlalchemy import create_engine, func, select, update
from structlog.testing import capture_logs
from typer.testing import CliRunner

from redrive.cli import app as cli
from redrive.db.database import Database
from redrive.db.schema import attempts, daily_counters, events, executions, triggers
from redrive.observe.watermarks import WatermarkWatch
from redrive.observe.windows import bucket_starts, floor_time
from redrive.states import ExecutionStatus
from support import recount, run_service, scalar, wait_until

CONFIG = """
triggers:
  - name: web
    action: {kind: http, url: "http://127.0.0.1:9/hook", allow: [127.0.0.1]}
    limits: {daily_watermark: 3}
  - name: job
    action: {kind: command, argv: ["true"]}
  - name: mail
    action:
      kind: email
      smtp: {host: 127.0.0.1, port: 2525}
      from: redrive@example.com
      to: ops@example.com
      subject: hi
      text: hello
    limits: {daily_watermark: 100}
"""
KIND_OF = {"web": "http", "job": "command", "mail": "email"}
FINISHED = ("succeeded", "failed", "failed_retryable", "replayed")


def ids_by_name(db_url: str) -> dict[str, int]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            return {name: id_ for name, id_ in connection.execute(select(triggers.c.name, triggers.c.id))}
    finally:
        engine.dispose()


def seed(db_url: str, rows: list[dict[str, Any]]) -> list[int]:
    """Insert one event and one execution per row (keys: trigger, status, created, finished, replay_of)."""
    trigger_ids = ids_by_name(db_url)
    engine = create_engine(db_url)
    ids = []
    try:
        with engine.begin() as connection:
            for row in rows:
                created = row.get("created") or row.get("finished") or datetime.now(UTC)
                trigger_id = trigger_ids[row["trigger"]]
                event_id = connection.execute(
                    events.insert()
                    .values(trigger_id=trigger_id, body_sha256="0" * 64, headers={}, payload={}, received_at=created)
                    .returning(events.c.id)
                ).scalar_one()
                ids.append(
                    connection.execute(
                        executions.insert()
                        .values(
                            event_id=event_id,
                            trigger_id=trigger_id,
                            action_kind=KIND_OF[row["trigger"]],
                            status=row["status"],
                            attempts=1,
                            run_at=created,
                            created_at=created,
                            updated_at=created,
                            finished_at=row.get("finished"),
                            replay_of=row.get("replay_of"),
                        )
                        .returning(executions.c.id)
                    ).scalar_one()
                )
    finally:
        engine.dispose()
    recount(db_url)  # the rows went straight in, past the live path that keeps the rollups
    return ids


def run_sql(db_url: str, statement: Any) -> None:
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(statement)
    finally:
        engine.dispose()


def count_in_db(db_url: str, statuses: tuple[str, ...], since: datetime, kind: str | None) -> int:
    query = select(func.count()).where(executions.c.status.in_(statuses), executions.c.finished_at >= since)
    if kind is not None:
        query = query.where(executions.c.action_kind == kind)
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


def test_since_must_follow_the_rule_and_kind_must_be_known(db_url: str) -> None:
    with run_service(db_url, CONFIG, worker_concurrency=0) as service, httpx2.Client(base_url=service.url) as http:
        http.headers.update(service.auth("viewer"))

        def get(**params: str) -> httpx2.Response:
            return http.get("/api/v1/executions/stats", params=params)

        for bad in ("0h", "8d", "1x", "", "1H", "99999999999d", " 1h"):
            response = get(since=bad)
            assert response.status_code == 422, (bad, response.text)
            error = response.json()["error"]
            assert error["code"] == "invalid_window"
            assert "'15m', '1h', '24h', '7d'" in error["message"]
            assert "whole number > 0 followed by s, m, h or d, at most 7 days" in error["message"]
        assert http.get("/api/v1/executions/stats?since=%201h").status_code == 422
        for good in ("7d", "15m"):
            response = get(since=good)
            assert response.status_code == 200, response.text
            assert response.json() == {"since": good, "success": None, "kind": None, "count": 0}
        bogus = get(since="1h", kind="bogus")
        assert (bogus.status_code, bogus.json()["error"]["code"]) == (422, "invalid_request")
        assert get(since="1h", success="maybe").status_code == 422
        assert http.get("/api/v1/stats", params={"days": 31}).status_code == 422
        assert http.get("/api/v1/stats", params={"days": 0}).status_code == 422
        too_fine = http.get("/api/v1/stats/timeseries", params={"since": "7d", "bucket": "1m"})
        assert (too_fine.status_code, too_fine.json()["error"]["code"]) == (422, "invalid_window")
        assert "2000" in too_fine.json()["error"]["message"]
        bad_bucket = http.get("/api/v1/stats/timeseries", params={"bucket": "2d"})
        assert (bad_bucket.status_code, bad_bucket.json()["error"]["code"]) == (422, "invalid_window")
        # The executions router still answers for real ids.
        assert http.get("/api/v1/executions/12345").json()["error"]["code"] == "not_found"
        assert httpx2.get(f"{service.url}/api/v1/executions/stats").status_code == 401


def test_counts_equal_the_database_for_every_success_kind_and_window(db_url: str) -> None:
    offsets = [timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=3), timedelta(days=2), timedelta(days=8)]
    with run_service(db_url, CONFIG, worker_concurrency=0) as service:
        now = datetime.now(UTC)
        rows: list[dict[str, Any]] = []
        for n, (trigger, status, offset) in enumerate(
            (t, s, o) for t in KIND_OF for s in ExecutionStatus for o in offsets
        ):
            finished = now - offset if status in FINISHED else None
            rows.extend([{"trigger": trigger, "status": status, "finished": finished}] * (1 + n % 3))
        seed(db_url, rows)
        windows = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": None}
        checked = 0
        for since, window in windows.items():
            for success in (None, True, False):
                for kind in (None, "http", "command", "email"):
                    params = {"since": since, "kind": kind, "success": None if success is None else str(success)}
                    response = httpx2.get(
                        f"{service.url}/api/v1/executions/stats",
                        params={k: v for k, v in params.items() if v is not None},
                        headers=service.auth("viewer"),
                    )
                    assert response.status_code == 200, response.text
                    body = response.json()
                    # false: failing now, so a replayed execution is in neither true nor false, only in "all".
                    statuses = {None: FINISHED, True: ("succeeded",), False: ("failed", "failed_retryable")}[success]
                    horizon = now - (window or timedelta(days=7))
                    expected = sum(
                        1
                        for row in rows
                        if row["status"] in statuses
                        and row["finished"] is not None
                        and row["finished"] >= horizon
                        and (kind is None or KIND_OF[row["trigger"]] == kind)
                    )
                    in_db = count_in_db(db_url, statuses, horizon, kind)
                    assert body == {"since": since, "success": success, "kind": kind, "count": expected}, params
                    assert in_db == expected
                    checked += expected
        assert checked > 0


def test_summary_counts_warnings_and_daily_counters(db_url: str) -> None:
    with run_service(db_url, CONFIG, worker_concurrency=0) as service:
        now = datetime.now(UTC)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        today = midnight + (now - midnight) / 2  # surely today and in the past
        two_days_ago = midnight - timedelta(days=1, hours=12)
        rows = [
            # web: three events today (its watermark is 3)
            {"trigger": "web", "status": "succeeded", "created": today, "finished": today},
            {"trigger": "web", "status": "failed", "created": today, "finished": today},
            {"trigger": "web", "status": "replayed", "created": today, "finished": today},
            # job: eleven dead letters today, one pending
            *[{"trigger": "job", "status": "failed_retryable", "created": today, "finished": today}] * 11,
            {"trigger": "job", "status": "pending", "created": today},
            # mail: older executions only
            *[{"trigger": "mail", "status": "succeeded", "created": two_days_ago, "finished": two_days_ago}] * 3,
        ]
        ids = seed(db_url, rows)
        replay = seed(db_url, [{"trigger": "web", "status": "pending", "created": today, "replay_of": ids[2]}])
        trigger_ids = ids_by_name(db_url)
        day = midnight.date()
        counters = [
            (trigger_ids["web"], day, "duplicates", 3),
            (trigger_ids["web"], day, "key_conflicts", 1),
            (trigger_ids["job"], day, "duplicates", 2),
            (trigger_ids["web"], day - timedelta(days=1), "duplicates", 5),
            (trigger_ids["web"], day - timedelta(days=5), "key_conflicts", 7),
            (trigger_ids["job"], day, "something_else", 100),
        ]
        run_sql(
            db_url,
            daily_counters.insert().values(
                [{"trigger_id": t, "day": d, "name": n, "value": v} for t, d, n, v in counters]
            ),
        )
        run_sql(
            db_url,
            attempts.insert().values(
                [
                    {
                        "execution_id": ids[3],
                        "number": n,
                        "started_at": at,
                        "finished_at": at,
                        "duration_ms": 1.0,
                        "outcome": outcome,
                        "detail": {},
                    }
                    for n, (outcome, at) in enumerate(
                        [("transient", today)] * 4 + [("permanent", today), ("transient", two_days_ago)], start=1
                    )
                ]
            ),
        )
        run_sql(db_url, update(triggers).where(triggers.c.name == "mail").values(paused=True))
        recount(db_url)

        def summary(days: int) -> dict[str, Any]:
            response = httpx2.get(f"{service.url}/api/v1/stats?days={days}", headers=service.auth("viewer"))
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body

        one = summary(1)
        three = summary(3)
        seven = summary(7)
    assert one["days"] == 1
    assert one["since"] == midnight.isoformat()
    assert one["by_status"] == {
        "pending": 2,
        "running": 0,
        "succeeded": 1,
        "failed_retryable": 11,
        "failed": 1,
        "replayed": 1,
    }
    assert one["total"] == 16
    assert three["by_status"]["succeeded"] == 4
    assert three["total"] == 19
    assert one["dlq_size"] == three["dlq_size"] == 11
    assert (one["idempotent_replays"], one["key_conflicts"]) == (5, 1)
    assert (three["idempotent_replays"], three["key_conflicts"]) == (10, 1)
    assert (seven["idempotent_replays"], seven["key_conflicts"]) == (10, 8)
    # Attempts 1-4 transient and 5 permanent today, 6 transient two days ago: retries are attempts 2 and later.
    assert (one["retries_observed"], three["retries_observed"]) == (4, 5)
    assert (one["attempts_failed"], three["attempts_failed"]) == (5, 6)
    assert one["failing_now"] == three["failing_now"] == 12  # 11 dead letters + 1 permanent failure, any age
    assert one["permanent_failures"] == 1
    assert one["replays"] == 1
    assert replay
    assert one["triggers"] == {
        "job": {"count": 12, "daily_watermark": None, "watermark_hit": False, "paused": False},
        "mail": {"count": 0, "daily_watermark": 100, "watermark_hit": False, "paused": True},
        "web": {"count": 4, "daily_watermark": 3, "watermark_hit": True, "paused": False},
    }
    assert three["triggers"] == one["triggers"]  # per-trigger volume is always today's
    assert one["warnings"] == ["dlq_growing", "watermark_hit:web"]


def test_ten_dead_letters_do_not_warn(db_url: str) -> None:
    with run_service(db_url, CONFIG, worker_concurrency=0) as service:
        seed(db_url, [{"trigger": "job", "status": "failed_retryable", "finished": datetime.now(UTC)}] * 10)
        body = httpx2.get(f"{service.url}/api/v1/stats", headers=service.auth("viewer")).json()
    assert body["dlq_size"] == 10
    assert body["warnings"] == []


def test_watermark_hit_is_logged_once_per_trigger_and_day(db_url: str) -> None:
    with capture_logs() as logs, run_service(db_url, CONFIG, worker_concurrency=0) as service:
        for n in range(4):
            assert httpx2.post(f"{service.url}/hooks/web", json={"n": n}).status_code == 202

        def hits() -> list[dict[str, Any]]:
            return [entry for entry in logs if entry["event"] == "watermark_hit"]

        wait_until(hits, timeout=15, what="the watermark warning")
        # Another process watching the same database does not log it again.
        db = Database(db_url)
        db.start()
        try:
            assert asyncio.run(WatermarkWatch(db, service.state.triggers).check()) == []
        finally:
            db.close()
    [hit] = hits()
    assert hit["log_level"] == "warning"
    assert (hit["trigger"], hit["watermark"]) == ("web", 3)
    assert hit["count"] >= 3
    today = datetime.now(UTC).date()
    logged = scalar(
        db_url,
        "SELECT count(*) FROM daily_counters WHERE name = 'watermark_logged' AND day = :day",
        day=today.isoformat() if db_url.startswith("sqlite") else today,
    )
    assert logged == 1


def _expected_buckets(times: list[tuple[datetime, str]], bucket: timedelta) -> dict[str, Counter[str]]:
    expected: dict[str, Counter[str]] = {}
    for at, key in times:
        expected.setdefault(floor_time(at, bucket).isoformat(), Counter())[key] += 1
    return expected


@pytest.mark.parametrize("by", ["status", "kind", "trigger"])
def test_timeseries_buckets_are_zero_filled_and_counted_per_key(db_url: str, by: str) -> None:
    with run_service(db_url, CONFIG, worker_concurrency=0) as service:
        now = datetime.now(UTC)
        rows = [
            {"trigger": trigger, "status": status, "finished": now - timedelta(minutes=minutes)}
            for trigger, status, minutes in [
                ("web", "succeeded", 7),
                ("web", "succeeded", 8),
                ("web", "failed", 22),
                ("job", "failed_retryable", 22),
                ("mail", "replayed", 41),
                ("job", "succeeded", 41.5),
                ("web", "succeeded", 90),  # outside the hour
            ]
        ]
        rows.append({"trigger": "job", "status": "pending", "finished": None})
        seed(db_url, rows)
        response = httpx2.get(
            f"{service.url}/api/v1/stats/timeseries",
            params={"since": "1h", "bucket": "5m", "by": by},
            headers=service.auth("viewer"),
        )
        until = datetime.now(UTC)
        kinds = set(service.state.registry.kinds)  # every loaded kind: the built-ins and the installed plugins'
    assert {"http", "command", "email", "python"} <= kinds
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["since"], body["bucket"], body["by"]) == ("1h", "5m", by)
    starts = [datetime.fromisoformat(b["start"]) for b in body["buckets"]]
    assert len(starts) == 13  # an hour of 5-minute buckets overlaps 13 of them
    assert starts[0] == floor_time(starts[0], timedelta(minutes=5))
    assert all(later - earlier == timedelta(minutes=5) for earlier, later in itertools.pairwise(starts))
    assert starts == bucket_starts(starts[0], starts[-1], timedelta(minutes=5))
    assert starts[-1] <= until
    keys = {"status": set(FINISHED), "kind": kinds, "trigger": {"web", "job", "mail"}}[by]
    assert all(set(b["counts"]) == keys for b in body["buckets"])

    def key_of(row: dict[str, Any]) -> str:
        return {"status": row["status"], "kind": KIND_OF[row["trigger"]], "trigger": row["trigger"]}[by]

    in_window = [
        (row["finished"], key_of(row)) for row in rows if row["finished"] and row["finished"] > now - timedelta(hours=1)
    ]
    expected = _expected_buckets(in_window, timedelta(minutes=5))
    for entry in body["buckets"]:
        counted = {key: n for key, n in entry["counts"].items() if n}
        assert counted == dict(expected.get(entry["start"], {})), entry["start"]
    assert sum(sum(b["counts"].values()) for b in body["buckets"]) == 6


def json_output(stdout: str) -> Any:
    """The JSON a command printed; the in-process server's log lines may share the captured stdout."""
    lines = stdout.splitlines()
    start = lines.index("{")
    return json.loads("\n".join(lines[start : lines.index("}", start) + 1]))


def test_cli_stats_prints_the_count_and_the_summary(db_url: str) -> None:
    runner = CliRunner()
    with run_service(db_url, CONFIG, worker_concurrency=0) as service:
        now = datetime.now(UTC)
        seed(
            db_url,
            [
                {"trigger": "web", "status": "failed", "finished": now - timedelta(minutes=5)},
                {"trigger": "web", "status": "succeeded", "finished": now - timedelta(minutes=5)},
                {"trigger": "job", "status": "failed", "finished": now - timedelta(minutes=5)},
            ],
        )
        common = ["--url", service.url, "--token", service.tokens["viewer"]]
        plain = runner.invoke(cli, ["stats", "--since", "1h", "--kind", "http", "--failure", *common])
        as_json = runner.invoke(cli, ["stats", "--days", "2", "--json", *common])
        bad = runner.invoke(cli, ["stats", "--since", "8d", *common])
        anonymous = runner.invoke(cli, ["stats", "--url", service.url, "--token", "rdv_nope"])
    assert plain.exit_code == 0, plain.output
    assert "1 http execution failing now, finished in the last 1h" in plain.stdout
    assert "watermark" in plain.stdout
    assert as_json.exit_code == 0, as_json.output
    document = json_output(as_json.stdout)
    assert document["count"] == {"since": "1h", "success": None, "kind": None, "count": 3}
    assert document["summary"]["days"] == 2
    assert document["summary"]["by_status"]["failed"] == 2
    assert bad.exit_code != 0
    assert "invalid_window" in bad.stderr
    assert "'15m', '1h', '24h', '7d'" in bad.stderr
    assert "Traceback" not in bad.output
    assert anonymous.exit_code != 0
    assert "unauthenticated" in anonymous.stderr
