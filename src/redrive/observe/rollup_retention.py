"""Rollup retention: the leader's retention pass drops the rollup rows no figure can read any more, so
``stat_rollups`` stops growing with history while every served figure stays exact.

- Minute, five-minute and hour buckets serve windows reaching at most ``windows.MAX_WINDOW`` (7 days) back from now
  (``rollup_reads.cover`` uses them only at a window's edges): a bucket that ended more than a day before that is
  deleted.
- Day buckets serve the summary's ``MAX_DAYS`` (30) UTC days, and, summed over every day, all-time figures (the
  System page's replayed executions). A day more than a day older than the summary's first is folded into one row
  per key in day bucket 0 (1970-01-01): no window reaches it, every all-time sum includes it.
- A row whose value is 0 counts nothing and is deleted (the upsert makes it again when needed).
- The all-time ``failing`` bucket is kept as it is.

Executions purged later subtract from buckets deleted or folded here: the rows that leaves behind (negative, or a
fresh day row) are deleted or folded by the next pass, which the leader runs right after the purge; until then no
window reads them. Each write job is short: up to BATCH rows per metric and grain, and one day per metric.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.engine import Connection

from redrive.db.schema import stat_rollups
from redrive.observe import rollups
from redrive.observe.rollup_reads import seconds
from redrive.observe.stats import MAX_DAYS
from redrive.observe.windows import MAX_WINDOW

MARGIN = timedelta(days=1)  # beyond the longest window: clocks of other nodes, a request begun before midnight
BATCH = 1000  # rows per delete, per metric and grain, in one write job
FINE = (rollups.MINUTE, rollups.FIVE_MINUTES, rollups.HOUR)
TIMED_METRICS = ("finished", "failed_attempts")  # the metrics kept at fine grains
DAY_METRICS = ("events", "created", "replays", "finished", "failed_attempts", "retries")
FOLDED = 0  # the day bucket that holds every folded day
_PK = [stat_rollups.c[name] for name in (*rollups.KEY_COLUMNS, "shard")]


@dataclass(frozen=True, slots=True)
class Horizons:
    """In epoch seconds: fine buckets ending at or before ``fine`` go; day buckets starting before ``day`` fold."""

    fine: int
    day: int


def horizons(now: datetime) -> Horizons:
    """What no window served at ``now`` reads: older than the longest window, plus ``MARGIN``."""
    first_day = seconds(now) - seconds(now) % rollups.DAY - (MAX_DAYS - 1) * rollups.DAY  # the summary's first
    return Horizons(seconds(now - MAX_WINDOW - MARGIN), first_day - int(MARGIN.total_seconds()))


def drop_fine(metric: str, grain: int, horizon: int) -> Callable[[Connection], int]:
    """A write job: delete up to BATCH rows of ``metric`` at ``grain`` in buckets that end by ``horizon``."""

    def job(connection: Connection) -> int:
        old = (
            select(*_PK)
            .where(
                stat_rollups.c.metric == metric,
                stat_rollups.c.grain == grain,
                stat_rollups.c.bucket <= horizon - grain,
            )
            .limit(BATCH)
        )
        return int(connection.execute(delete(stat_rollups).where(tuple_(*_PK).in_(old))).rowcount)

    return job


def fold_day(metric: str, horizon: int) -> Callable[[Connection], bool]:
    """A write job: fold the oldest day of ``metric`` before ``horizon`` into day bucket 0; False when none is left."""

    def job(connection: Connection) -> bool:
        at_day = (stat_rollups.c.metric == metric, stat_rollups.c.grain == rollups.DAY)
        oldest = connection.execute(
            select(func.min(stat_rollups.c.bucket)).where(
                *at_day, stat_rollups.c.bucket > FOLDED, stat_rollups.c.bucket < horizon
            )
        ).scalar_one_or_none()
        if oldest is None:
            return False
        day = (*at_day, stat_rollups.c.bucket == oldest)
        counts: rollups.Counts = Counter()
        for row in connection.execute(select(stat_rollups).where(*day)):
            counts[metric, rollups.DAY, FOLDED, row.trigger_id, row.kind, row.status, row.fingerprint] += row.value
        connection.execute(delete(stat_rollups).where(*day))
        rollups.apply(connection, counts)
        return True

    return job


def drop_zeros(horizon: int) -> Callable[[Connection], int]:
    """A write job: delete up to BATCH rows that count nothing, in buckets older than ``horizon`` or all-time."""

    def job(connection: Connection) -> int:
        zeros = (
            select(*_PK)
            .where(
                stat_rollups.c.metric.in_([*DAY_METRICS, "failing"]),
                stat_rollups.c.value == 0,
                (stat_rollups.c.bucket < horizon) | (stat_rollups.c.grain == rollups.ALL_TIME),
            )
            .limit(BATCH)
        )
        return int(connection.execute(delete(stat_rollups).where(tuple_(*_PK).in_(zeros))).rowcount)

    return job


def step(edge: Horizons) -> Callable[[Connection], bool]:
    """A write job: one batch of every kind above; True when more may be left (a full batch, a day folded)."""

    def job(connection: Connection) -> bool:
        more = False
        for metric in TIMED_METRICS:
            for grain in FINE:
                more |= drop_fine(metric, grain, edge.fine)(connection) == BATCH
        for metric in DAY_METRICS:
            more |= fold_day(metric, edge.day)(connection)
        return drop_zeros(edge.fine)(connection) == BATCH or more

    return job


Writer = Callable[[Callable[[Connection], Any]], Awaitable[Any]]


async def trim(write: Writer, now: datetime) -> int:
    """Delete and fold what no window served at ``now`` reads, a bounded step per write job (one job when there is
    nothing to do, the usual case); how many jobs it took."""
    edge = horizons(now)
    jobs = 1
    while await write(step(edge)):
        jobs += 1
    return jobs
