"""The executions indexes that a successful run never reads are partial (``<column> IS NOT NULL``), so such a row
puts no entry in them, and every statement that reads one still gets an index range from it on both databases.

20,000 executions are seeded the way a busy queue looks: succeeded rows (no fingerprint, lease, replay or bulk
replay), a few running rows with a lease, a few dead letters with a fingerprint, replays of some of them. Then the
statements of the sweeper, retention, the bulk-replay progress, the system page and the error-group drill-down are
explained with their bound parameters.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, not_, select, text

from plans import executed_plan, explain_plan, integers, plan_nodes, prepared_plan, seed_trigger_and_event
from redrive.db.schema import executions
from redrive.node import retention
from redrive.queue import statements
from redrive.queue.executions import ExecutionFilter, executions_query
from redrive.queue.statements import back_to_pending
from redrive.states import ExecutionStatus

ROWS = 20_000
# Indexes a succeeded row with no fingerprint, lease, replay or bulk replay must stay out of, ordered or not.
PARTIAL = (
    "ix_executions_lease",
    "ix_executions_fingerprint",
    "ix_executions_bulk_replay",
    "ix_executions_replay_of",
    "ix_executions_ordering",
)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


def _seed(engine: Engine, now: datetime, rows: int, *, only_succeeded: bool = False, ordered: bool = False) -> None:
    numbers = integers(engine, 0, rows - 1)
    # Row i: every 100th running under a lease, every 50th (otherwise) a dead letter with a fingerprint.
    status = (
        "'succeeded'"
        if only_succeeded
        else ("CASE WHEN i % 100 = 0 THEN 'running' WHEN i % 50 = 0 THEN 'failed_retryable' ELSE 'succeeded' END")
    )
    lease = "NULL" if only_succeeded else "CASE WHEN i % 100 = 0 THEN :t END"
    finished = ":t" if only_succeeded else "CASE WHEN i % 100 = 0 THEN NULL ELSE :t END"
    fingerprint = "NULL" if only_succeeded else "CASE WHEN i % 100 = 50 THEN 'fp' || (i % 7) END"
    key = "'customer-' || (i % 50)" if ordered else "NULL"
    with engine.begin() as connection:
        trigger_id, event_id = seed_trigger_and_event(connection, now)
        connection.execute(
            text(
                "INSERT INTO executions (event_id, trigger_id, action_kind, status, attempts, run_at, created_at, "
                "updated_at, finished_at, lease_expires_at, lease_token, fingerprint, ordering_key) "
                f"SELECT :event, :trigger, 'http', {status}, 1, :t, :t, :t, {finished}, {lease}, "
                f"CASE WHEN {lease} IS NOT NULL THEN 'token' END, {fingerprint}, {key} FROM ({numbers}) AS seq"
            ),
            {"event": event_id, "trigger": trigger_id, "t": now},
        )
        if not only_succeeded:  # replays of the first dead letters
            connection.execute(
                text(
                    "INSERT INTO executions (event_id, trigger_id, action_kind, status, attempts, run_at, created_at, "
                    "updated_at, replay_of) SELECT event_id, trigger_id, 'http', 'pending', 0, :t, :t, :t, id "
                    "FROM executions WHERE status = 'failed_retryable' ORDER BY id LIMIT 20"
                ),
                {"t": now},
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE"))


def _uses(engine: Engine, plan: str, index: str, sqlite_search: str) -> None:
    """``plan`` reads ``index`` (an index range) and never scans the executions table."""
    if engine.dialect.name == "postgresql":
        nodes = plan_nodes(json.loads(plan)[0]["Plan"])
        assert any(n.get("Index Name") == index for n in nodes), plan
        assert not [n for n in nodes if n["Node Type"] == "Seq Scan" and n["Relation Name"] == "executions"], plan
    else:
        assert f"INDEX {index} ({sqlite_search})" in plan, plan


def test_each_partial_index_serves_the_statements_that_read_it(engine: Engine) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    _seed(engine, now, ROWS)
    later = now + timedelta(minutes=5)

    sweep = back_to_pending(later, executions.c.lease_expires_at < later)
    _uses(engine, executed_plan(engine, sweep, {}), "ix_executions_lease", "status=? AND lease_expires_at<?")

    before = now - timedelta(seconds=1)  # nothing expired yet: retention's usual case, where a scan would be costly
    cut = retention.Cutoffs(before, before, before)
    purge = (
        select(executions.c.id, executions.c.status)
        .where(retention._expired(cut), not_(retention._replayed_later()))
        .limit(retention.BATCH)
    )
    plan = explain_plan(engine, purge)
    _uses(engine, plan, "ix_executions_finished", "status=? AND finished_at<?")
    _uses(engine, plan, "ix_executions_replay_of", "replay_of=?")

    progress = select(func.count()).where(executions.c.bulk_replay_id == 1)
    _uses(engine, explain_plan(engine, progress), "ix_executions_bulk_replay", "bulk_replay_id=?")

    expired = select(func.count()).where(
        executions.c.status == ExecutionStatus.RUNNING, executions.c.lease_expires_at < later
    )
    _uses(engine, explain_plan(engine, expired), "ix_executions_lease", "status=? AND lease_expires_at<?")

    group = executions_query(ExecutionFilter(fingerprint="fp3"))
    _uses(engine, explain_plan(engine, group), "ix_executions_fingerprint", "fingerprint=?")


def test_a_succeeded_row_enters_none_of_the_partial_indexes(engine: Engine) -> None:
    # Ordered rows: a succeeded row never holds its key, so it leaves ix_executions_ordering too.
    _seed(engine, datetime.now(UTC).replace(microsecond=0), 2_000, only_succeeded=True, ordered=True)
    with engine.connect() as connection:
        for index in PARTIAL:
            if engine.dialect.name == "postgresql":
                # An empty B-tree is its metapage alone; 2,000 entries would take several pages.
                size = connection.execute(text("SELECT pg_relation_size(CAST(:i AS regclass))"), {"i": index})
                assert size.scalar_one() == 8192, index
            else:
                # ANALYZE records each index's entry count first in sqlite_stat1 (no row for an empty index).
                stat = connection.execute(text("SELECT stat FROM sqlite_stat1 WHERE idx = :i"), {"i": index})
                entries = stat.scalar_one_or_none()
                assert entries is None or int(entries.split()[0]) == 0, (index, entries)


def test_the_fenced_completion_finds_its_rows_by_primary_key(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the one-statement fenced update is PostgreSQL's (SQLite reads, then updates, by id)")
    now = datetime.now(UTC).replace(microsecond=0)
    _seed(engine, now, ROWS)
    done = {key: ["succeeded", "succeeded"] for key in ("statuses", "tokens")} | {"ids": [100, 200]}
    empty = {key: [None, None] for key in ("run_ats", "categories", "codes", "messages", "fingerprints")}
    params = done | empty | {"updated_ats": [now, now], "finished_ats": [now, now], "charges": [1, 0]}
    params |= attempts_of(2, now)
    plan = executed_plan(engine, statements._FENCED_UPDATE, params)
    nodes = plan_nodes(json.loads(plan)[0]["Plan"])
    assert any(n.get("Index Name") == "pk_executions" for n in nodes), plan
    assert not [n for n in nodes if n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "executions"], plan


LEASED = 500


def test_the_fenced_completion_reads_each_row_once_after_leases_the_statistics_missed(engine: Engine) -> None:
    """The statistics were gathered when nothing ran (a fresh database, a drained queue); then 500 rows were leased
    faster than autovacuum's next look. A completion of 50 of them reads the running rows once at most: no part of
    its plan runs again for each row. When its values were a set of rows joined to the table, PostgreSQL, believing
    one row ran, read the running rows and scanned the whole batch again for each (500 x 50 here; 2.4-2.8 ms a
    completion in ``peers.py``, whose cached plan was made while the table was new)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the one-statement fenced update is PostgreSQL's (SQLite reads, then updates, by id)")
    now = datetime.now(UTC).replace(microsecond=0)
    _seed(engine, now, ROWS, only_succeeded=True)  # analysed with nothing running
    with engine.begin() as connection:
        leased = connection.execute(
            text(
                "UPDATE executions SET status = 'running', lease_token = 'token', lease_expires_at = :t, "
                "finished_at = NULL WHERE id IN (SELECT id FROM executions ORDER BY id LIMIT :n) RETURNING id"
            ),
            {"t": now, "n": LEASED},
        )
        ids = sorted(leased.scalars())[-50:]
    batch = len(ids)
    params = {
        "ids": ids,
        "tokens": ["token"] * batch,
        "statuses": ["succeeded"] * batch,
        "updated_ats": [now] * batch,
        "finished_ats": [now] * batch,
        "charges": [1] * batch,
    } | {key: [None] * batch for key in ("run_ats", "categories", "codes", "messages", "fingerprints")}
    params |= attempts_of(batch, now)
    plan = _generic_plan(engine, str(statements._FENCED_UPDATE), params)
    print(f"fenced completion after {LEASED} leases the statistics missed:\n{plan}")
    top = json.loads(plan)[0]["Plan"]
    assert top["Actual Rows"] == batch, plan
    scans = [node for node in plan_nodes(top) if "Scan" in node["Node Type"]]
    assert all(node["Actual Loops"] == 1 and node["Actual Rows"] <= LEASED for node in scans), plan


def attempts_of(batch: int, now: datetime) -> dict[str, list[Any]]:
    """The attempts' own arrays of ``_FENCED_UPDATE`` for ``batch`` successes."""
    return {
        "started_ats": [now] * batch,
        "durations": [1.0] * batch,
        "outcomes": ["success"] * batch,
        "details": ["null"] * batch,
        "excerpts": [None] * batch,
        "requests": ["null"] * batch,
    }


def _generic_plan(engine: Engine, sql: str, params: dict[str, Any]) -> str:
    """``EXPLAIN ANALYZE`` of ``sql`` (a text with ``:name`` parameters) run by its generic plan, as a statement
    that the driver prepared runs once PostgreSQL stops planning it for each call's values (after five calls).

    Which join the planner picks for one believed row is a matter of a few cost units (a hash join here, a nested
    loop in peers.py's cached plan): take the nested loop, so that a statement that joins is seen doing so."""
    return prepared_plan(engine, sql, params, analyze=True, enable_hashjoin="off", enable_mergejoin="off")
