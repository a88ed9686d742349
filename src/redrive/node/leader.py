"""Maintenance leadership: exactly one node at a time holds a PostgreSQL session advisory lock.

The lock lives as long as the holder's connection: a node that dies (or loses its connection) frees it, and the
next node to try takes it within one check interval. On SQLite there is one process, and it leads.
"""

from __future__ import annotations

import asyncio
import contextlib

import psycopg
import structlog

from redrive.db.engine import is_sqlite
from redrive.queue.notify import keep_connected, libpq_url

log = structlog.get_logger("redrive.leader")

# Any constant 64-bit key works; this one is "redrive" in ASCII, so other users of advisory locks can avoid it.
LOCK_KEY = 0x72_65_64_72_69_76_65


class Leadership:
    """Tries for the maintenance lock every ``interval`` seconds; ``is_leader`` says whether this node holds it."""

    def __init__(self, url: str, interval: float, *, node_id: str = "") -> None:
        self._url = None if is_sqlite(url) else libpq_url(url)
        self._interval = interval
        self._node_id = node_id
        self.is_leader = self._url is None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start campaigning (nothing to do on SQLite)."""
        if self._url is not None:
            self._task = asyncio.create_task(self._run(), name="redrive-leader")

    async def stop(self) -> None:
        """Step down: closing the connection frees the lock for another node."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.is_leader = self._url is None

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
