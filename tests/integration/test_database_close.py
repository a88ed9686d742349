"""Closing the database waits for the reads in flight, and leaves no connection open.

A read runs in a thread and outlives the task that awaited it: a shutdown cancels the task, not the thread. Disposing
of an engine closes the connections idle in its pool; one checked out at that moment went back, when its read ended,
to the pool the engine had let go of, and stayed open until the garbage collector found it. psycopg then warned
(``ResourceWarning: ... was deleted while still open``), and the suite, where warnings are errors, failed whichever
test the collector happened to run in: the intermittent failure of earlier CI runs.
"""

from __future__ import annotations

import asyncio
import threading

import psycopg
from sqlalchemy import Connection, make_url, text

from databases import PG_ADMIN
from redrive.db.database import Database


def test_close_waits_for_a_read_in_flight_and_leaves_no_connection_open(db_url: str) -> None:
    db = Database(db_url)  # its writer not started: close() has only the reads to wait for
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow_read(connection: Connection) -> int:
        value = int(connection.execute(text("SELECT 1")).scalar_one())
        entered.set()
        release.wait(30)
        finished.set()
        return value

    async def shutdown_during_a_read() -> bool:
        read = asyncio.ensure_future(db.read(slow_read))
        await asyncio.to_thread(entered.wait, 30)
        read.cancel()  # the shutdown takes the task that awaited the read; the read's thread goes on
        threading.Timer(0.2, release.set).start()  # the read ends a moment after close() has begun
        db.close()
        return finished.is_set()  # now, not after asyncio.run, which waits for its own executor's threads

    read_ended_first = asyncio.run(shutdown_during_a_read())

    assert read_ended_first, "close() returned while a read was still running on one of its connections"
    if db_url.startswith("postgresql"):
        database = make_url(db_url).database
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            open_ = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)).fetchone()
        assert open_ == (0,), "a connection of the closed database is still open"
