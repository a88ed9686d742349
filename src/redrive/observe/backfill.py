"""Backfill: count the rows that predate the rollups, batch by batch, while the service keeps running.

Migration 0009 creates the rollups empty and writes, per source table (executions with their attempts; events), the
highest id then present as the ``watermark`` and the lowest as ``next_id``. From then on the live path counts every
row above the watermark and every row below ``next_id`` (``rollups.live``); the backfill counts the rest, one id
range per write job (``step``): it locks the source's row, counts the range's rows as they are now with the same
functions the live path uses, and moves ``next_id`` past it, all in one short transaction. A live transaction that
changes a row of the range either committed before the batch read it (the batch counts the row as changed) or starts
after the batch moved ``next_id`` (it counts its own change): on PostgreSQL the live path reads the backfill row
``FOR SHARE``, so the two cannot overlap; on SQLite one writer at a time is the rule anyway.

While any row is left, the figures are scanned from the raw tables as before (``rollups.ready``); the maintenance
leader runs batches for at most ``BUDGET`` seconds per pass, so ingest never waits behind more than one batch.
``restart`` starts over from the raw tables (after a bulk load that bypassed the live path: tests, benchmarks); it is
for a stopped service, as other processes would go on trusting what they counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from redrive.db.database import Database
from redrive.db.schema import events, executions, rollup_backfill, stat_rollups
from redrive.observe import rollups

log = structlog.get_logger("redrive.backfill")

BATCH = 5000  # ids per write job: a few tens of milliseconds of writer time
BUDGET = 1.0  # seconds of batches per maintenance pass


def _counts(connection: Connection, source: str, start: int, end: int) -> rollups.Counts:
    if source == "events":
        return rollups.events_counted(connection, 1, events.c.id >= start, events.c.id < end)
    return rollups.executions_counted(connection, 1, executions.c.id >= start, executions.c.id < end)


def step(limit: int = BATCH) -> Callable[[Connection], bool]:
    """A write job: count the next ``limit`` ids of the first source not done; False when every source is done."""

    def job(connection: Connection) -> bool:
        for source in rollups.SOURCES:
            row = connection.execute(
                select(rollup_backfill.c.watermark, rollup_backfill.c.next_id)
                .where(rollup_backfill.c.source == source)
                .with_for_update()
            ).one_or_none()
            if row is None or row.next_id > row.watermark:
                continue
            end = min(row.next_id + limit, row.watermark + 1)
            rollups.apply(connection, _counts(connection, source, row.next_id, end))
            connection.execute(update(rollup_backfill).where(rollup_backfill.c.source == source).values(next_id=end))
            return True
        return False

    return job


def start_rows(connection: Connection) -> list[dict[str, Any]]:
    """The backfill rows for the tables as they are: everything present is left to the backfill."""
    rows = []
    for source, table in zip(rollups.SOURCES, (executions, events), strict=True):
        low, high = connection.execute(select(func.min(table.c.id), func.max(table.c.id))).one()
        rows.append({"source": source, "watermark": high or 0, "next_id": low or 1})
    return rows


def restart() -> Callable[[Connection], None]:
    """A write job: forget every count and leave all present rows to the backfill (service stopped, see above)."""

    def job(connection: Connection) -> None:
        rollups.forget()
        connection.execute(delete(stat_rollups))
        connection.execute(delete(rollup_backfill))
        connection.execute(insert(rollup_backfill), start_rows(connection))

    return job


def recount(engine: Engine, limit: int = BATCH) -> None:
    """Count everything again from the raw tables, blocking (after a bulk load; see ``restart``)."""
    with engine.begin() as connection:
        restart()(connection)
    more = True
    while more:
        with engine.begin() as connection:
            more = step(limit)(connection)


async def run(db: Database, budget: float | None = None, limit: int = BATCH) -> bool:
    """Run batches until done or ``budget`` seconds have passed; True when every row is counted."""
    deadline = None if budget is None else time.monotonic() + budget
    while await db.write(step(limit)):
        if deadline is not None and time.monotonic() >= deadline:
            return False
    return True


class BackfillChore:
    """The leader's share of the backfill: batches for at most ``BUDGET`` seconds per maintenance pass."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._done = False

    async def run_when_due(self) -> None:
        """Count more old rows, unless they are all counted."""
        if self._done:
            return
        self._done = await run(self._db, BUDGET)
        if self._done:
            log.info("rollup_backfill_done")
