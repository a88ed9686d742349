"""The authoritative count over 1,000,000 executions is answered from ix_executions_finished on both databases.

The rows are seeded in one statement (PostgreSQL: generate_series; SQLite: a recursive CTE), statistics gathered,
then the very statement the route runs (``stats.count_statement``) is explained with its bound parameters.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, create_engine, event, text

from plans import explain_plan, plan_nodes, seed_trigger_and_event
from redrive.db.schema import executions
from redrive.observe.stats import count_statement, statuses_for

ROWS = 1_000_000
STEP_SECONDS = 2  # row i finished i * 2 s before the base time: the rows span about 23 days
# Row i: kind http/command/email by i % 3; status by i % 10: 0-6 succeeded, 7 failed, 8 failed_retryable,
# 9 replayed. finished_at = base - i * STEP_SECONDS.
KINDS = ("http", "command", "email")
STATUSES = ("succeeded",) * 7 + ("failed", "failed_retryable", "replayed")


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
        insert = (
            "INSERT INTO executions (event_id, trigger_id, action_kind, status, attempts, run_at, created_at, "
            f"updated_at, finished_at) SELECT :event, :trigger, {kind}, {status}, 1, f, f, f, f"
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
        else:
            # SQLAlchemy stores SQLite datetimes as naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'; match it exactly.
            step = "strftime('%Y-%m-%d %H:%M:%S', :base, '-' || ((i + 1) * :step) || ' seconds') || '.000000'"
            rows = f"n(i, f) AS (SELECT 0, :base || '.000000' UNION ALL SELECT i + 1, {step} FROM n WHERE i < :last)"
            base_text = base.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S")
            connection.execute(text(f"WITH RECURSIVE {rows} {insert} FROM n"), {**params, "base": base_text})
        for index in executions.indexes:
            index.create(connection)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE executions" if engine.dialect.name == "postgresql" else "ANALYZE"))


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
            statement = count_statement(success, since, kind)
            with engine.connect() as connection:
                count = connection.execute(statement).scalar_one()
            assert count == _expected(base, since, statuses_for(success), kind), (success, window, kind)
            plan = explain_plan(engine, statement)
            print(f"{engine.dialect.name} plan for success={success} since={window} kind={kind}:\n{plan}")
            if engine.dialect.name == "postgresql":
                nodes = plan_nodes(json.loads(plan)[0]["Plan"])
                scans = [(n["Node Type"], n.get("Index Name")) for n in nodes if "Scan" in n["Node Type"]]
                assert scans, plan
                assert all(
                    node in {"Index Only Scan", "Index Scan", "Bitmap Index Scan", "Bitmap Heap Scan"}
                    for node, _ in scans
                ), plan
                assert any(index == "ix_executions_finished" for _, index in scans), plan
            else:
                assert "USING COVERING INDEX ix_executions_finished" in plan or (
                    "USING INDEX ix_executions_finished" in plan
                ), plan
                assert "SCAN executions" not in plan.splitlines(), plan  # a full table scan
        print(f"{engine.dialect.name}: seeded {ROWS} rows in {seeded:.1f}s")
    finally:
        engine.dispose()
