"""Retention: purge finished work past its trigger's retention, in small batches so ingest never waits long.

What goes (per trigger, ``retention`` in the trigger file; defaults 7 d / 14 d / 7 d):
- succeeded executions finished more than ``succeeded`` ago, with their attempts;
- failed_retryable (the DLQ), failed and replayed executions finished more than ``dead_letter`` ago;
- events received more than ``keys`` ago that no execution refers to any more: their idempotency keys are freed
  with them, and an event a live (or still retained) execution needs is kept.

A replayed execution goes only once its replay has gone (``replay_of`` points at it). Each batch is one short
write job; the loop stops when a batch comes back short. ``plan`` decides from values; the jobs act. The rollup rows
no served window reads any more go in the same pass (``observe.rollup_retention``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Select, and_, delete, exists, func, not_, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from redrive.clock import Clock
from redrive.db.database import Database
from redrive.db.schema import attempts, events, executions
from redrive.destinations.store import TRANSITIONS_RETENTION, purge_transitions
from redrive.observe import rollup_retention, rollups
from redrive.observe.history import HISTORY_RETENTION, purge_history
from redrive.queue import parking
from redrive.states import DEAD, ExecutionStatus
from redrive.triggers.config import RetentionConfig
from redrive.triggers.runtime import TriggerSet

log = structlog.get_logger("redrive.retention")

BATCH = 500


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """Rows older than these go: succeeded executions, dead ones, and unreferenced events."""

    succeeded: datetime
    dead: datetime
    events: datetime


@dataclass(frozen=True, slots=True)
class Plan:
    """Cutoffs per trigger id, and for triggers no longer declared (``others``)."""

    by_trigger: dict[int, Cutoffs]
    others: Cutoffs
    now: datetime  # when it was planned: a parked row promoted by a purge is due from then


@dataclass
class Purged:
    """How many rows went (or would go, on a dry run)."""

    executions: int = 0
    attempts: int = 0
    events: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


def cutoffs(retention: RetentionConfig, now: datetime, older_than: float | None = None) -> Cutoffs:
    """The cutoffs for ``retention`` at ``now``; ``older_than`` (seconds) replaces every window when given."""

    def before(seconds: float) -> datetime:
        return now - timedelta(seconds=older_than if older_than is not None else seconds)

    return Cutoffs(before(retention.succeeded), before(retention.dead_letter), before(retention.keys))


def plan(retentions: dict[int, RetentionConfig], now: datetime, older_than: float | None = None) -> Plan:
    """A purge plan for the declared triggers' retentions (undeclared triggers get the defaults)."""
    return Plan(
        {trigger_id: cutoffs(r, now, older_than) for trigger_id, r in retentions.items()},
        cutoffs(RetentionConfig(), now, older_than),
        now,
    )


def _scopes(purge: Plan) -> Iterable[tuple[ColumnElement[bool], ColumnElement[bool], Cutoffs]]:
    """(executions scope, events scope, cutoffs) for each declared trigger, then for all the others."""
    for trigger_id, cut in purge.by_trigger.items():
        yield executions.c.trigger_id == trigger_id, events.c.trigger_id == trigger_id, cut
    declared = list(purge.by_trigger)
    yield executions.c.trigger_id.not_in(declared), events.c.trigger_id.not_in(declared), purge.others


def _expired_ranges(cut: Cutoffs, table: Any = executions) -> list[ColumnElement[bool]]:
    """The expired rows, one range of ``ix_executions_finished`` per status (status, then finished before the cut).

    Read one range at a time: given their OR, both databases' planners preferred the trigger's equality on
    ``ix_executions_trigger_created`` and walked every row of the trigger on each batch (1.5 s per trigger at 10
    million rows on SQLite, inside the writer's transaction, once per pass even when nothing had expired).
    """
    succeeded = and_(table.c.status == ExecutionStatus.SUCCEEDED, table.c.finished_at < cut.succeeded)
    return [succeeded, *(and_(table.c.status == status, table.c.finished_at < cut.dead) for status in sorted(DEAD))]


def _expired(cut: Cutoffs, table: Any = executions) -> ColumnElement[bool]:
    return or_(*_expired_ranges(cut, table))


def _orphaned(cut: Cutoffs, kept: ColumnElement[bool] | None = None) -> ColumnElement[bool]:
    """Events past the cutoff that no execution refers to (or, for a dry run, only executions that would go)."""
    referring = select(executions.c.id).where(executions.c.event_id == events.c.id)
    if kept is not None:
        referring = referring.where(kept)
    return and_(events.c.received_at < cut.events, not_(exists(referring)))


def _replayed_later(surviving: Cutoffs | None = None) -> ColumnElement[bool]:
    """A later execution replays this one (``surviving``: one that this purge keeps)."""
    later = executions.alias("later")
    query = select(later.c.id).where(later.c.replay_of == executions.c.id)
    if surviving is not None:
        query = query.where(not_(_expired(surviving, later)))
    return exists(query)


def expired_rows(scope: ColumnElement[bool], cut: Cutoffs) -> list[Select[Any]]:
    """``SELECT id, status`` of the expired executions of ``scope``, oldest first, one statement per range of
    ``_expired_ranges`` (a replayed row goes only after its replay). The order keeps PostgreSQL on the range too:
    without it, when most rows had expired, it could walk the primary key through every unexpired row first."""
    return [
        select(executions.c.id, executions.c.status)
        .where(expired, scope, not_(_replayed_later()))
        .order_by(executions.c.finished_at)
        for expired in _expired_ranges(cut)
    ]


def purge_executions_batch(scope: ColumnElement[bool], cut: Cutoffs, now: datetime) -> Callable[[Connection], Purged]:
    """Delete up to BATCH expired executions of ``scope`` (with their attempts).

    A dead row that held its ordering key (``on_dead_letter: block``) frees it as it goes: the key's oldest parked
    row is promoted first (``parking.promote_in``, counting every dead row a holder: the config is not at hand here,
    and a key that stays parked for a ``continue`` trigger is the maintenance repair's).
    """

    def job(connection: Connection) -> Purged:
        rows: list[Any] = []
        for statement in expired_rows(scope, cut):
            rows += connection.execute(statement.limit(BATCH - len(rows))).all()
            if len(rows) == BATCH:
                break
        purged = Purged()
        if not rows:
            return purged
        ids = [row.id for row in rows]
        parking.promote_in(connection, ids, None, now, gone=True)
        rollups.purged_executions(connection, ids)
        purged.attempts = connection.execute(delete(attempts).where(attempts.c.execution_id.in_(ids))).rowcount
        purged.executions = connection.execute(delete(executions).where(executions.c.id.in_(ids))).rowcount
        for row in rows:
            purged.by_status[row.status] = purged.by_status.get(row.status, 0) + 1
        return purged

    return job


def purge_events_batch(scope: ColumnElement[bool], cut: Cutoffs) -> Callable[[Connection], int]:
    """Delete up to BATCH events of ``scope`` past their cutoff that nothing refers to."""

    def job(connection: Connection) -> int:
        ids = list(connection.execute(select(events.c.id).where(scope, _orphaned(cut)).limit(BATCH)).scalars())
        if not ids:
            return 0
        rollups.purged_events(connection, ids)
        return int(connection.execute(delete(events).where(events.c.id.in_(ids))).rowcount)

    return job


def count(purge: Plan) -> Callable[[Connection], Purged]:
    """What ``purge`` would delete, counted without deleting (a dry run)."""

    def job(connection: Connection) -> Purged:
        total = Purged()
        for scope, event_scope, cut in _scopes(purge):
            for status_range in _expired_ranges(cut):  # one range at a time, as the purge reads them
                expired = and_(status_range, scope, not_(_replayed_later(surviving=cut)))
                for status, n in connection.execute(
                    select(executions.c.status, func.count()).where(expired).group_by(executions.c.status)
                ):
                    total.by_status[status] = total.by_status.get(status, 0) + n
                    total.executions += n
                total.attempts += connection.execute(
                    select(func.count())
                    .select_from(attempts)
                    .where(attempts.c.execution_id.in_(select(executions.c.id).where(expired)))
                ).scalar_one()
            survives = not_(_expired(cut))
            total.events += connection.execute(
                select(func.count()).select_from(events).where(event_scope, _orphaned(cut, kept=survives))
            ).scalar_one()
        return total

    return job


Writer = Callable[[Callable[[Connection], Any]], Any]


async def purge(write: Writer, purge_plan: Plan) -> Purged:
    """Delete everything ``purge_plan`` lets go, batch by batch (``write`` runs one job in its own transaction)."""
    total = Purged()
    for scope, event_scope, cut in _scopes(purge_plan):
        while True:
            batch: Purged = await write(purge_executions_batch(scope, cut, purge_plan.now))
            total.executions += batch.executions
            total.attempts += batch.attempts
            for status, n in batch.by_status.items():
                total.by_status[status] = total.by_status.get(status, 0) + n
            if batch.executions == 0:
                break
        while (gone := await write(purge_events_batch(event_scope, cut))) > 0:
            total.events += gone
    return total


class RetentionChore:
    """The leader's retention pass, run from maintenance at most once per ``interval`` seconds."""

    def __init__(self, db: Database, triggers: TriggerSet, interval: float, clock: Clock) -> None:
        self._db = db
        self._retentions = {t.id: t.config.retention for t in triggers}
        self._interval = interval
        self._clock = clock
        self._last: datetime | None = None

    async def run_when_due(self) -> None:
        """Purge when the interval has passed since the last pass."""
        now = self._clock()
        if self._last is not None and (now - self._last).total_seconds() < self._interval:
            return
        self._last = now
        result = await purge(self._db.write, plan(self._retentions, now))
        await rollup_retention.trim(self._db.write, now)  # right after: it tidies what the purge subtracted
        await self._db.write(purge_history(now - HISTORY_RETENTION))  # the System page's metrics history
        await self._db.write(purge_transitions(now - TRANSITIONS_RETENTION))  # the Destinations page's history
        if result.executions or result.events:
            log.info(
                "retention_purged",
                executions=result.executions,
                attempts=result.attempts,
                events=result.events,
                by_status=result.by_status,
            )
