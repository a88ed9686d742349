"""Parking and promotion find their rows by id, however long the backlog: a plan test on both databases.

An ordered trigger's ingest parks each batch's new rows whose key has a holder, and each completion batch promotes
the next parked row of the keys it freed. Both statements name their rows by id and keep status guards; on SQLite,
which plans without statistics (as the service runs it: no ``ANALYZE``), the guards chose the plan and the
statements read the whole ``pending`` range (the backlog) or every parked row, once per batch. Seeded here: 20,000
pending rows of 1,000 keys, half of them parked, the way a queue looks while it drains behind busy keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from plans import executed_plan, generic_plan, integers, plan_nodes, seed_trigger_and_event
from redrive.queue import parking

ROWS = 20_000
KEYS = 1_000
BATCH = list(range(ROWS - 30, ROWS))  # the newest rows, as an ingest batch makes them


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


def _seed(engine: Engine, now: datetime) -> None:
    numbers = integers(engine, 1, ROWS)
    with engine.begin() as connection:
        trigger_id, event_id = seed_trigger_and_event(connection, now)
        connection.execute(
            text(
                "INSERT INTO executions (id, event_id, trigger_id, action_kind, status, attempts, run_at, created_at, "
                "updated_at, ordering_key, key_waiting) "
                f"SELECT i, :event, :trigger, 'http', 'pending', 0, :t, :t, :t, 'k' || (i % {KEYS}), i > {KEYS} "
                f"FROM ({numbers}) AS seq"
            ),
            {"event": event_id, "trigger": trigger_id, "t": now},
        )
    if engine.dialect.name == "postgresql":  # PostgreSQL plans from statistics, which autovacuum keeps
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE executions"))


def _by_id(engine: Engine, plan: str) -> None:
    """``plan`` finds the statement's own rows (and, promoting, the freed ones) by primary key."""
    if engine.dialect.name == "postgresql":
        nodes = plan_nodes(json.loads(plan)[0]["Plan"])
        own = [n for n in nodes if n.get("Alias") in ("executions", "freed") and n["Node Type"] != "ModifyTable"]
        assert own, plan
        assert all(n.get("Index Name") == "pk_executions" for n in own), plan
    else:
        assert plan.splitlines()[0] == "SEARCH executions USING INTEGER PRIMARY KEY (rowid=?)", plan
        assert "ix_executions_due" not in plan, plan


def _keys_searched(engine: Engine, plan: str, aliases: set[str]) -> None:
    """``plan``'s searches of a key's rows (the tables ``aliases``) are ranges of ix_executions_ordering, which
    leaves succeeded rows out: each search repeats the index's status test (``parking.in_ordering_index``)."""
    if engine.dialect.name == "postgresql":
        nodes = [n for n in plan_nodes(json.loads(plan)[0]["Plan"]) if n.get("Alias") in aliases]
        assert nodes, plan
        assert all(n.get("Index Name") == "ix_executions_ordering" for n in nodes), plan
    else:
        lines = [line for line in plan.splitlines() if any(f"SEARCH {alias} " in line for alias in aliases)]
        assert lines, plan
        assert all("INDEX ix_executions_ordering (trigger_id=? AND ordering_key=?" in line for line in lines), plan


def _keys_plan(engine: Engine, statement: Any, params: dict[str, Any]) -> str:
    """The plan to read the keys' searches in. On PostgreSQL the generic one, which the driver's prepared statements
    get after five calls: a plan made for the bound values proves the index's status test from them, with or without
    the literal term, so only the generic plan can show the term missing."""
    if engine.dialect.name == "postgresql":
        return generic_plan(engine, statement, params)
    return executed_plan(engine, statement, params)


def test_parking_and_promotion_find_their_rows_by_id_behind_a_backlog(engine: Engine) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    _seed(engine, now)
    park = {parking._IDS: BATCH, parking._BLOCKING: []}
    _by_id(engine, executed_plan(engine, parking._park(), park))
    _keys_searched(engine, _keys_plan(engine, parking._park(), park), {"earlier"})
    promote = {parking._IDS: BATCH, parking._NOW: now, parking._BLOCKING: []}
    _by_id(engine, executed_plan(engine, parking._promote(False, False), promote))
    _keys_searched(engine, _keys_plan(engine, parking._promote(False, False), promote), {"holder", "parked"})
