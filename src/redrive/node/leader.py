"""Maintenance leadership: exactly one node at a time holds a lock that its death frees.

On PostgreSQL the lock is a session advisory lock: it lives as long as the holder's connection, so a node that dies
(or loses its connection) frees it, and the next node to try takes it within one check interval. On SQLite the
processes sharing the file (``redrive up --processes N``) are on one host: the lock is an exclusive ``flock`` on a
file next to the database (``<database>-leader``), which the kernel frees when the holder exits, however it exits.
A separate file, never the database itself: closing any descriptor of the database file would drop the POSIX locks
SQLite holds on it in this process. An in-memory database has one process, and it leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os

import psycopg
import structlog
from sqlalchemy.engine import make_url

from redrive.db.engine import is_sqlite
from redrive.queue.notify import keep_connected, libpq_url

log = structlog.get_logger("redrive.leader")

# Any constant 64-bit key works; this one is "redrive" in ASCII, so other users of advisory locks can avoid it.
LOCK_KEY = 0x72_65_64_72_69_76_65


def lock_file(url: str) -> str | None:
    """The file whose ``flock`` makes an SQLite node the leader, or None for an in-memory database."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return os.path.abspath(database) + "-leader"


class Leadership:
    """Tries for the maintenance lock every ``interval`` seconds; ``is_leader`` says whether this node holds it."""

    def __init__(self, url: str, interval: float, *, node_id: str = "") -> None:
        self._sqlite = is_sqlite(url)
        self._url = None if self._sqlite else libpq_url(url)
        self._lock_path = lock_file(url) if self._sqlite else None
        self._lock_fd: int | None = None
        self._interval = interval
        self._node_id = node_id
        self.is_leader = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start campaigning; on SQLite the first try is made before this returns (a lone process leads at once)."""
        if self._url is not None:
            self._task = asyncio.create_task(self._run(), name="redrive-leader")
        elif self._lock_path is None:
            self.is_leader = True
        elif not self._try_file_lock():
            self._task = asyncio.create_task(self._campaign_for_file(), name="redrive-leader")

    async def stop(self) -> None:
        """Step down: closing the connection (or the lock file) frees the lock for another node."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self.is_leader = False

    def _try_file_lock(self) -> bool:
        assert self._lock_path is not None
        descriptor = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return False
        self._lock_fd = descriptor
        self.is_leader = True
        log.info("leadership_acquired", node_id=self._node_id)
        return True

    async def _campaign_for_file(self) -> None:
        while not self._try_file_lock():  # noqa: ASYNC110 (the lock's holder is another process: nothing to await)
            await asyncio.sleep(self._interval)

    async def _run(self) -> None:
        assert self._url is not None

        def lost(exc: psycopg.Error) -> None:
            if self.is_leader:
                log.warning("leadership_lost", node_id=self._node_id, error=str(exc).strip())
            self.is_leader = False

        await keep_connected(self._url, self._hold, lost, retry_after=self._interval)

    async def _hold(self, connection: psycopg.AsyncConnection[tuple[bool]]) -> None:
        while True:
            if self.is_leader:
                await connection.execute("SELECT 1")  # the lock is ours while this connection lives
            else:
                cursor = await connection.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))
                row = await cursor.fetchone()
                if row is not None and row[0]:
                    self.is_leader = True
                    log.info("leadership_acquired", node_id=self._node_id)
            await asyncio.sleep(self._interval)
