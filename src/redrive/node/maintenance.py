"""Housekeeping that must run on exactly one node at a time: the lease sweeper and the dead-node reaper.

Every pass checks leadership first; a node that is not the leader does nothing. Sweeps are idempotent SQL, so
the short overlap possible while leadership changes hands costs nothing but a repeated statement.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from redrive.clock import Clock
from redrive.db.database import Database
from redrive.node.heartbeats import MISSED_BEATS, reap
from redrive.node.leader import Leadership
from redrive.node.periodic import Periodic
from redrive.queue import statements as queue

log = structlog.get_logger("redrive.maintenance")
Task = Callable[[], Awaitable[None]]


class Maintenance:
    """Runs the leader's chores every ``interval`` seconds while this node leads."""

    def __init__(
        self,
        db: Database,
        leadership: Leadership,
        *,
        interval: float,
        heartbeat_interval: float,
        clock: Clock,
        wake: Callable[[], None],
        warn: Callable[[dict[str, Any]], None] = lambda data: None,
        extra: list[Task] | None = None,
    ) -> None:
        self._db = db
        self._leadership = leadership
        self._interval = interval
        self._heartbeat_interval = heartbeat_interval
        self._clock = clock
        self._wake = wake
        self._warn = warn
        self._extra = extra or []
        self._loop = Periodic("maintenance", self.run_once, interval, failed_evt="maintenance_failed")

    def start(self) -> None:
        """Start the periodic pass."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop after the current statement."""
        await self._loop.stop()

    async def run_once(self) -> int:
        """One pass (when leading): returns how many executions went back to the queue."""
        if not self._leadership.is_leader:
            return 0
        now = self._clock()
        swept = await self._db.write(queue.sweep(now))
        for execution_id in swept:
            log.warning("lease_expired", execution_id=execution_id)
        if swept:
            self._warn({"code": "leases_expired", "executions": swept[:100], "count": len(swept)})
        reaped = await self._db.write(reap(now, self._heartbeat_interval))
        for node_id, leases in reaped.swept.items():
            log.warning("node_dead", node_id=node_id, missed_beats=MISSED_BEATS, leases_swept=len(leases))
            self._warn({"code": "node_dead", "node_id": node_id, "leases_swept": len(leases)})
        returned = len(swept) + len(reaped.executions)
        if returned:
            self._wake()
        for chore in self._extra:
            await chore()
        return returned
