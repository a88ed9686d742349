"""Error groups: failures that share a fingerprint, with counts, first/last seen and a lifecycle.

A group is ``open`` when first seen; an operator marks it ``resolved`` or ``ignored``; a resolved group that fails
again becomes ``regressed`` (decided in the upsert itself, so it holds however many workers record failures).
``record_failure`` runs inside the worker's completion transaction; the rest are read or write jobs for the API.

Besides its status, a group holds an operator's attention, which silences its repeated alerts without resolving
it (``silenced``): an acknowledgement (who, when, a note), and a snooze until a time or until ``total`` grows by N
more failures (stored as the total at which it ends). Both are cleared when the group regresses, in the same
upsert, so a regression alerts again whoever acknowledged the old failure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, case, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from redrive.db.engine import dialect_insert
from redrive.db.schema import attempts, error_groups, executions, stat_rollups, triggers
from redrive.failures import audit
from redrive.observe import rollup_reads as reads
from redrive.observe import rollups
from redrive.states import ExecutionStatus

Decision = Literal["resolved", "ignored"]
Attention = Literal["acknowledge", "unacknowledge", "snooze", "unsnooze"]
MAX_GROUPS = 500
FAILING = ("failed", "failed_retryable")  # failing now, as in observe.stats
ATTENTION_COLUMNS = ("acknowledged_at", "acknowledged_by", "acknowledge_note", "snoozed_until", "snooze_until_total")

# What each count of a group means (the API documents and the dashboard shows these very strings).
COUNT_MEANS = "Failed attempts with this fingerprint that finished in the window, retries included."
TOTAL_MEANS = (
    "Failed attempts with this fingerprint since the group was first seen, whatever its status; retention does not "
    "lower it."
)
DLQ_MEANS = "Dead letters now (failed_retryable) whose last attempt failed with this fingerprint."
FAILING_MEANS = (
    "Executions failing now (failed or failed_retryable, not replayed) whose last attempt failed with this "
    "fingerprint; resolving or ignoring the group does not change it, replaying does."
)


def record_failure(
    connection: Connection,
    *,
    fingerprint: str,
    trigger_id: int,
    kind: str,
    code: str,
    category: str,
    title: str,
    execution_id: int,
    at: datetime,
) -> str:
    """Count one failed attempt in its group (creating it ``open``); return the group's status afterwards.

    A ``resolved`` group becomes ``regressed``; ``ignored`` stays ignored. The newest failure becomes the sample.
    """
    insert = dialect_insert(connection)(error_groups).values(
        fingerprint=fingerprint,
        trigger_id=trigger_id,
        action_kind=kind,
        code=code,
        category=category,
        title=title,
        status="open",
        total=1,
        first_seen=at,
        last_seen=at,
        sample_execution_id=execution_id,
    )
    regresses = error_groups.c.status == "resolved"
    newer = insert.excluded.last_seen >= error_groups.c.last_seen
    older = insert.excluded.first_seen < error_groups.c.first_seen
    upsert = insert.on_conflict_do_update(
        index_elements=["fingerprint"],
        set_={
            "total": error_groups.c.total + 1,
            # Completions commit in batches, so an older failure may be recorded after a newer one.
            "first_seen": case((older, insert.excluded.first_seen), else_=error_groups.c.first_seen),
            "last_seen": case((newer, insert.excluded.last_seen), else_=error_groups.c.last_seen),
            "sample_execution_id": case(
                (newer, insert.excluded.sample_execution_id), else_=error_groups.c.sample_execution_id
            ),
            "status": case((regresses, "regressed"), else_=error_groups.c.status),
            "status_changed_at": case((regresses, insert.excluded.last_seen), else_=error_groups.c.status_changed_at),
            **{name: case((regresses, None), else_=error_groups.c[name]) for name in ATTENTION_COLUMNS},
        },
    )
    status: str = connection.execute(upsert.returning(error_groups.c.status)).scalar_one()
    return status


@dataclass(frozen=True, slots=True)
class GroupFilter:
    """Which groups to list: seen since ``since``, optionally by status and trigger name."""

    since: datetime
    status: str | None = None
    trigger: str | None = None
    limit: int = 50


def _query(since: datetime) -> tuple[Select[Any], ColumnElement[int]]:
    """Groups with their counts (the ``*_MEANS`` above); each count is an index range per group: fingerprint, then
    time (``ix_attempts_fingerprint_finished``) or status (``ix_executions_fingerprint``)."""
    count = (
        select(func.count())
        .where(attempts.c.fingerprint == error_groups.c.fingerprint, attempts.c.finished_at >= since)
        .scalar_subquery()
        .label("count")
    )
    dlq = (
        select(func.count())
        .where(
            executions.c.fingerprint == error_groups.c.fingerprint,
            executions.c.status == ExecutionStatus.FAILED_RETRYABLE,
        )
        .scalar_subquery()
    )
    failing = (
        select(func.count())
        .where(executions.c.fingerprint == error_groups.c.fingerprint, executions.c.status.in_(FAILING))
        .scalar_subquery()
    )
    query = select(
        error_groups.c.fingerprint,
        error_groups.c.title,
        error_groups.c.code,
        error_groups.c.category,
        triggers.c.name.label("trigger"),
        error_groups.c.action_kind.label("kind"),
        error_groups.c.status,
        count,
        error_groups.c.total,
        error_groups.c.first_seen,
        error_groups.c.last_seen,
        dlq.label("dlq"),
        failing.label("failing"),
        error_groups.c.sample_execution_id,
        error_groups.c.status_changed_at,
        *(error_groups.c[name] for name in ATTENTION_COLUMNS),
    ).join(triggers, triggers.c.id == error_groups.c.trigger_id)
    return query, count


def _row(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


def list_statement(f: GroupFilter) -> Select[Any]:
    """The groups ``f`` selects with their counts, most failures in the window first (exposed for plan tests)."""
    query, count = _query(f.since)
    query = query.where(error_groups.c.last_seen >= f.since)
    if f.status is not None:
        query = query.where(error_groups.c.status == f.status)
    if f.trigger is not None:
        query = query.where(triggers.c.name == f.trigger)
    query = query.order_by(count.desc(), error_groups.c.last_seen.desc(), error_groups.c.fingerprint)
    return query.limit(min(f.limit, MAX_GROUPS))


def list_groups(f: GroupFilter) -> Callable[[Connection], list[dict[str, Any]]]:
    """A read job: groups seen in the window, most failures in the window first."""

    def job(connection: Connection) -> list[dict[str, Any]]:
        if not rollups.ready(connection):
            return [_row(row) for row in connection.execute(list_statement(f))]
        query = _columns().where(error_groups.c.last_seen >= f.since)
        if f.status is not None:
            query = query.where(error_groups.c.status == f.status)
        if f.trigger is not None:
            query = query.where(triggers.c.name == f.trigger)
        groups = _counted(connection, [_row(row) for row in connection.execute(query)], f.since)
        groups.sort(key=lambda g: g["fingerprint"])
        groups.sort(key=lambda g: (g["count"], g["last_seen"]), reverse=True)
        return groups[: min(f.limit, MAX_GROUPS)]

    return job


def get_group(fingerprint: str, since: datetime) -> Callable[[Connection], dict[str, Any] | None]:
    """A read job: one group with its count since ``since``, or None."""

    def job(connection: Connection) -> dict[str, Any] | None:
        if not rollups.ready(connection):
            query, _ = _query(since)
            row = connection.execute(query.where(error_groups.c.fingerprint == fingerprint)).one_or_none()
            return None if row is None else _row(row)
        found = connection.execute(_columns().where(error_groups.c.fingerprint == fingerprint)).one_or_none()
        return None if found is None else _counted(connection, [_row(found)], since, fingerprint)[0]

    return job


def _columns() -> Select[Any]:
    """The groups' own columns, without the counts (which the rollups give)."""
    return select(
        *(error_groups.c[name] for name in ("fingerprint", "title", "code", "category")),
        triggers.c.name.label("trigger"),
        error_groups.c.action_kind.label("kind"),
        *(error_groups.c[name] for name in ("status", "total", "first_seen", "last_seen")),
        error_groups.c.sample_execution_id,
        error_groups.c.status_changed_at,
        *(error_groups.c[name] for name in ATTENTION_COLUMNS),
    ).join(triggers, triggers.c.id == error_groups.c.trigger_id)


def failures_by_group_statement(start: datetime, before: datetime) -> Select[Any]:
    """``SELECT fingerprint, count(*)`` of the attempts finished in ``[start, before)`` (a window's partial first
    minute), grouped by fingerprint; the successful attempts make a NULL group, for the caller to drop.

    A range of ``ix_attempts_finished``. With ``fingerprint IS NOT NULL`` added, SQLite grouped through the partial
    ``ix_attempts_fingerprint_finished`` in fingerprint order instead, reading every failed attempt ever (350 ms at
    10 million rows).
    """
    finished = attempts.c.finished_at
    return (
        select(attempts.c.fingerprint, func.count())
        .where(finished >= start, finished < before)
        .group_by(attempts.c.fingerprint)
    )


def _counted(
    connection: Connection, groups: list[dict[str, Any]], since: datetime, fingerprint: str | None = None
) -> list[dict[str, Any]]:
    """``groups`` with their counts (the ``*_MEANS`` above) from the rollups: failed attempts over the window's
    whole minutes, plus its partial first minute from ``ix_attempts_finished``; dead letters and failing ones from
    the all-time bucket."""
    only = [] if fingerprint is None else [attempts.c.fingerprint == fingerprint]
    window = reads.split(since, None)
    counts: dict[Any, int] = {}
    if window.head is not None:
        query = failures_by_group_statement(*window.head).where(*only)
        counts.update({row[0]: row[1] for row in connection.execute(query) if row[0] is not None})
    assert window.whole is not None
    rolled_only = [] if fingerprint is None else [stat_rollups.c.fingerprint == fingerprint]
    for key, n in reads.totals(
        connection, "failed_attempts", reads.cover(*window.whole), ["fingerprint"], *rolled_only
    ).items():
        counts[key] = counts.get(key, 0) + n
    failing = reads.totals(connection, "failing", reads.ALL, ["fingerprint", "status"], *rolled_only)
    for group in groups:
        fp = group["fingerprint"]
        dlq = failing.get((fp, ExecutionStatus.FAILED_RETRYABLE.value), 0)
        group.update(count=counts.get(fp, 0), dlq=dlq, failing=dlq + failing.get((fp, ExecutionStatus.FAILED.value), 0))
    return groups


def set_status(fingerprint: str, status: Decision, at: datetime, *, actor: str) -> Callable[[Connection], bool]:
    """A write job: mark a group resolved or ignored, audited as done by ``actor``; False when no group has that
    fingerprint (the refusal is audited too)."""

    def job(connection: Connection) -> bool:
        was = connection.execute(
            select(error_groups.c.status).where(error_groups.c.fingerprint == fingerprint)
        ).scalar_one_or_none()
        changed = connection.execute(
            update(error_groups)
            .where(error_groups.c.fingerprint == fingerprint)
            .values(status=status, status_changed_at=at)
        ).rowcount
        audit.record(
            connection,
            at=at,
            actor=actor,
            action="error_group_resolve" if status == "resolved" else "error_group_ignore",
            target=f"error_group:{fingerprint}",
            result="ok" if changed else "not_found",
            detail={"previous_status": was} if changed else {},
        )
        return bool(changed)

    return job


def silenced(row: Mapping[str, Any], now: datetime) -> bool:
    """Whether an operator keeps the group's repeated alerts quiet at ``now``: it is acknowledged, or snoozed and
    the snooze has not run out (``now`` before its time, or ``total`` below its count).

    ``row`` is a group as read from ``error_groups`` (a row mapping, or what ``list_groups``/``get_group`` return),
    datetimes aware. Whether the group alerts at all (its status) is the caller's concern.
    """
    if row["acknowledged_at"] is not None:
        return True
    until, until_total = row["snoozed_until"], row["snooze_until_total"]
    return (until is not None and now < until) or (until_total is not None and row["total"] < until_total)


def snooze_problem(until: datetime | None, grows_by: int | None, now: datetime) -> str | None:
    """Why a snooze cannot be taken as asked (a sentence for the caller), or None when it can."""
    if (until is None) == (grows_by is None):
        return "snooze until a time ('until') or until the group grows by N failures ('grows_by'): exactly one"
    if until is not None and until <= now:
        return f"'until' ({until.isoformat()}) has already passed; give a time in the future"
    if grows_by is not None and grows_by < 1:
        return "'grows_by' must be at least 1"
    return None


@dataclass(frozen=True, slots=True)
class Attend:
    """One change to a group's attention, by ``actor`` at ``at``; ``note`` goes with an acknowledgement, ``until``
    or ``grows_by`` (exactly one, checked by the caller) with a snooze."""

    action: Attention
    actor: str
    at: datetime
    note: str | None = None
    until: datetime | None = None
    grows_by: int | None = None

    def values(self) -> dict[str, Any]:
        """The columns this change sets: an acknowledgement or a snooze replaces the previous one whole."""
        if self.action == "acknowledge":
            return {"acknowledged_at": self.at, "acknowledged_by": self.actor, "acknowledge_note": self.note}
        if self.action == "unacknowledge":
            return {"acknowledged_at": None, "acknowledged_by": None, "acknowledge_note": None}
        if self.action == "snooze":
            ends = None if self.grows_by is None else error_groups.c.total + self.grows_by
            return {"snoozed_until": self.until, "snooze_until_total": ends}
        return {"snoozed_until": None, "snooze_until_total": None}

    def detail(self) -> dict[str, Any]:
        """What the audit row keeps of the request."""
        asked = {"note": self.note, "until": self.until, "grows_by": self.grows_by}
        return {key: value for key, value in asked.items() if value is not None}


def attend(fingerprint: str, change: Attend) -> Callable[[Connection], bool]:
    """A write job: apply ``change`` to the group, audited as done by its actor; False when no group has that
    fingerprint (the refusal is audited too)."""

    def job(connection: Connection) -> bool:
        changed = connection.execute(
            update(error_groups).where(error_groups.c.fingerprint == fingerprint).values(**change.values())
        ).rowcount
        audit.record(
            connection,
            at=change.at,
            actor=change.actor,
            action=f"error_group_{change.action}",
            target=f"error_group:{fingerprint}",
            result="ok" if changed else "not_found",
            detail=change.detail(),
        )
        return bool(changed)

    return job
