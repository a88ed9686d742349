"""Triggers at run time: pause and resume, and the live counters shown beside each trigger.

A paused trigger still accepts and stores events; the queue's claim skips its executions (``triggers.paused``), so
they wait uncharged and run in ``run_at`` order once it is resumed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from redrive.db.schema import events, executions, stat_rollups, triggers
from redrive.failures import audit
from redrive.observe import rollup_reads as reads
from redrive.observe import rollups
from redrive.states import ExecutionStatus

# Counter name -> the status it counts (all time); ``succeeded_today`` and ``events_today`` are per UTC day.
_STATUS_COUNTERS = {
    "pending": ExecutionStatus.PENDING,
    "running": ExecutionStatus.RUNNING,
    "dlq": ExecutionStatus.FAILED_RETRYABLE,
    "failed": ExecutionStatus.FAILED,
}
COUNTERS = (*_STATUS_COUNTERS, "succeeded_today", "events_today")
Counter = tuple[int, str, int]  # trigger id, counter name, value


@dataclass(frozen=True, slots=True)
class TriggerRow:
    """What the database holds about a trigger at run time."""

    paused: bool
    paused_reason: str | None
    counters: dict[str, int]


def events_since(connection: Connection, trigger_ids: Sequence[int], since: datetime) -> dict[int, int]:
    """Events received since ``since`` per trigger id (a range of ``ix_events_trigger_received`` per trigger)."""
    rows = connection.execute(
        select(events.c.trigger_id, func.count())
        .where(events.c.trigger_id.in_(trigger_ids), events.c.received_at >= since)
        .group_by(events.c.trigger_id)
    )
    return {trigger_id: count for trigger_id, count in rows}


def events_today(connection: Connection, trigger_ids: Sequence[int], day_start: datetime) -> dict[int, int]:
    """Events received since ``day_start`` (a UTC midnight) per trigger id: the ``events`` rollup's day bucket."""
    if not rollups.ready(connection):
        return events_since(connection, trigger_ids, day_start)
    found = reads.totals(connection, "events", reads.since_day(day_start), ["trigger_id"])
    return {trigger_id: n for trigger_id, n in found.items() if trigger_id in trigger_ids}


def trigger_rows(trigger_ids: Sequence[int], day_start: datetime) -> Callable[[Connection], dict[int, TriggerRow]]:
    """A read job: pause state and counters per trigger id; ``day_start`` is the start of today (UTC)."""

    def job(connection: Connection) -> dict[int, TriggerRow]:
        counters: dict[int, dict[str, int]] = {i: dict.fromkeys(COUNTERS, 0) for i in trigger_ids}
        found = _rolled(connection, trigger_ids, day_start) if rollups.ready(connection) else None
        for trigger_id, name, count in found or _scanned(connection, trigger_ids, day_start):
            if trigger_id in counters:
                counters[trigger_id][name] = count
        rows = connection.execute(
            select(triggers.c.id, triggers.c.paused, triggers.c.paused_reason).where(triggers.c.id.in_(trigger_ids))
        )
        return {row.id: TriggerRow(bool(row.paused), row.paused_reason, counters[row.id]) for row in rows}

    return job


def _by_status(connection: Connection, statuses: dict[str, str], trigger_ids: Sequence[int]) -> list[Counter]:
    return [
        (trigger_id, statuses[status], count)
        for trigger_id, status, count in connection.execute(
            select(executions.c.trigger_id, executions.c.status, func.count())
            .where(executions.c.status.in_(statuses), executions.c.trigger_id.in_(trigger_ids))
            .group_by(executions.c.trigger_id, executions.c.status)
        )
    ]


def _scanned(connection: Connection, trigger_ids: Sequence[int], day_start: datetime) -> list[Counter]:
    """The counters from the raw tables (while the rollups are backfilled)."""
    found = _by_status(connection, {status: name for name, status in _STATUS_COUNTERS.items()}, trigger_ids)
    for trigger_id, count in connection.execute(
        select(executions.c.trigger_id, func.count())
        .where(
            executions.c.status == ExecutionStatus.SUCCEEDED,
            executions.c.finished_at >= day_start,
            executions.c.trigger_id.in_(trigger_ids),
        )
        .group_by(executions.c.trigger_id)
    ):
        found.append((trigger_id, "succeeded_today", count))
    found += [(i, "events_today", n) for i, n in events_since(connection, trigger_ids, day_start).items()]
    return found


def _rolled(connection: Connection, trigger_ids: Sequence[int], day_start: datetime) -> list[Counter]:
    """The counters from the rollups; pending and running from the status index (the backlog and the leased rows,
    whatever the history holds)."""
    found = _by_status(connection, {"pending": "pending", "running": "running"}, trigger_ids)
    failing = reads.totals(connection, "failing", reads.ALL, ["trigger_id", "status"])
    found += [(i, {"failed_retryable": "dlq", "failed": "failed"}[status], n) for (i, status), n in failing.items()]
    today = reads.since_day(day_start)
    succeeded = stat_rollups.c.status == ExecutionStatus.SUCCEEDED
    found += [
        (i, "succeeded_today", n)
        for i, n in reads.totals(connection, "finished", today, ["trigger_id"], succeeded).items()
    ]
    found += [(i, "events_today", n) for i, n in events_today(connection, trigger_ids, day_start).items()]
    return found


def set_paused(
    trigger_id: int, paused: bool, reason: str | None, at: datetime, *, actor: str, name: str
) -> Callable[[Connection], None]:
    """A write job: pause (with a reason) or resume the trigger ``name``, audited as done by ``actor``."""

    def job(connection: Connection) -> None:
        was = connection.execute(select(triggers.c.paused).where(triggers.c.id == trigger_id)).scalar_one_or_none()
        connection.execute(
            update(triggers)
            .where(triggers.c.id == trigger_id)
            .values(paused=paused, paused_reason=reason if paused else None, updated_at=at)
        )
        audit.record(
            connection,
            at=at,
            actor=actor,
            action="trigger_pause" if paused else "trigger_resume",
            target=f"trigger:{name}",
            result="ok" if bool(was) != paused else "unchanged",
            detail={"reason": reason} if paused else {},
        )

    return job
