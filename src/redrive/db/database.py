"""The one object the service holds to reach storage: a read engine, a write engine and its group-commit writer."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from sqlalchemy import Engine

from redrive.db.engine import is_sqlite, make_engine
from redrive.db.writer import Job, Writer

T = TypeVar("T")
# PostgreSQL: writer threads (and connections) committing at once, so commits overlap each other's round trips and
# share WAL flushes. End to end on a 2-core box (busy, load ~8), events/s with 1, 2, 4, 8 threads: 305-343,
# 510-559, 587-591, 419-551.
WRITER_THREADS = 4


class Database:
    """Reads run on a pooled engine in a worker thread; writes go through the group-commit writer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = is_sqlite(url)
        self.read_engine: Engine = make_engine(url, reader=True)
        threads = 1 if self.is_sqlite else WRITER_THREADS
        self.write_engine: Engine = make_engine(url, writer=True, pool_size=threads + 1)
        self.writer = Writer(self.write_engine, threads=threads)

    def start(self) -> None:
        """Start the writer thread."""
        self.writer.start()

    async def write(self, job: Job[T]) -> T:
        """Run ``job`` in a committed write transaction (batched with its neighbours)."""
        return await self.writer.run(job)

    async def read(self, job: Job[T]) -> T:
        """Run ``job`` on a read connection in a thread."""
        return await asyncio.to_thread(self.read_sync, job)

    def read_sync(self, job: Job[T]) -> T:
        """Run ``job`` on a read connection, blocking."""
        with self.read_engine.connect() as connection:
            return job(connection)

    def write_sync(self, job: Job[T]) -> T:
        """Run ``job`` in its own write transaction, blocking (CLI and set-up only; the service uses ``write``)."""
        with self.write_engine.begin() as connection:
            return job(connection)

    def close(self) -> None:
        """Drain the writer and dispose of both engines."""
        self.writer.close()
        self.read_engine.dispose()
        self.write_engine.dispose()
