"""The authoritative count over 1,000,000 executions is answered from ix_executions_finished on both databases, and
every other statistic statement (the summary's counts about now and its attempt counts, the error groups' counts)
reads an index range too, over as many attempts.

The rows are seeded in one statement per table (PostgreSQL: generate_series; SQLite: a recursive CTE), statistics
gathered, then the very statements the routes run are explained with their bound parameters.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, create_engine, event, text

from plans import explain_plan, plan_nodes, seed_trigger_and_event
from redrive.db.schema import attempts, executions
from redrive.failures.error_groups import GroupFilter, failures_by_group_statement, list_statement
from redrive.node import retention
from redrive.observe.stats import (
    attempts_failed_statement,
    count_statement,
    retries_statement,
    status_count_statement,
    statuses_for,
)
from redrive.triggers.config import RetentionConfig

ROWS = 1_000_000
STEP_SECONDS = 2  # row i finished i * 2 s before the base time: the rows span about 23 days
# Row i: kind http/command/email by i % 3; status by i % 10: 0-6 succeeded, 7 failed, 8 failed_retryable,
# 9 replayed. finished_at = base - i * STEP_SECONDS. Failed ones carry one of GROUPS fingerprints. Attempt i (one
# per execution) is number 1 + i % 3, succeeded when i % 4 == 0, else failed with fingerprint 'fp' || i % GROUPS.
KINDS = ("http", "command", "email")
STATUSES = ("succeeded",) * 7 + ("failed", "failed_retryable", "replayed")
GROUPS = 8


def _seed(engine: Engine, base: datetime) -> None:
    """One trigger, one event and ROWS executions, loaded the way databases like a bulk load."""
    with engine.begin() as connection:
        trigger_id, event_id = seed_trigger_and_event(connection, base)
        # Drop the table's indexes, insert, then build them again from schema.py: the same indexes, made fast.
        for index in executions.indexes:
            index.drop(connection)
        kind = "CASE i % 3 WHEN 0 THEN 'http' WHEN 1 THEN 'command' ELSE 'email' END"
        status = (
            "CASE i % 10 WHEN 7 THEN 'failed' WHEN 8 THEN 'failed_retryable' WHEN 9 THEN 'replayed' "
            "ELSE 'succeeded' END"
        )
        for index in attempts.indexes:
            index.drop(connection)
        fingerprint = f"CASE WHEN i % 10 >= 7 THEN 'fp' || (i % {GROUPS}) END"
        insert = (
            "INSERT INTO executions (event_id, trigger_id, action_kind, status, attempts, run_at, created_at, "
            f"updated_at, finished_at, fingerprint) SELECT :event, :trigger, {kind}, {status}, 1, f, f, f, f, "
            f"{fingerprint}"
        )
        outcome = "CASE i % 4 WHEN 0 THEN 'succeeded' WHEN 1 THEN 'permanent' ELSE 'transient' END"
        failed_print = f"CASE WHEN i % 4 > 0 THEN 'fp' || (i % {GROUPS}) END"
        attempt_insert = (
            "INSERT INTO attempts (execution_id, number, started_at, finished_at, duration_ms, outcome, detail, "
            f"fingerprint) SELECT i + 1, 1 + i % 3, f, f, 1.0, {outcome}, '{{}}', {failed_print}"
        )
        params: dict[str, Any] = {"trigger": trigger_id, "event": event_id, "last": ROWS - 1, "step": STEP_SECONDS}
        if engine.dialect.name == "postgresql":
            # The rows reference the one trigger and event; skipping per-row foreign-key triggers saves most of
            # the load time (the test connects as a superuser).
            connection.execute(text("SET LOCAL session_replication_role = replica"))
            connection.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
            finished = "CAST(:base AS timestamptz) - i * make_interval(secs => :step)"
            rows = f"(SELECT i, {finished} AS f FROM generate_series(0, :last) AS i) AS n"
            connection.execute(text(f"{insert} FROM {rows}"), {**params, "base": base})
            connection.execute(text(f"{attempt_insert} FROM {rows}"), {**params, "base": base})
        else:
            # SQLAlchemy stores SQLite datetimes as naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'; match it exactly.
            step = "strftime('%Y-%m-%d %H:%M:%S', :base, '-' || ((i + 1) * :step) || ' seconds') || '.000000'"
            rows = f"n(i, f) AS (SELECT 0, :base || '.000000' UNION ALL SELECT i + 1, {step} FROM n WHERE i < :last)"
            base_text = base.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S")
            connection.execute(text(f"WITH RECURSIVE {rows} {insert} FROM n"), {**params, "base": base_text})
            connection.execute(text(f"WITH RECURSIVE {rows} {attempt_insert} FROM n"), {**params, "base": base_text})
        for index in (*executions.indexes, *attempts.indexes):
            index.create(connection)
        connection.execute(
            text(
                "INSERT INTO error_groups (fingerprint, trigger_id, action_kind, code, category, title, status, total, "
                "first_seen, last_seen) VALUES (:fingerprint, :trigger, 'http', 'http_500', 'transient', 't', 'open', "
                "1, :t, :t)"
            ),
            [{"fingerprint": f"fp{n}", "trigger": trigger_id, "t": base} for n in range(GROUPS)],
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        if engine.dialect.name == "postgresql":
            for table in ("executions", "attempts", "error_groups"):
                connection.execute(text(f"VACUUM ANALYZE {table}"))
        else:
            connection.execute(text("ANALYZE"))


def _expected(base: datetime, since: datetime, statuses: tuple[str, ...], kind: str | None) -> int:
    newest_outside = (base - since) // timedelta(seconds=STEP_SECONDS)  # rows 0..this finished at or after since
    return sum(
        1 for i in range(newest_outside + 1) if STATUSES[i % 10] in statuses and (kind is None or KINDS[i % 3] == kind)
    )


def _engine(db_url: str) -> Engine:
    engine = create_engine(db_url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _bulk_pragmas(dbapi_connection: Any, record: Any) -> None:
            # A throwaway test file: no fsync per commit, and room to sort while the indexes are built.
            dbapi_connection.execute("PRAGMA synchronous=OFF")
            dbapi_connection.execute("PRAGMA cache_size=-262144")

    return engine


def test_windowed_count_over_a_million_rows_reads_the_index(db_url: str) -> None:
    engine = _engine(db_url)
    base = datetime.now(UTC).replace(microsecond=0)
    try:
        started = time.monotonic()
        _seed(engine, base)
        seeded = time.monotonic() - started
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM executions")).scalar_one() == ROWS
        cases = [
            (False, timedelta(hours=1), "http"),
            (True, timedelta(hours=24), None),
            (None, timedelta(days=7), "email"),
        ]
        for success, window, kind in cases:
            since = base - window
            statement = count_statement(statuses_for(success), since, kind)
            with engine.connect() as connection:
                count = connection.execute(statement).scalar_one()
            assert count == _expected(base, since, statuses_for(success), kind), (success, window, kind)
            _assert_reads_indexes(engine, statement, {"ix_executions_finished"}, f"success={success} since={window}")
        _other_statements_read_indexes(engine, base)
        _retention_reads_its_trigger_range(engine, base)
        print(f"{engine.dialect.name}: seeded {ROWS} rows in {seeded:.1f}s")
    finally:
        engine.dispose()


def _retention_reads_its_trigger_range(engine: Engine, base: datetime) -> None:
    """The retention pass reads the trigger's rows created before the cutoff (ix_executions_trigger_created),
    whether rows have expired (7 days) or none has (60 days); given one OR of the expiry tests and no bound on
    created_at, both planners walked every row of the trigger on every batch."""
    with engine.connect() as connection:
        trigger_id = connection.execute(text("SELECT id FROM triggers")).scalar_one()
    for days in (7, 60):
        cut = retention.cutoffs(RetentionConfig(succeeded=days * 86400, dead_letter=days * 86400), base)
        statement = retention.expired_rows(trigger_id, cut).limit(500)
        with engine.connect() as connection:
            found = connection.execute(statement).all()
        # Every row is succeeded or dead: past 7 days, all expire, oldest first (the highest ids here).
        assert [row.id for row in found] == ([] if days == 60 else list(range(ROWS, ROWS - 500, -1))), days
        plan = _assert_reads_indexes(engine, statement, {"ix_executions_trigger_created"}, f"retention {days}d")
        if engine.dialect.name == "postgresql":  # the range is bounded by the cutoff, not the trigger's every row
            conditions = [n.get("Index Cond", "") for n in plan_nodes(json.loads(plan)[0]["Plan"])]
            assert any("trigger_id" in c and "created_at <" in c for c in conditions), plan
        else:
            assert "ix_executions_trigger_created (trigger_id=? AND created_at<?)" in plan, plan


def _assert_reads_indexes(engine: Engine, statement: Any, indexes: set[str], what: str) -> str:
    """The plan reads every table through an index, and through each of ``indexes``; no full scan anywhere."""
    plan = explain_plan(engine, statement)
    print(f"{engine.dialect.name} plan for {what}:\n{plan}")
    if engine.dialect.name == "postgresql":
        nodes = plan_nodes(json.loads(plan)[0]["Plan"])
        scans = [
            (n["Node Type"], n.get("Index Name"), n.get("Relation Name")) for n in nodes if "Scan" in n["Node Type"]
        ]
        assert scans, plan
        # error_groups is one row per fingerprint (a handful here): scanning it is reading it, not a table scan.
        big = [(node, index) for node, index, relation in scans if relation != "error_groups"]
        assert all(
            node in {"Index Only Scan", "Index Scan", "Bitmap Index Scan", "Bitmap Heap Scan"} for node, _ in big
        ), plan
        assert indexes <= {index for _, index, _ in scans}, plan
    else:
        lines = plan.splitlines()
        for index in indexes:
            assert any(f"INDEX {index}" in line for line in lines), (index, plan)
        assert not any(line.strip() in {"SCAN executions", "SCAN attempts"} for line in lines), plan
    return plan


def _other_statements_read_indexes(engine: Engine, base: datetime) -> None:
    """The summary's counts about now and its attempt counts, and the error groups' counts: index ranges."""
    window = base - timedelta(hours=1)
    in_window = (base - window) // timedelta(seconds=STEP_SECONDS) + 1  # attempts 0..this - 1 finished in it
    expected = {
        "dead letters": (status_count_statement(["failed_retryable"]), ROWS // 10),
        "permanent failures": (status_count_statement(["failed"]), ROWS // 10),
        "failed attempts": (attempts_failed_statement(window), sum(1 for i in range(in_window) if i % 4)),
        "retries": (retries_statement(window), sum(1 for i in range(in_window) if i % 3)),
    }
    with engine.connect() as connection:
        for what, (statement, count) in expected.items():
            assert connection.execute(statement).scalar_one() == count, what
        groups = connection.execute(list_statement(GroupFilter(window))).all()
    assert len(groups) == GROUPS
    assert sum(row.count for row in groups) == expected["failed attempts"][1]
    assert sum(row.failing for row in groups) == 2 * (ROWS // 10)  # every failed and failed_retryable row
    # Any index that starts with status serves a count by status; the planner picks the smallest.
    status_first = {index.name for index in executions.indexes if index.expressions[0].name == "status"}
    for what in ("dead letters", "permanent failures"):
        plan = _assert_reads_indexes(engine, expected[what][0], set(), what)
        assert any(name in plan for name in status_first if name), plan
    for what in ("failed attempts", "retries"):
        _assert_reads_indexes(engine, expected[what][0], {"ix_attempts_finished"}, what)
    head = failures_by_group_statement(window - timedelta(seconds=40), window)  # a window's partial first minute
    with engine.connect() as connection:
        by_group = {row[0]: row[1] for row in connection.execute(head) if row[0] is not None}
    assert sum(by_group.values()) == 15  # an attempt every 2 s, three in four failed
    _assert_reads_indexes(engine, head, {"ix_attempts_finished"}, "the error groups' partial minute")
    _assert_reads_indexes(
        engine,
        list_statement(GroupFilter(window)),
        {"ix_attempts_fingerprint_finished", "ix_executions_fingerprint"},
        "the error groups",
    )
