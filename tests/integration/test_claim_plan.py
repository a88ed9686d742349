"""A claim reads the due pending rows from ix_executions_due in run_at order: no sort of the whole queue.

With 50,000 pending executions (and as many finished ones), the very statement the worker runs
(``queue._claim_statements().lease``, with its bound parameters) is explained on both databases. A partial index on
``run_at WHERE status = 'pending'`` looked right but could not serve it: the claim binds its status as a parameter,
which a planner cannot match to the index's predicate, so SQLite sorted every pending row on every claim.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from plans import executed_plan, plan_nodes, seed_trigger_and_event
from redrive.queue import parking
from redrive.queue.statements import _claim_statements

PENDING = 50_000


HALF_PENDING = "CASE WHEN i % 2 = 0 THEN 'pending' ELSE 'succeeded' END"


def _seed(db_url: str, base: datetime, key: str = "NULL", status: str = HALF_PENDING) -> tuple[Any, int]:
    """``key`` and ``status``: the SQL expressions (of the row number ``i``) of each row's ordering key and status."""
    engine = create_engine(db_url)
    with engine.begin() as connection:
        trigger_id, event_id = seed_trigger_and_event(connection, base)
        insert = (
            "INSERT INTO executions (event_id, trigger_id, action_kind, status, attempts, run_at, created_at, "
            f"updated_at, ordering_key) SELECT :event, :trigger, 'http', {status}, 0, f, f, f, {key}"
        )
        params = {"event": event_id, "trigger": trigger_id, "last": 2 * PENDING - 1}
        if engine.dialect.name == "postgresql":
            f = "CAST(:base AS timestamptz) - i * interval '1 second'"
            rows = f"(SELECT i, {f} AS f FROM generate_series(0, :last) i) n"
            connection.execute(text(f"{insert} FROM {rows}"), {**params, "base": base})
        else:
            step = "strftime('%Y-%m-%d %H:%M:%S', :base, '-' || (i + 1) || ' seconds') || '.000000'"
            rows = f"n(i, f) AS (SELECT 0, :base || '.000000' UNION ALL SELECT i + 1, {step} FROM n WHERE i < :last)"
            base_text = base.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S")
            connection.execute(text(f"WITH RECURSIVE {rows} {insert} FROM n"), {**params, "base": base_text})
    if engine.dialect.name == "postgresql":  # autovacuum would; redrive never runs ANALYZE on an SQLite file
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))
    return engine, trigger_id


def _params(trigger_id: int, now: datetime) -> dict[str, Any]:
    return {
        "c_trigger_ids": [trigger_id],
        "c_now": now,
        "c_limit": 50,
        "c_token": "t" * 32,
        "c_expires": now + timedelta(seconds=30),
        "c_restricted": ["https://held.example:443"],  # an open breaker's destination: skipped, not sorted
    }


@pytest.mark.parametrize("statement", ["lease", "lease_unplanned"])
def test_a_claim_reads_the_due_index_in_order_without_sorting_the_queue(db_url: str, statement: str) -> None:
    """``lease_unplanned``, a claim's lease before any plan (``claim(plan_first=False)``), reads the restricted
    destinations in its own statement instead of taking their names as a parameter: the same range all the same."""
    now = datetime.now(UTC).replace(microsecond=0)
    engine, trigger_id = _seed(db_url, now)
    try:
        plan = executed_plan(engine, getattr(_claim_statements(), statement), _params(trigger_id, now))
        print(f"{engine.dialect.name} claim plan ({statement}):\n{plan}")
        if engine.dialect.name == "postgresql":
            nodes = plan_nodes(json.loads(plan)[0]["Plan"])
            assert any(node.get("Index Name") == "ix_executions_due" for node in nodes), plan
            assert not any(node["Node Type"] == "Sort" for node in nodes), plan
        else:
            assert "USING INDEX ix_executions_due" in plan or "USING COVERING INDEX ix_executions_due" in plan, plan
            assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan
    finally:
        engine.dispose()


def test_an_ordered_claim_finds_each_heads_earlier_rows_with_an_index_range(db_url: str) -> None:
    """Every row keyed (one of 500 keys), dead letters among them: the ordered claim still reads ix_executions_due in
    order, and each of its head tests (earlier in-flight rows, a running row, earlier dead rows of the key) is an
    index range, never a scan of the key's or the table's rows."""
    now = datetime.now(UTC).replace(microsecond=0)
    # Half pending, and dead letters among the rest (as a real queue has them): planners judge by the statistics.
    status = "CASE WHEN i % 2 = 0 THEN 'pending' WHEN i % 3 = 0 THEN 'failed_retryable' ELSE 'succeeded' END"
    engine, trigger_id = _seed(db_url, now, key="'customer-' || (i % 500)", status=status)
    try:
        params = {**_params(trigger_id, now), "c_blocking_ids": [trigger_id]}
        plan = executed_plan(engine, _claim_statements(ordered=True).lease, params)
        print(f"{engine.dialect.name} ordered claim plan:\n{plan}")
        if engine.dialect.name == "postgresql":
            nodes = plan_nodes(json.loads(plan)[0]["Plan"])
            assert any(node.get("Index Name") == "ix_executions_due" for node in nodes), plan
            assert not any(node["Node Type"] == "Sort" for node in nodes), plan
            same_key = [node for node in nodes if node.get("Alias", "").startswith("same_key")]
            assert len(same_key) == 4, plan
            assert all("Index Cond" in node for node in same_key), plan
            # The earlier-row tests (unparked, parked, dead) are ranges of the key in ix_executions_ordering; the "a
            # row of the key is running" test may instead be hashed once from the running rows (as many as leases).
            earlier = [node for node in same_key if "id < " in node["Index Cond"]]
            assert len(earlier) == 3, plan
            assert all(node["Index Name"] == "ix_executions_ordering" for node in earlier), plan
        else:
            assert "USING INDEX ix_executions_due" in plan or "USING COVERING INDEX ix_executions_due" in plan, plan
            assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan
            lookups = [line for line in plan.splitlines() if "same_key" in line]
            assert len(lookups) == 4, plan
            assert all("INDEX ix_executions_ordering (trigger_id=? AND ordering_key=?" in line for line in lookups), (
                plan
            )
    finally:
        engine.dispose()


PARKED = 2_000
DUE = 20


@pytest.mark.parametrize("ordered", [False, True], ids=["unordered", "ordered"])
def test_a_claim_never_reads_the_rows_parked_behind_busy_keys(db_url: str, ordered: bool) -> None:
    """2,000 rows parked behind the 2 running heads of their keys, older than the 20 unordered rows due: the claim's
    range of ix_executions_due is ``status = 'pending' AND key_waiting = false``, so it reads the 20 due rows and
    none of the parked ones (PostgreSQL counts the rows each node read: ``EXPLAIN ANALYZE``)."""
    now = datetime.now(UTC).replace(microsecond=0)
    heads, loose = 2, 2 + DUE  # rows 0-1 run (the heads), 2-21 are unordered and due, then the parked ones
    status = f"CASE WHEN i < {heads} THEN 'running' WHEN i < {loose + PARKED} THEN 'pending' ELSE 'succeeded' END"
    key = f"CASE WHEN i < {heads} OR (i >= {loose} AND i < {loose + PARKED}) THEN 'customer-' || (i % 2) END"
    engine, trigger_id = _seed(db_url, now, key=key, status=status)
    try:
        with engine.begin() as connection:
            parked = "UPDATE executions SET key_waiting = true WHERE status = 'pending' AND ordering_key IS NOT NULL"
            assert connection.execute(text(parked)).rowcount == PARKED
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("ANALYZE executions"))
        statements = _claim_statements(ordered=ordered)
        params = {**_params(trigger_id, now), "c_blocking_ids": [trigger_id]}
        if engine.dialect.name == "postgresql":
            plan = executed_plan(engine, statements.lease, params, analyze=True)
            print(f"postgresql claim plan, {PARKED} parked:\n{plan}")
            nodes = plan_nodes(json.loads(plan)[0]["Plan"])
            # The pending range; the head check's look for running rows of a key may read the index's running range.
            [due] = [n for n in nodes if n.get("Index Name") == "ix_executions_due" and "pending" in n["Index Cond"]]
            assert "key_waiting = false" in due["Index Cond"], plan
            assert due["Actual Rows"] <= DUE + 1, plan  # the due rows (and the one past the range's end), no more
            assert due.get("Rows Removed by Filter", 0) == 0, plan
            assert not any(node["Node Type"] == "Sort" for node in nodes), plan
        else:
            plan = executed_plan(engine, statements.lease, params)
            print(f"sqlite claim plan, {PARKED} parked:\n{plan}")
            assert "ix_executions_due (status=? AND key_waiting=? AND dest_waiting=? AND run_at<?)" in plan, plan
            assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan
        # When the next due row is asked for (a batch came back short), the same range is read up to its first row.
        next_due = executed_plan(engine, statements.next_due, params, analyze=True)
        print(f"next_due plan:\n{next_due}")
        if engine.dialect.name == "postgresql":
            nodes = plan_nodes(json.loads(next_due)[0]["Plan"])
            [due] = [n for n in nodes if n.get("Index Name") == "ix_executions_due" and "pending" in n["Index Cond"]]
            assert "key_waiting = false" in due["Index Cond"], next_due
            assert due["Actual Rows"] <= 1, next_due
        else:
            assert "ix_executions_due (status=? AND key_waiting=? AND dest_waiting=?)" in next_due, next_due
            assert "USE TEMP B-TREE FOR ORDER BY" not in next_due, next_due
        # The oldest due row, parked, laned or not (the system page, the oldest_pending alert): one row of each range.
        oldest = executed_plan(engine, parking.oldest_due(now), {}, analyze=True)
        if engine.dialect.name == "postgresql":
            nodes = plan_nodes(json.loads(oldest)[0]["Plan"])
            ranges = [node for node in nodes if node.get("Index Name") == "ix_executions_due"]
            assert len(ranges) == 3, oldest
            assert all(node["Actual Rows"] <= 1 for node in ranges), oldest
        else:
            ranges = "ix_executions_due (status=? AND key_waiting=? AND dest_waiting=? AND run_at<?)"
            assert oldest.count(ranges) == 3, oldest
    finally:
        engine.dispose()


BURST = 5_000


def test_a_claim_updates_the_rows_it_locked_by_id_after_a_burst_the_statistics_missed(db_url: str) -> None:
    """A queue is mostly empty, so the statistics autovacuum last gathered say almost no row is pending; then a burst
    arrives faster than autovacuum's next look. The claim's UPDATE must find the rows its ``due`` CTE locked by
    primary key. Its own ``status = 'pending'`` guard let PostgreSQL, believing that range held one row, read the
    whole pending range once per locked row (50 x 5,000 comparisons per claim: 6-8 ms a claim in ``peers.py``,
    growing with the backlog).
    """
    now = datetime.now(UTC).replace(microsecond=0)
    engine, trigger_id = _seed(db_url, now, status="'succeeded'")  # analysed with nothing pending
    try:
        with engine.begin() as connection:
            burst = connection.execute(
                text(
                    "UPDATE executions SET status = 'pending' WHERE id IN "
                    "(SELECT id FROM executions ORDER BY id LIMIT :n)"
                ),
                {"n": BURST},
            )
            assert burst.rowcount == BURST
        if engine.dialect.name == "postgresql":
            plan = executed_plan(engine, _claim_statements().lease, _params(trigger_id, now), analyze=True)
            print(f"postgresql claim plan after a burst of {BURST}:\n{plan}")
            top = json.loads(plan)[0]["Plan"]
            assert top["Actual Rows"] == 50, plan
            own = [n for n in plan_nodes(top) if n.get("Alias") == "executions" and n["Node Type"] != "ModifyTable"]
            assert own, plan
            assert all(n.get("Index Name") == "pk_executions" for n in own), plan
            assert sum(n["Actual Rows"] * n["Actual Loops"] for n in own) == 50, plan
        else:
            plan = executed_plan(engine, _claim_statements().lease, _params(trigger_id, now))
            print(f"sqlite claim plan after a burst of {BURST}:\n{plan}")
            assert "SEARCH executions USING INTEGER PRIMARY KEY (rowid=?)" in plan, plan
    finally:
        engine.dispose()
