"""Daily watermarks: warn once per trigger per UTC day when its events cross ``limits.daily_watermark``.

A small periodic task in every API process compares today's events with each watermark. The right to log is claimed
in the database (an ``INSERT ... ON CONFLICT DO NOTHING`` of a ``watermark_logged`` counter for the trigger and day),
so however many processes watch, the one whose insert lands logs, once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date

import structlog
from sqlalchemy.engine import Connection

from redrive.clock import Clock, utcnow
from redrive.db.database import Database
from redrive.db.engine import dialect_insert
from redrive.db.schema import daily_counters
from redrive.node.periodic import Periodic
from redrive.observe.stats import day_start
from redrive.triggers.admin import events_today
from redrive.triggers.runtime import Trigger, TriggerSet

log = structlog.get_logger("redrive.watermarks")
CHECK_INTERVAL = 5.0
LOGGED = "watermark_logged"


def claim_logs(day: date, counts: Sequence[tuple[int, int]]) -> Callable[[Connection], list[int]]:
    """A write job: claim today's warning for each ``(trigger_id, count)``; returns the ids this call claimed."""

    def job(connection: Connection) -> list[int]:
        claimed = []
        for trigger_id, count in counts:
            insert = dialect_insert(connection)(daily_counters).values(
                trigger_id=trigger_id, day=day, name=LOGGED, value=count
            )
            statement = insert.on_conflict_do_nothing(index_elements=["trigger_id", "day", "name"])
            if connection.execute(statement.returning(daily_counters.c.trigger_id)).first() is not None:
                claimed.append(trigger_id)
        return claimed

    return job


class WatermarkWatch:
    """Checks every ``interval`` seconds; started and stopped by the app's lifespan."""

    def __init__(
        self, db: Database, triggers: TriggerSet, *, clock: Clock = utcnow, interval: float = CHECK_INTERVAL
    ) -> None:
        self._db = db
        self._watched = [t for t in triggers if t.config.limits.daily_watermark is not None]
        self._clock = clock
        self._interval = interval
        self._settled: set[tuple[int, date]] = set()  # (trigger, day) already logged here or elsewhere
        self._loop = Periodic("watermarks", self.check, interval, failed_evt="watermark_check_failed")

    def start(self) -> None:
        """Start checking (nothing to do when no trigger has a watermark)."""
        if self._watched:
            self._loop.start()

    async def stop(self) -> None:
        """Stop checking."""
        await self._loop.stop()

    async def check(self) -> list[str]:
        """One check: log each trigger that crossed its watermark today and was not logged yet; return their names."""
        now = self._clock()
        today = day_start(now)
        day = today.date()
        self._settled = {settled for settled in self._settled if settled[1] == day}
        pending = [t for t in self._watched if (t.id, day) not in self._settled]
        if not pending:
            return []
        counts = await self._db.read(lambda c: events_today(c, [t.id for t in pending], today))
        over: list[tuple[Trigger, int]] = [
            (t, counts.get(t.id, 0))
            for t in pending
            if t.config.limits.daily_watermark is not None and counts.get(t.id, 0) >= t.config.limits.daily_watermark
        ]
        if not over:
            return []
        claimed = set(await self._db.write(claim_logs(day, [(t.id, count) for t, count in over])))
        logged = []
        for trigger, count in over:
            self._settled.add((trigger.id, day))
            if trigger.id in claimed:
                log.warning(
                    "watermark_hit", trigger=trigger.name, count=count, watermark=trigger.config.limits.daily_watermark
                )
                logged.append(trigger.name)
        return logged
