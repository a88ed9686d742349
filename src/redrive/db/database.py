"""The one object the service holds to reach storage: a read engine, a write engine and its group-commit writer."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import Engine

from redrive.db.engine import is_sqlite, make_engine
from redrive.db.writer import Job, Writer

T = TypeVar("T")


class Database:
    """Reads run on a pooled engine in a worker thread; writes go through the group-commit writer.

    ``writer_connections`` (PostgreSQL; ``Settings.writer_connections``): the writer's threads, each with its own
    connection, committing at once. One is the default: it groups every write that arrives during a transaction into
    the next one, and beside a local server that beat several (peers.py on 2 cores, quiet: one process 1,450-1,510
    events/s with one, 1,250-1,300 with four; two processes 1,920-1,960 against 1,520-1,560): every extra thread
    splits the same work into smaller transactions (18 jobs against 50-77), each paying its own round trips, and
    shares the interpreter with the event loop and the other threads. On a busy machine (load ~8) four had beaten one
    (587-591 events/s against 305-343), and they help where every round trip to the server is long.
    """

    def __init__(self, url: str, *, writer_connections: int = 1) -> None:
        self.url = url
        self.is_sqlite = is_sqlite(url)
        if self.is_sqlite and writer_connections != 1:
            raise ValueError("an SQLite file has one writer: writer_connections must be 1")
        self.read_engine: Engine = make_engine(url, reader=True)
        self.write_engine: Engine = make_engine(url, writer=True, pool_size=writer_connections + 1)
        self.writer = Writer(self.write_engine, threads=writer_connections)
        # The reads' own threads (as many as asyncio's default executor: the same default), so ``close`` can wait.
        self._reads = ThreadPoolExecutor(thread_name_prefix="redrive-read")

    def start(self) -> None:
        """Start the writer's threads."""
        self.writer.start()

    async def write(self, job: Job[T]) -> T:
        """Run ``job`` in a committed write transaction (batched with its neighbours)."""
        return await self.writer.run(job)

    async def read(self, job: Job[T]) -> T:
        """Run ``job`` on a read connection in one of the reads' threads."""
        return await asyncio.get_running_loop().run_in_executor(self._reads, self.read_sync, job)

    def read_sync(self, job: Job[T]) -> T:
        """Run ``job`` on a read connection, blocking."""
        with self.read_engine.connect() as connection:
            return job(connection)

    def write_sync(self, job: Job[T]) -> T:
        """Run ``job`` in its own write transaction, blocking (CLI and set-up only; the service uses ``write``)."""
        with self.write_engine.begin() as connection:
            return job(connection)

    def close(self) -> None:
        """Drain the writer, wait for the reads in flight, and dispose of both engines.

        A read outlives the task that awaited it (a cancelled ``await`` leaves its thread running). Disposing of an
        engine closes only the connections in its pool: one checked out then is given back later to the pool the
        engine has let go of, and stays open until the collector finds it (psycopg warns then). So the reads finish
        first.
        """
        self.writer.close()
        self._reads.shutdown(wait=True)
        self.read_engine.dispose()
        self.write_engine.dispose()
