"""Listing destinations (the API's ``GET /api/v1/destinations``, the CLI's ``destinations ls``, the dashboard's
Destinations page) when there are tens of thousands: a row per destination ever seen, one per customer's endpoint
when a trigger's URL is templated. The list was built whole in Python (0.5 to 1 s at 40,000 to 70,000), and before
that bound every name as a parameter, which failed past PostgreSQL's 65,535. A page now reads the restricted rows and
one walk of the primary key of the closed ones, binds the page's names alone, and counts the rest in one GROUP BY."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text

from plans import seed_trigger_and_event
from redrive.db.database import Database
from redrive.destinations.paging import CLOSED_RANK, PageQuery, Position
from redrive.destinations.views import list_destinations

pytestmark = [pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)]

NOW = datetime(2031, 1, 1, tzinfo=UTC)
DESTINATIONS = 66_000
QUEUED_AT = "https://customer-7.example:443"
ATTENTION = {  # name: (state, forced), in the order they are listed: by name, the other way round
    "https://customer-900.example:443": ("open", None),
    "https://customer-600.example:443": ("half_open", None),
    "https://customer-300.example:443": ("closed", "closed"),
}
LIMIT = 100


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO destinations (name, state, restricted, changed_at, window_start, updated_at) "
                    "SELECT 'https://customer-' || n || '.example:443', 'closed', false, :at, :at, :at "
                    "FROM generate_series(1, :count) AS n"
                ),
                {"at": NOW, "count": DESTINATIONS},
            )
            for name, (state, forced) in ATTENTION.items():
                connection.execute(
                    text("UPDATE destinations SET state = :state, forced = :forced, restricted = true WHERE name = :n"),
                    {"state": state, "forced": forced, "n": name},
                )
            trigger_id, event_id = seed_trigger_and_event(connection, NOW)
            connection.execute(
                text(
                    "INSERT INTO executions (event_id, trigger_id, action_kind, status, attempts, run_at, created_at, "
                    "updated_at, destination) VALUES (:event, :trigger, 'http', 'pending', 0, :at, :at, :at, :to)"
                ),
                {"event": event_id, "trigger": trigger_id, "at": NOW, "to": QUEUED_AT},
            )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE destinations"))  # as autovacuum would
    finally:
        engine.dispose()
    database = Database(db_url)
    yield database
    database.close()


@contextmanager
def rows_read(engine: Engine) -> Iterator[Callable[[], list[tuple[str, int]]]]:
    """Each statement the engine runs inside the block, with the number of rows it returned."""
    seen: list[tuple[str, int]] = []

    def returned(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append((" ".join(statement.split()), cursor.rowcount))

    event.listen(engine, "after_cursor_execute", returned)
    try:
        yield lambda: seen
    finally:
        event.remove(engine, "after_cursor_execute", returned)


def test_the_first_page_reads_the_restricted_rows_and_one_page_of_closed_ones(db: Database) -> None:
    with rows_read(db.read_engine) as statements:
        first = db.read_sync(list_destinations(NOW, PageQuery(LIMIT)))
    names = [item["name"] for item in first["items"]]
    assert names[:3] == list(ATTENTION)
    closed = sorted(f"https://customer-{n}.example:443" for n in range(1, DESTINATIONS + 1))
    assert names[3:] == [name for name in closed if name not in ATTENTION][: LIMIT - 3]
    assert first["next_cursor"] is not None
    assert first["summary"] == {"open": 1, "half_open": 1, "closed": DESTINATIONS - 2, "forced": 1, "total": 66_000}
    # Of the destinations' rows, the page read the restricted ones and the closed ones it shows (and one to know
    # that a page follows), never the table's; the summary counted the table in one statement.
    read = [(sql, n) for sql, n in statements() if "FROM destinations" in sql]
    counted = [n for sql, n in read if "count(*)" in sql]
    assert counted == [1], read
    assert len(read) == 3, read
    assert sum(n for _, n in read) == LIMIT + 1 + 1, read


def test_a_page_deep_in_the_closed_rank_counts_its_queued_work(db: Database) -> None:
    deep = db.read_sync(list_destinations(NOW, PageQuery(3, Position(CLOSED_RANK, "https://customer-7"))))
    names = [item["name"] for item in deep["items"]]
    assert names == [QUEUED_AT, "https://customer-70.example:443", "https://customer-700.example:443"]
    assert (deep["items"][0]["pending"], deep["items"][0]["held"]) == (1, 0)
