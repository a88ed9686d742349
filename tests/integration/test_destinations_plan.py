"""The restricted destinations are read from their own partial index (``ix_destinations_restricted``).

The table keeps a row for every destination that ever counted an outcome: one per customer's endpoint when a
trigger's URL is templated. Every claim reads the restricted ones (its plan, or the lease that leaves them out), so
with 5,000 rows and one of them restricted both statements are explained on both databases: each reads the index,
never the table's every row. So does the destinations list's page: the restricted rows from their index, the closed
ones by a walk of the primary key from the cursor's name, with no sort.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, create_engine, text

from plans import executed_plan, plan_nodes
from redrive.destinations.store import _statements
from redrive.destinations.views import closed_rows, restricted_rows
from redrive.queue.statements import _claim_statements

DESTINATIONS = 5_000
NOW = datetime(2031, 1, 1, tzinfo=UTC)


def _reads_the_index(engine_name: str, plan: str) -> bool:
    if engine_name == "postgresql":
        nodes = plan_nodes(json.loads(plan)[0]["Plan"])
        on_destinations = [node for node in nodes if node.get("Relation Name") == "destinations"]
        return bool(on_destinations) and all(
            node.get("Index Name") == "ix_destinations_restricted" for node in on_destinations
        )
    lines = [line for line in plan.splitlines() if "destinations" in line]
    return bool(lines) and all("ix_destinations_restricted" in line for line in lines)


def _walks_the_primary_key(engine_name: str, plan: str) -> bool:
    """Every read of the table is an ordered scan of its primary key, and nothing is sorted."""
    if engine_name == "postgresql":
        nodes = plan_nodes(json.loads(plan)[0]["Plan"])
        on_destinations = [node for node in nodes if node.get("Relation Name") == "destinations"]
        sorted_ = [node for node in nodes if node["Node Type"] in ("Sort", "Incremental Sort")]
        return (
            bool(on_destinations)
            and not sorted_
            and all(node.get("Index Name") == "pk_destinations" for node in on_destinations)
        )
    lines = [line for line in plan.splitlines() if "destinations" in line]
    return (
        bool(lines) and "TEMP B-TREE" not in plan and all("sqlite_autoindex_destinations_1" in line for line in lines)
    )


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """5,000 closed destinations, the first of them restricted, analysed as autovacuum would."""
    engine = create_engine(db_url)
    with engine.begin() as connection:
        rows = [
            {"name": f"https://customer-{n}.example:443", "restricted": n == 0, "at": NOW} for n in range(DESTINATIONS)
        ]
        connection.execute(
            text(
                "INSERT INTO destinations (name, state, restricted, changed_at, window_start, updated_at) "
                "VALUES (:name, 'closed', :restricted, :at, :at, :at)"
            ),
            rows,
        )
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE destinations"))
    yield engine
    engine.dispose()


def test_a_claim_reads_the_restricted_destinations_from_their_index(engine: Engine) -> None:
    lease = {
        "c_trigger_ids": [1],
        "c_now": NOW,
        "c_limit": 50,
        "c_token": "t" * 32,
        "c_expires": NOW + timedelta(seconds=30),
    }
    plans = {
        "the plan's read": executed_plan(engine, _statements().restricted, {}),
        "the unplanned lease": executed_plan(engine, _claim_statements().lease_unplanned, lease),
    }
    for what, plan in plans.items():
        print(f"{engine.dialect.name}, {what}:\n{plan}")
        assert _reads_the_index(engine.dialect.name, plan), (what, plan)


def test_a_page_of_the_destinations_list_reads_the_restricted_index_and_walks_the_primary_key(
    engine: Engine,
) -> None:
    for after in (None, "https://customer-2500"):
        attention = executed_plan(engine, restricted_rows(after), {})
        print(f"{engine.dialect.name}, the attention rows, later than {after}:\n{attention}")
        assert _reads_the_index(engine.dialect.name, attention), attention
        assert "TEMP B-TREE" not in attention, attention  # by name, as the index is
        assert '"Sort"' not in attention, attention
    for after in (None, "https://customer-2500"):
        page = executed_plan(engine, closed_rows(after, 101), {})
        print(f"{engine.dialect.name}, the closed rows after {after}:\n{page}")
        assert _walks_the_primary_key(engine.dialect.name, page), (after, page)
