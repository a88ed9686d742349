"""Authoritative statistics, counted in the database from indexes; every value a bound parameter.

Every figure the API, the CLI and the dashboard show is defined once, here, next to the statement that counts it
(the ``*_MEANS`` constants). The response models' field descriptions and the dashboard's help texts are these very
strings, so a rollup that replaces a statement must keep its definition word for word.

- ``count_statement``: the windowed execution count behind ``GET /api/v1/executions/stats``, a range scan of
  ``ix_executions_finished (status, finished_at, action_kind)`` per status. Exposed so a test can explain the very
  statement the route runs.
- ``summary``: the overview behind ``GET /api/v1/stats``; its statements (``status_count_statement``,
  ``attempts_failed_statement``, ``retries_statement``) are exposed for the same reason.
- ``timeseries``: counts per time bucket, the bucket computed and grouped in SQL.

For rollups, the figures are of three kinds. Live (failing now, dead letters, permanent failures): the status index
answers them at any size, no rollup needed. Counted when something happens and never revised (failed attempts and
retries at an attempt's completion, bucketed by its ``finished_at``; replays and executions created, by
``created_at``; the per-day counters): a rollup adds to a bucket and is done. By status now (executions/stats,
timeseries by status, by_status): a later status change moves the execution between keys of the bucket it already
sits in, so a replay must also move its original from failing to ``replayed`` in the original's bucket.
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
from redrive.states import FAILING, ExecutionStatus
from redrive.triggers.admin import events_since
from redrive.triggers.runtime import Trigger

SUCCEEDED: tuple[str, ...] = (ExecutionStatus.SUCCEEDED.value,)
FINISHED = SUCCEEDED + FAILING + (ExecutionStatus.REPLAYED.value,)  # every status once its attempts are over
FAILED_OUTCOMES = ("transient", "permanent")  # an attempt's outcome when it failed
DLQ_WARNING = 10  # warn when the dead-letter queue holds more than this
SUMMED_COUNTERS = ("duplicates", "key_conflicts", "invalid_signatures")

Key = Literal["status", "kind", "trigger"]

EXECUTIONS_COUNT_MEANS = (
    "Executions that finished (their attempts are over) at or after now minus `since`, selected by their status "
    "now: success=true counts the succeeded ones, success=false the ones failing now (failed or failed_retryable; "
    "a replayed execution is not failing, its replay counts when it finishes), absent every finished one, "
    "replayed ones included."
)
FAILING_NOW_MEANS = (
    "Executions failing now: status failed (permanent failure) or failed_retryable (dead letter), whatever their "
    "age. An execution stops failing only when it is replayed (the replay is a new execution) or purged by "
    "retention; resolving or ignoring its error group does not change it. Equals dead letters + permanent failures."
)
DLQ_SIZE_MEANS = (
    "Dead letters now: executions in failed_retryable (transient failures that used up their attempts), whatever "
    "their age; a replay moves one out."
)
PERMANENT_FAILURES_MEANS = (
    "Permanent failures now: executions in failed (an error retrying cannot fix), whatever their age; an admin may "
    "replay one with force=true."
)
ATTEMPTS_FAILED_MEANS = (
    "Failed attempts: attempts that finished in the window with a transient or permanent failure, retries "
    "included; one execution can fail several attempts."
)
RETRIES_MEANS = (
    "Retries: attempts that finished in the window and followed an earlier attempt of the same execution (attempt "
    "2 or later). Each attempt that was followed by another counts once, when the next one finishes: an execution "
    "dead-lettered after 3 attempts made 2 retries. A replay is a new execution, not a retry."
)
TOTAL_MEANS = "Executions created in the window, whatever their status now (the sum of by_status)."
BY_STATUS_MEANS = "Executions created in the window, by their status now; every status present, zero when none."
REPLAYS_MEANS = "Replays: executions created in the window that replay another one (single or bulk)."
DUPLICATES_MEANS = (
    "Duplicate deliveries dropped at ingest (same idempotency key, same body) on the window's UTC days; the "
    "original execution runs once."
)
KEY_CONFLICTS_MEANS = (
    "Deliveries refused at ingest because their idempotency key was used before with another body, on the "
    "window's UTC days."
)
INVALID_SIGNATURES_MEANS = "Deliveries refused at ingest for a missing or wrong signature, on the window's UTC days."
TRIGGER_VOLUME_MEANS = "Per trigger: events received today (UTC) against its daily watermark, and whether it is paused."
TIMESERIES_MEANS = (
    "Per bucket and key: executions that finished in the bucket, each counted once by its status now (a replayed "
    "execution counts as replayed where it finished; its replay counts where the replay finishes), or by action "
    "kind or trigger. With `fingerprint`: that error group's failed attempts that finished in the bucket."
)


def statuses_for(success: bool | None) -> tuple[str, ...]:
    """The statuses ``success`` selects: succeeded, failing now, or every finished one (see EXECUTIONS_COUNT_MEANS)."""
    if success is None:
        return FINISHED
    return SUCCEEDED if success else FAILING


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


def status_count_statement(statuses: Sequence[str]) -> Select[int]:
    """``SELECT count(*)`` of executions whose status is one of ``statuses`` now: one range per status of an index
    that starts with ``status`` (DLQ_SIZE_MEANS, PERMANENT_FAILURES_MEANS; their sum is FAILING_NOW_MEANS)."""
    return select(func.count()).select_from(executions).where(executions.c.status.in_(statuses))


def attempts_failed_statement(start: datetime) -> Select[int]:
    """``SELECT count(*)`` of failed attempts finished since ``start``: a range of ``ix_attempts_finished``
    (ATTEMPTS_FAILED_MEANS)."""
    return (
        select(func.count())
        .select_from(attempts)
        .where(attempts.c.finished_at >= start, attempts.c.outcome.in_(FAILED_OUTCOMES))
    )


def retries_statement(start: datetime) -> Select[int]:
    """``SELECT count(*)`` of attempts 2 and later finished since ``start``: a range of ``ix_attempts_finished``
    (RETRIES_MEANS). Attempt numbers have no gaps (a lease that expires charges no attempt), so the attempts that
    follow another are exactly as many as the attempts that were followed by another."""
    return select(func.count()).select_from(attempts).where(attempts.c.finished_at >= start, attempts.c.number > 1)


def summary(declared: Sequence[Trigger], window: Window) -> Callable[[Connection], dict[str, Any]]:
    """A read job: the overview of ``window`` with per-trigger volume today and warnings (the ``*_MEANS``)."""

    def job(connection: Connection) -> dict[str, Any]:
        created = _executions_created(connection, window.start)
        by_status = {status.value: created.get(status, (0, 0))[0] for status in ExecutionStatus}
        dlq_size = connection.execute(status_count_statement([ExecutionStatus.FAILED_RETRYABLE])).scalar_one()
        permanent = connection.execute(status_count_statement([ExecutionStatus.FAILED])).scalar_one()
        counters = dict.fromkeys(SUMMED_COUNTERS, 0)
        for name, value in connection.execute(
            select(daily_counters.c.name, func.sum(daily_counters.c.value))
            .where(daily_counters.c.day >= window.first_day, daily_counters.c.name.in_(SUMMED_COUNTERS))
            .group_by(daily_counters.c.name)
        ):
            counters[name] = int(value)
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
            "failing_now": dlq_size + permanent,
            "dlq_size": dlq_size,
            "permanent_failures": permanent,
            "attempts_failed": connection.execute(attempts_failed_statement(window.start)).scalar_one(),
            "retries_observed": connection.execute(retries_statement(window.start)).scalar_one(),
            "replays": sum(replays for _, replays in created.values()),
            "idempotent_replays": counters["duplicates"],
            "key_conflicts": counters["key_conflicts"],
            "invalid_signatures": counters["invalid_signatures"],
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
