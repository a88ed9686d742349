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

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Select, and_, delete, exists, func, not_, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from redrive.clock import Clock
from redrive.db.database import Database
from redrive.db.schema import attempts, events, executions, triggers
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


def trigger_cutoffs(purge: Plan) -> Callable[[Connection], list[tuple[int, Cutoffs]]]:
    """A job: ``(trigger id, cutoffs)`` for each declared trigger, then for each trigger no longer declared (read
    from ``triggers``: every execution and event belongs to one), so each is purged through its own index ranges."""

    def job(connection: Connection) -> list[tuple[int, Cutoffs]]:
        declared = list(purge.by_trigger)
        others = connection.execute(select(triggers.c.id).where(triggers.c.id.not_in(declared)).order_by(triggers.c.id))
        return [*purge.by_trigger.items(), *((trigger_id, purge.others) for trigger_id in others.scalars())]

    return job


def _expired(cut: Cutoffs, table: Any = executions) -> ColumnElement[bool]:
    return or_(
        and_(table.c.status == ExecutionStatus.SUCCEEDED, table.c.finished_at < cut.succeeded),
        and_(table.c.status.in_(DEAD), table.c.finished_at < cut.dead),
    )


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


def _expired_of(trigger_id: int, cut: Cutoffs, surviving: Cutoffs | None = None) -> ColumnElement[bool]:
    """The trigger's expired executions (``surviving``: a replayed one counts once this purge takes its replay),
    bounded by the later cutoff on ``created_at``: a row that finished before a cutoff was created before it."""
    return and_(
        executions.c.trigger_id == trigger_id,
        executions.c.created_at < max(cut.succeeded, cut.dead),
        _expired(cut),
        not_(_replayed_later(surviving)),
    )


def _columns() -> Select[Any]:
    return select(executions.c.id, executions.c.status, executions.c.created_at, executions.c.replay_of)


def expired_rows(trigger_id: int, cut: Cutoffs, after: datetime | None = None) -> Select[Any]:
    """``SELECT id, status, created_at, replay_of`` of the trigger's expired executions, oldest first, created at
    or after ``after`` (a replayed row goes only after its replay).

    A range of ``ix_executions_trigger_created``: a row that finished before a cutoff was created before it, so only
    the trigger's rows created before the later cutoff are read. The purge walks that range once per pass, resuming
    each batch where the last one stopped, so the rows it keeps (dead ones younger than their own cutoff) are read
    once, not once per batch. (One OR of the expiry tests, unbounded, made both planners walk every row of the
    trigger on each batch: 1.5 s per trigger at 10 million rows on SQLite, inside the writer's transaction, when
    nothing had expired; a range per status of ``ix_executions_finished`` would read every other trigger's kept rows
    whenever retentions differ.)
    """
    query = _columns().where(_expired_of(trigger_id, cut))
    if after is not None:
        query = query.where(executions.c.created_at >= after)
    return query.order_by(executions.c.created_at)


def purge_executions_batch(
    trigger_id: int, cut: Cutoffs, now: datetime, after: datetime | None = None
) -> Callable[[Connection], tuple[Purged, datetime | None]]:
    """Delete up to BATCH expired executions of the trigger created at or after ``after`` (with their attempts);
    returns what went and where the next batch resumes (None: nothing left).

    A dead row that held its ordering key (``on_dead_letter: block``) frees it as it goes: the key's oldest parked
    row is promoted first (``parking.promote_in``, counting every dead row a holder: the config is not at hand here,
    and a key that stays parked for a ``continue`` trigger is the maintenance repair's).
    """

    def job(connection: Connection) -> tuple[Purged, datetime | None]:
        rows = connection.execute(expired_rows(trigger_id, cut, after).limit(BATCH)).all()
        purged = Purged()
        batch = rows
        while batch:
            ids = [row.id for row in batch]
            parking.promote_in(connection, ids, None, now, gone=True)
            rollups.purged_executions(connection, ids)
            purged.attempts += connection.execute(delete(attempts).where(attempts.c.execution_id.in_(ids))).rowcount
            purged.executions += connection.execute(delete(executions).where(executions.c.id.in_(ids))).rowcount
            for row in batch:
                purged.by_status[row.status] = purged.by_status.get(row.status, 0) + 1
            # The rows these replayed, behind the walk (created earlier) and kept while their replay was there: they
            # go now if they have expired, and so on up the chain.
            replayed = sorted({row.replay_of for row in batch if row.replay_of is not None})
            originals = _columns().where(executions.c.id.in_(replayed), _expired_of(trigger_id, cut))
            batch = connection.execute(originals).all() if replayed else []
        # ">=": rows created in the same instant are read again, never skipped
        return purged, rows[-1].created_at if rows else None

    return job


def orphaned_events(trigger_id: int, cut: Cutoffs, after: datetime | None = None) -> Select[Any]:
    """``SELECT id, received_at`` of the trigger's events past their cutoff that no execution refers to, oldest
    first, received at or after ``after``: a range of ``ix_events_trigger_received``, walked once per pass as
    ``expired_rows`` is (the events it keeps, those a kept execution still needs, are read once)."""
    query = select(events.c.id, events.c.received_at).where(events.c.trigger_id == trigger_id, _orphaned(cut))
    if after is not None:
        query = query.where(events.c.received_at >= after)
    return query.order_by(events.c.received_at)


def purge_events_batch(
    trigger_id: int, cut: Cutoffs, after: datetime | None = None
) -> Callable[[Connection], tuple[int, datetime | None]]:
    """Delete up to BATCH of the trigger's orphaned events (``orphaned_events``); how many went and where the next
    batch resumes (None: nothing left)."""

    def job(connection: Connection) -> tuple[int, datetime | None]:
        rows = connection.execute(orphaned_events(trigger_id, cut, after).limit(BATCH)).all()
        if not rows:
            return 0, None
        ids = [row.id for row in rows]
        rollups.purged_events(connection, ids)
        return int(connection.execute(delete(events).where(events.c.id.in_(ids))).rowcount), rows[-1].received_at

    return job


def count(purge: Plan) -> Callable[[Connection], Purged]:
    """What ``purge`` would delete, counted without deleting (a dry run), through the purge's own ranges."""

    def job(connection: Connection) -> Purged:
        total = Purged()
        for trigger_id, cut in trigger_cutoffs(purge)(connection):
            expired = _expired_of(trigger_id, cut, surviving=cut)
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
                select(func.count())
                .select_from(events)
                .where(events.c.trigger_id == trigger_id, _orphaned(cut, kept=survives))
            ).scalar_one()
        return total

    return job


Writer = Callable[[Callable[[Connection], Any]], Any]


async def purge(write: Writer, purge_plan: Plan) -> Purged:
    """Delete everything ``purge_plan`` lets go, trigger by trigger, batch by batch (``write`` runs one job in its
    own transaction)."""
    total = Purged()
    for trigger_id, cut in await write(trigger_cutoffs(purge_plan)):
        created: datetime | None = None  # where the walk of the trigger's executions resumes
        while True:
            batch, created = await write(purge_executions_batch(trigger_id, cut, purge_plan.now, created))
            total.executions += batch.executions
            total.attempts += batch.attempts
            for status, n in batch.by_status.items():
                total.by_status[status] = total.by_status.get(status, 0) + n
            if created is None:
                break
        received: datetime | None = None  # and of its events
        while True:
            gone, received = await write(purge_events_batch(trigger_id, cut, received))
            total.events += gone
            if received is None:
                break
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
