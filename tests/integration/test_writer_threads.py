"""The group-commit writer on PostgreSQL: several threads commit at once, and a batch that lost a race with another
transaction (a deadlock, a serialization failure) is run again whole instead of failing its jobs."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy.engine import Connection
from writer_support import mark, marks, with_marks

from redrive.db.database import Database

pytestmark = [pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)]


@pytest.fixture
def db(db_url: str):
    database = Database(db_url, writer_connections=4)
    with_marks(database)
    database.start()
    yield database
    database.close()


def test_a_batch_commits_while_another_is_still_open(db: Database) -> None:
    released = threading.Event()

    def waits_for_the_other(connection: Connection) -> bool:
        mark("first")(connection)
        return released.wait(10)  # with one writer thread the second job could only run after this returns

    async def scenario() -> tuple[bool, str]:
        first = asyncio.ensure_future(db.write(waits_for_the_other))
        await asyncio.sleep(0.05)  # the first job's batch is open and waiting
        second = await db.write(mark("second"))
        released.set()
        return await first, second

    assert asyncio.run(scenario()) == (True, "second")
    assert marks(db) == ["first", "second"]


def test_a_batch_that_lost_a_lock_race_is_run_again_whole(db: Database) -> None:
    failures = iter(["40P01", "40001"])  # deadlock_detected, then serialization_failure, then through

    def races(connection: Connection) -> str:
        mark("racer")(connection)
        if (state := next(failures, None)) is not None:
            connection.exec_driver_sql(f"DO $$ BEGIN RAISE EXCEPTION 'lost a race' USING ERRCODE = '{state}'; END $$")
        return "racer"

    async def scenario() -> list[str]:
        jobs = [races, mark("neighbour-1"), mark("neighbour-2")]
        return list(await asyncio.gather(*(db.write(job) for job in jobs)))

    assert asyncio.run(scenario()) == ["racer", "neighbour-1", "neighbour-2"]
    assert marks(db) == ["neighbour-1", "neighbour-2", "racer"]  # each once: the failed runs were rolled back
