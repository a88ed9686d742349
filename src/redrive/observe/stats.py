"""Authoritative statistics, counted in the database from indexes; every value a bound parameter.

- ``count_statement``: the windowed execution count behind ``GET /api/v1/executions/stats``, a range scan of
  ``ix_executions_finished (status, finished_at, action_kind)`` per status. Exposed so a test can explain the very
  statement the route runs.
- ``summary``: the overview behind ``GET /api/v1/stats``.
- ``timeseries``: counts per time bucket, the bucket computed and grouped in SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import BigInteger, Select, cast, extract, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from redrive.db.schema import attempts, daily_counters, executions, triggers
from redrive.states import DEAD, ExecutionStatus
from redrive.triggers.admin import events_since
from redrive.triggers.runtime import Trigger

# Statuses an execution has once it has finished; a replayed execution had failed before it was replayed.
SUCCEEDED: tuple[str, ...] = (ExecutionStatus.SUCCEEDED.value,)
FAILED: tuple[str, ...] = DEAD
FINISHED = SUCCEEDED + FAILED
DLQ_WARNING = 10  # warn when the dead-letter queue holds more than this
SUMMED_COUNTERS = ("duplicates", "key_conflicts", "invalid_signatures")

Key = Literal["status", "kind", "trigger"]


def statuses_for(success: bool | None) -> tuple[str, ...]:
    """The finished statuses ``success`` selects: succeeded, the failed ones, or all."""
    if success is None:
        return FINISHED
    return SUCCEEDED if success else FAILED


def count_statement(success: bool | None, since: datetime, kind: str | None = None) -> Select[int]:
    """``SELECT count(*)`` of executions finished since ``since`` with the statuses ``success`` selects."""
    query = select(func.count()).select_from(executions)
    query = query.where(executions.c.status.in_(statuses_for(success)), executions.c.finished_at >= since)
    if kind is not None:
        query = query.where(executions.c.action_kind == kind)
    return query


def count_executions(success: bool | None, since: datetime, kind: str | None) -> Callable[[Connection], int]:
    """A read job: the authoritative windowed count."""

    def job(connection: Connection) -> int:
        count: int = connection.execute(count_statement(success, since, kind)).scalar_one()
        return count

    return job


def day_start(moment: datetime) -> datetime:
    """Midnight (UTC) of ``moment``'s day."""
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class Window:
    """The summary's window: whole UTC days, today included, so it matches the per-day counters."""

    days: int
    now: datetime

    @property
    def today(self) -> datetime:
        """Midnight (UTC) today."""
        return day_start(self.now)

    @property
    def start(self) -> datetime:
        """Midnight (UTC) ``days - 1`` days ago."""
        return self.today - timedelta(days=self.days - 1)

    @property
    def first_day(self) -> date:
        """The window's first UTC day."""
        return self.start.date()


def _executions_created(connection: Connection, start: datetime) -> dict[str, tuple[int, int]]:
    # Listing every trigger id lets the count read ix_executions_trigger_created, one range per trigger.
    all_ids = list(connection.execute(select(triggers.c.id)).scalars())
    rows = connection.execute(
        select(executions.c.status, func.count(), func.count(executions.c.replay_of))
        .where(executions.c.trigger_id.in_(all_ids), executions.c.created_at >= start)
        .group_by(executions.c.status)
    )
    return {status: (count, replays) for status, count, replays in rows}


def summary(declared: Sequence[Trigger], window: Window) -> Callable[[Connection], dict[str, Any]]:
    """A read job: the overview of ``window`` with per-trigger volume today and warnings."""

    def job(connection: Connection) -> dict[str, Any]:
        created = _executions_created(connection, window.start)
        by_status = {status.value: created.get(status, (0, 0))[0] for status in ExecutionStatus}
        dlq_size = connection.execute(
            select(func.count()).select_from(executions).where(executions.c.status == ExecutionStatus.FAILED_RETRYABLE)
        ).scalar_one()
        counters = dict.fromkeys(SUMMED_COUNTERS, 0)
        for name, value in connection.execute(
            select(daily_counters.c.name, func.sum(daily_counters.c.value))
            .where(daily_counters.c.day >= window.first_day, daily_counters.c.name.in_(SUMMED_COUNTERS))
            .group_by(daily_counters.c.name)
        ):
            counters[name] = int(value)
        retries = connection.execute(
            select(func.count())
            .select_from(attempts)
            .where(attempts.c.finished_at >= window.start, attempts.c.outcome == "transient")
        ).scalar_one()
        ids = [t.id for t in declared]
        today = events_since(connection, ids, window.today)
        paused = set(
            connection.execute(select(triggers.c.id).where(triggers.c.id.in_(ids), triggers.c.paused)).scalars()
        )
        per_trigger: dict[str, dict[str, Any]] = {}
        warnings = ["dlq_growing"] if dlq_size > DLQ_WARNING else []
        for trigger in sorted(declared, key=lambda t: t.name):
            count = today.get(trigger.id, 0)
            watermark = trigger.config.limits.daily_watermark
            hit = watermark is not None and count >= watermark
            per_trigger[trigger.name] = {
                "count": count,
                "daily_watermark": watermark,
                "watermark_hit": hit,
                "paused": trigger.id in paused,
            }
            if hit:
                warnings.append(f"watermark_hit:{trigger.name}")
        return {
            "days": window.days,
            "since": window.start.isoformat(),
            "total": sum(by_status.values()),
            "by_status": by_status,
            "dlq_size": dlq_size,
            "idempotent_replays": counters["duplicates"],
            "key_conflicts": counters["key_conflicts"],
            "invalid_signatures": counters["invalid_signatures"],
            "retries_observed": retries,
            "replays": sum(replays for _, replays in created.values()),
            "triggers": per_trigger,
            "warnings": warnings,
        }

    return job


def _bucket(connection: Connection, column: Any, seconds: int) -> ColumnElement[Any]:
    """The bucket number of ``column``: whole ``seconds`` since the epoch, divided down, computed in SQL."""
    if connection.dialect.name == "sqlite":
        return cast(func.strftime("%s", column), BigInteger) // seconds  # integer division: '/' would be true division
    return cast(func.floor(extract("epoch", column) / seconds), BigInteger)


def _grouped(connection: Connection, inner: Select[Any], keyed: bool) -> dict[int, dict[str, int]]:
    bucketed = inner.subquery("bucketed")
    columns = (bucketed.c.bucket, bucketed.c.key) if keyed else (bucketed.c.bucket,)
    found: dict[int, dict[str, int]] = {}
    for row in connection.execute(select(*columns, func.count()).group_by(*columns)):
        found.setdefault(int(row[0]), {})[str(row[1]) if keyed else "failed"] = row[-1]
    return found


def timeseries(
    since: datetime, until: datetime, seconds: int, by: Key, fingerprint: str | None = None
) -> Callable[[Connection], dict[int, dict[str, int]]]:
    """A read job: counts per bucket number (``epoch // seconds``) and key, for rows in ``[since, until]``.

    Finished executions keyed by status, action kind or trigger name; with ``fingerprint``, that error group's
    failed attempts instead, keyed ``failed``.
    """

    def job(connection: Connection) -> dict[int, dict[str, int]]:
        if fingerprint is not None:
            finished = attempts.c.finished_at
            failures = select(_bucket(connection, finished, seconds).label("bucket")).where(
                attempts.c.fingerprint == fingerprint, finished >= since, finished <= until
            )
            return _grouped(connection, failures, keyed=False)
        finished = executions.c.finished_at
        key: Any = {"status": executions.c.status, "kind": executions.c.action_kind, "trigger": triggers.c.name}[by]
        inner = select(_bucket(connection, finished, seconds).label("bucket"), key.label("key")).where(
            executions.c.status.in_(FINISHED), finished >= since, finished <= until
        )
        if by == "trigger":
            inner = inner.join_from(executions, triggers, triggers.c.id == executions.c.trigger_id)
        return _grouped(connection, inner, keyed=True)

    return job


def zero_filled(
    starts: Sequence[datetime], seconds: int, found: dict[int, dict[str, int]], keys: Sequence[str]
) -> list[dict[str, Any]]:
    """Every bucket of ``starts`` with a count for every key (zero when nothing was found)."""
    return [
        {
            "start": start.isoformat(),
            "counts": {**dict.fromkeys(keys, 0), **found.get(int(start.timestamp()) // seconds, {})},
        }
        for start in starts
    ]
