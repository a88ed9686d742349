"""Metrics history: a small sample of the queue every minute, kept 7 days, for the System page's charts.

The maintenance leader samples (``HistorySampler.run_when_due`` is one of its chores): at each new minute of its
clock it stores queue depth, oldest pending age, dead-letter size and the attempts that finished in the minute
before, with how many of them failed. The minute is the row's key, so two leaders overlapping during a hand-over
store it once. Retention purges rows older than ``HISTORY_RETENTION``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection

from redrive.db.database import Database
from redrive.db.engine import dialect_insert
from redrive.db.schema import attempts, metrics_history
from redrive.observe.system import queue_snapshot

log = structlog.get_logger("redrive.history")

TICK = timedelta(minutes=1)
HISTORY_RETENTION = timedelta(days=7)


def minute_of(at: datetime) -> datetime:
    """The start of the minute ``at`` falls in."""
    return at.replace(second=0, microsecond=0)


def failure_rate(row: dict[str, Any]) -> float | None:
    """Failed attempts over attempts in a sample's minute; None when no attempt finished (no rate to speak of)."""
    return row["failed_attempts"] / row["attempts"] if row["attempts"] else None


def sample(at: datetime, now: datetime) -> Callable[[Connection], bool]:
    """A write job: store the sample for the minute starting ``at`` (the queue as it is at ``now``); False when
    that minute is already stored."""

    def job(connection: Connection) -> bool:
        snapshot = queue_snapshot(now)(connection)
        finished = attempts.c.finished_at
        total, failed = connection.execute(
            select(func.count(), func.count().filter(attempts.c.outcome != "succeeded")).where(
                finished >= at - TICK, finished < at
            )
        ).one()
        statement = dialect_insert(connection)(metrics_history).values(
            at=at,
            queue_depth=snapshot.due,
            oldest_pending_age_seconds=round(snapshot.oldest_due_age_seconds, 3),
            dlq_size=snapshot.dlq,
            attempts=int(total),
            failed_attempts=int(failed),
        )
        return bool(connection.execute(statement.on_conflict_do_nothing(index_elements=["at"])).rowcount)

    return job


def read_history(since: datetime) -> Callable[[Connection], list[dict[str, Any]]]:
    """A read job: the samples from ``since`` on, oldest first, each with its failure rate."""

    def job(connection: Connection) -> list[dict[str, Any]]:
        rows = connection.execute(
            select(metrics_history).where(metrics_history.c.at >= since).order_by(metrics_history.c.at)
        )
        out = []
        for row in rows:
            item = dict(row._mapping)
            item["failure_rate"] = failure_rate(item)
            item["at"] = item["at"].isoformat()
            out.append(item)
        return out

    return job


def purge_history(before: datetime) -> Callable[[Connection], int]:
    """A write job: delete the samples older than ``before``; how many went."""

    def job(connection: Connection) -> int:
        return int(connection.execute(delete(metrics_history).where(metrics_history.c.at < before)).rowcount)

    return job


class HistorySampler:
    """The leader's chore: one sample per minute of ``clock``, taken on the first pass in a new minute."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock
        self._last: datetime | None = None

    async def run_when_due(self) -> None:
        """Sample when the clock has entered a minute not sampled yet."""
        now = self._clock()
        minute = minute_of(now)
        if minute == self._last:
            return
        self._last = minute
        if await self._db.write(sample(minute, now)):
            log.debug("history_sampled", at=minute.isoformat())
