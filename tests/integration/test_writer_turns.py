"""The SQLite writer's turn at the file (``db.engine``): the jobs that arrive while another process holds the file
join the transaction that was waiting for it (``Writer._top_up``), so the processes take fewer turns for the same
jobs; and a close that arrives meanwhile still runs every queued job and stops the writer."""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection
from writer_support import mark, marks, with_marks

from redrive.db.database import Database
from redrive.db.engine import write_turn_path
from support import wait_until

pytestmark = [pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    with_marks(database)
    database.start()
    yield database
    database.close()


def other_process_turn(db_url: str) -> int:
    """Take the file's turn as another process does: through an open file description of the writer's own."""
    path = write_turn_path(db_url)
    assert path is not None
    turn = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(turn, fcntl.LOCK_EX)
    return turn


async def submitted(db: Database, job: Callable[[Connection], str]) -> asyncio.Future[str]:
    """``db.write(job)`` started: by the time this returns, the job is in the writer's queue."""
    future = asyncio.ensure_future(db.write(job))
    await asyncio.sleep(0)  # the task's first step queues the job
    return future


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (off the event loop, which delivers the writer's results) until ``condition`` holds."""
    await asyncio.to_thread(wait_until, condition, what=what)


def test_jobs_that_arrive_while_another_process_writes_join_the_waiting_transaction(db: Database, db_url: str) -> None:
    commits: list[object] = []
    event.listen(db.write_engine, "commit", commits.append)
    turn = other_process_turn(db_url)

    async def scenario() -> list[str]:
        first = await submitted(db, mark("first"))
        await until(lambda: db.writer.queued == 0, "the first job collected: its batch waits for the turn")
        second = await submitted(db, mark("second"))
        assert db.writer.queued == 1
        assert not first.done()
        fcntl.flock(turn, fcntl.LOCK_UN)
        return list(await asyncio.gather(first, second))

    try:
        assert asyncio.run(scenario()) == ["first", "second"]
    finally:
        os.close(turn)
    assert len(commits) == 1  # one turn for both
    assert marks(db) == ["first", "second"]


def test_a_close_while_the_writer_waits_for_its_turn_runs_the_queued_jobs_and_stops(db_url: str) -> None:
    database = Database(db_url)
    with_marks(database)
    database.start()
    turn = other_process_turn(db_url)
    closer = threading.Thread(target=database.writer.close)

    async def scenario() -> list[str]:
        first = await submitted(database, mark("first"))
        await until(lambda: database.writer.queued == 0, "the first job collected")
        second = await submitted(database, mark("second"))
        assert database.writer.queued == 1
        assert not first.done()
        closer.start()  # queues the writer's stop behind ``second``
        await until(lambda: database.writer.queued == 2, "the stop queued behind the second job")
        fcntl.flock(turn, fcntl.LOCK_UN)
        done = list(await asyncio.gather(first, second))
        await asyncio.to_thread(closer.join, 10)
        return done

    try:
        assert asyncio.run(scenario()) == ["first", "second"]
        assert not closer.is_alive()
        assert marks(database) == ["first", "second"]
    finally:
        os.close(turn)
        database.close()
