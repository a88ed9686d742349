"""What each alert condition counts, in the database: one function per condition key (``COUNTS``).

The figures of ``redrive.observe.stats`` are reused where one exists, narrowed to the rule's triggers, so they come
from the rollups as the dashboard's do (dead letters now from the all-time bucket, dead letters and attempts of a
window from the minutes): their cost does not grow with the history. The others are narrow queries of their own,
each a range of an index bounded by something other than the history: the oldest pending row by one row, groups
and breakers by their own small tables.
Each returns the plain counts its condition's ``judge`` reads.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from redrive.alerts.conditions import (
    BreakerOpen,
    DeadLetterGrowth,
    DeadLetters,
    ErrorGroupSeen,
    FailureRate,
    OldestPending,
    Scope,
    TriggerPaused,
)
from redrive.db.schema import breaker_transitions, destinations, error_groups, executions, triggers
from redrive.observe.stats import attempt_outcomes, count_executions, count_status
from redrive.queue import parking
from redrive.states import ExecutionStatus

DEAD_LETTER = (ExecutionStatus.FAILED_RETRYABLE.value,)
Count = Callable[[Any, Connection, Scope, datetime], dict[str, Any]]


def failure_rate(condition: FailureRate, connection: Connection, scope: Scope, now: datetime) -> dict[str, Any]:
    """Attempts and failed attempts of the scope's executions finished in the window (``stats.attempt_outcomes``)."""
    since = now - timedelta(seconds=condition.window)
    total, failed = attempt_outcomes(since, scope.trigger_ids)(connection)
    return {"attempts": total, "failed": failed}


def dlq_size(condition: DeadLetters, connection: Connection, scope: Scope, now: datetime) -> dict[str, Any]:
    """Dead letters now (DLQ_SIZE_MEANS) of the scope's triggers (``stats.count_status``)."""
    return {"dlq_size": count_status(DEAD_LETTER, scope.trigger_ids)(connection)}


def dlq_growth(condition: DeadLetterGrowth, connection: Connection, scope: Scope, now: datetime) -> dict[str, Any]:
    """Dead letters now that finished in the window, of the scope's triggers (``stats.count_executions``)."""
    since = now - timedelta(seconds=condition.window)
    grown = count_executions(DEAD_LETTER, since, trigger_ids=scope.trigger_ids)
    return {"dlq_growth": grown(connection)}


def oldest_pending(condition: OldestPending, connection: Connection, scope: Scope, now: datetime) -> dict[str, Any]:
    """The earliest ``run_at`` of the scope's due pending executions (``ix_executions_due``)."""
    oldest = connection.execute(
        parking.oldest_due(now, executions.c.trigger_id.in_(scope.trigger_ids))
    ).scalar_one_or_none()
    return {"oldest_pending_seconds": max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0}


def error_group(condition: ErrorGroupSeen, connection: Connection, scope: Scope, now: datetime) -> dict[str, Any]:
    """The scope's groups first seen (new) or regressed since ``now - quiet``, newest first, ignored ones left out."""
    since = now - timedelta(seconds=condition.quiet)
    new = error_groups.c.first_seen >= since
    regressed = (error_groups.c.status == "regressed") & (error_groups.c.status_changed_at >= since)
    wanted = {"new": new, "regressed": regressed, "new_or_regressed": new | regressed}[condition.error_group]
    found = connection.execute(
        select(error_groups.c.fingerprint, error_groups.c.title, error_groups.c.status)
        .where(error_groups.c.trigger_id.in_(scope.trigger_ids), error_groups.c.status != "ignored", wanted)
        .order_by(error_groups.c.last_seen.desc())
        .limit(5)
    )
    return {"groups": [{"fingerprint": r.fingerprint, "title": r.title, "status": r.status} for r in found]}


def trigger_paused(condition: TriggerPaused, connection: Connection, scope: Scope, now: datetime) -> dict[str, Any]:
    """The scope's paused triggers and why."""
    rows = connection.execute(
        select(triggers.c.name, triggers.c.paused_reason)
        .where(triggers.c.id.in_(scope.trigger_ids), triggers.c.paused)
        .order_by(triggers.c.name)
    )
    return {"paused": [{"trigger": r.name, "reason": r.paused_reason} for r in rows]}


def breaker_open(condition: BreakerOpen, connection: Connection, scope: Scope, now: datetime) -> dict[str, Any]:
    """The destinations whose breaker holds work (open or half-open, not forced), each since it last left closed
    (its latest ``closed ->`` transition; the last change when that has been purged)."""
    left_closed = (
        select(func.max(breaker_transitions.c.at))
        .where(breaker_transitions.c.destination == destinations.c.name, breaker_transitions.c.from_state == "closed")
        .scalar_subquery()
    )
    query = select(destinations.c.name, destinations.c.state, destinations.c.changed_at, left_closed.label("since"))
    query = query.where(destinations.c.state.in_(("open", "half_open")), destinations.c.forced.is_(None))
    if condition.destinations is not None:
        query = query.where(destinations.c.name.in_(condition.destinations))
    held = []
    for row in connection.execute(query.order_by(destinations.c.name)):
        since = row.since or row.changed_at
        seconds = (now - since).total_seconds()
        held.append({"destination": row.name, "state": row.state, "since": since.isoformat(), "seconds": seconds})
    return {"held": held}


COUNTS: dict[str, Count] = {
    FailureRate.key: failure_rate,
    DeadLetters.key: dlq_size,
    DeadLetterGrowth.key: dlq_growth,
    OldestPending.key: oldest_pending,
    ErrorGroupSeen.key: error_group,
    TriggerPaused.key: trigger_paused,
    BreakerOpen.key: breaker_open,
}
"""The count behind each condition, by its key: a new condition adds its own here."""
