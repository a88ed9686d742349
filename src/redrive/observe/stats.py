"""Authoritative statistics: every figure read from the rollups (``observe.rollups``), whatever the history holds.

Every figure the API, the CLI and the dashboard show is defined once, here, next to the statement that counts it
from the raw tables (the ``*_MEANS`` constants). The response models' field descriptions and the dashboard's help
texts are these very strings. The raw statements stay the definition: they answer while the rollups of an upgraded
database are being backfilled (``rollups.ready``), and the tests compare every rollup-served figure with them.

- ``count_executions``: ``GET /api/v1/executions/stats`` and the dead-letter growth alert: the ``finished`` rollup
  over the window's whole minutes (days, hours and minutes, see ``rollup_reads``), plus the partial first minute
  from ``ix_executions_finished`` (``count_statement``, exposed so a test can explain it).
- ``summary``: ``GET /api/v1/stats``: whole UTC days, so day buckets and no ragged edge; dead letters and permanent
  failures from the all-time ``failing`` bucket; pending and running from ``created``'s ``unfinished`` key less the
  running rows (a range of the status index as long as the leases held now).
- ``timeseries``: counts per bucket, whole minutes from the rollups and the partial minute at each end from the
  raw rows (bucketed in SQL); a bucket width that is not whole minutes is counted from the raw rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import BigInteger, CompoundSelect, Select, cast, extract, func, literal, select, union_all
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from redrive.db.schema import attempts, daily_counters, executions, stat_rollups, triggers
from redrive.observe import rollup_reads as reads
from redrive.observe import rollups
from redrive.states import FAILING, ExecutionStatus
from redrive.triggers.admin import events_since
from redrive.triggers.runtime import Trigger

SUCCEEDED: tuple[str, ...] = (ExecutionStatus.SUCCEEDED.value,)
FINISHED = SUCCEEDED + FAILING + (ExecutionStatus.REPLAYED.value,)  # every status once its attempts are over
FAILED_OUTCOMES = ("transient", "permanent")  # an attempt's outcome when it failed
MAX_DAYS = 30  # the summary's longest window, in UTC days (today included)
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


def count_statement(
    statuses: Sequence[str],
    since: datetime,
    kind: str | None = None,
    before: datetime | None = None,
    trigger_ids: Sequence[int] | None = None,
) -> Select[int]:
    """``SELECT count(*)`` of executions in ``statuses`` (``statuses_for``) finished since ``since`` (and before
    ``before``), of the action ``kind`` and the triggers ``trigger_ids`` when given."""
    query = select(func.count()).select_from(executions)
    query = query.where(executions.c.status.in_(statuses), executions.c.finished_at >= since)
    if before is not None:
        query = query.where(executions.c.finished_at < before)
    if kind is not None:
        query = query.where(executions.c.action_kind == kind)
    if trigger_ids is not None:
        query = query.where(executions.c.trigger_id.in_(trigger_ids))
    return query


def count_executions(
    statuses: Sequence[str], since: datetime, kind: str | None = None, trigger_ids: Sequence[int] | None = None
) -> Callable[[Connection], int]:
    """A read job: the authoritative windowed count (``count_statement``'s): the whole minutes since ``since`` from
    the ``finished`` rollup, the partial minute at its start from the index."""

    def job(connection: Connection) -> int:
        if not rollups.ready(connection):
            return int(connection.execute(count_statement(statuses, since, kind, None, trigger_ids)).scalar_one())
        window = reads.split(since, None)
        count = 0
        if window.head is not None:
            start, before = window.head
            count += connection.execute(count_statement(statuses, start, kind, before, trigger_ids)).scalar_one()
        where: list[ColumnElement[bool]] = [stat_rollups.c.status.in_(statuses)]
        if kind is not None:
            where.append(stat_rollups.c.kind == kind)
        if trigger_ids is not None:
            where.append(stat_rollups.c.trigger_id.in_(trigger_ids))
        assert window.whole is not None
        return count + reads.total_of(connection, "finished", reads.cover(*window.whole), *where)

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


def count_status(statuses: Sequence[str], trigger_ids: Sequence[int]) -> Callable[[Connection], int]:
    """A read job: ``status_count_statement`` narrowed to ``trigger_ids``, read from the ``failing`` rollup's
    all-time bucket (``statuses`` among ``FAILING``), whatever the number of rows it counts."""
    if not set(statuses) <= set(FAILING):
        raise ValueError(f"only the failing statuses have an all-time count, not {sorted(statuses)}")

    def job(connection: Connection) -> int:
        if not rollups.ready(connection):
            statement = status_count_statement(statuses).where(executions.c.trigger_id.in_(trigger_ids))
            return int(connection.execute(statement).scalar_one())
        where = (stat_rollups.c.status.in_(statuses), stat_rollups.c.trigger_id.in_(trigger_ids))
        return reads.total_of(connection, "failing", reads.ALL, *where)

    return job


def attempt_outcomes_statement(since: datetime, trigger_ids: Sequence[int], before: datetime | None = None) -> Any:
    """``SELECT count(*), count(failed)`` of the attempts of ``trigger_ids``' executions finished since ``since``
    (and before ``before``): a range of ``ix_attempts_finished``, each row joined to its execution."""
    query = (
        select(func.count(), func.count().filter(attempts.c.outcome.in_(FAILED_OUTCOMES)))
        .select_from(attempts.join(executions, executions.c.id == attempts.c.execution_id))
        .where(attempts.c.finished_at >= since, executions.c.trigger_id.in_(trigger_ids))
    )
    return query if before is None else query.where(attempts.c.finished_at < before)


def attempt_outcomes(since: datetime, trigger_ids: Sequence[int]) -> Callable[[Connection], tuple[int, int]]:
    """A read job: ``(attempts, failed attempts)`` of ``trigger_ids`` finished since ``since``
    (``attempt_outcomes_statement``'s figures).

    From the rollups: the failed ones from ``failed_attempts``; the others are the succeeded attempts, and each
    succeeded execution has exactly one, finished when the execution did (succeeded is final: never replayed, only
    purged with its attempts), so they are the ``finished`` rollup's succeeded executions of the window. The partial
    minute at the start is read raw, as everywhere.
    """

    def job(connection: Connection) -> tuple[int, int]:
        if not rollups.ready(connection):
            total, failed = connection.execute(attempt_outcomes_statement(since, trigger_ids)).one()
            return int(total), int(failed)
        window = reads.split(since, None)
        total = failed = 0
        if window.head is not None:
            start, before = window.head
            total, failed = connection.execute(attempt_outcomes_statement(start, trigger_ids, before)).one()
        assert window.whole is not None
        pieces = reads.cover(*window.whole)
        in_scope = stat_rollups.c.trigger_id.in_(trigger_ids)
        whole_failed = reads.total_of(connection, "failed_attempts", pieces, in_scope)
        succeeded = reads.total_of(connection, "finished", pieces, in_scope, stat_rollups.c.status.in_(SUCCEEDED))
        return int(total) + whole_failed + succeeded, int(failed) + whole_failed

    return job


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


@dataclass(frozen=True, slots=True)
class _Counted:
    """The summary's figures (see the ``*_MEANS``) before they are laid out."""

    by_status: dict[str, int]
    replays: int
    dlq_size: int
    permanent: int
    attempts_failed: int
    retries: int
    today: dict[int, int]  # events received today per trigger id
    counters: dict[str, int]  # SUMMED_COUNTERS over the window's days
    paused: set[int]  # the ids of the paused triggers


def _counters_statement(window: Window) -> Select[Any]:
    """``SELECT sum(value), name`` of the SUMMED_COUNTERS on the window's days."""
    return (
        select(func.sum(daily_counters.c.value), daily_counters.c.name)
        .where(daily_counters.c.day >= window.first_day, daily_counters.c.name.in_(SUMMED_COUNTERS))
        .group_by(daily_counters.c.name)
    )


def _paused_statement(ids: Sequence[int]) -> Select[Any]:
    """``SELECT 1, id`` of the paused triggers among ``ids``."""
    return select(literal(1), triggers.c.id).where(triggers.c.id.in_(ids), triggers.c.paused)


def _scanned(connection: Connection, window: Window, ids: list[int]) -> _Counted:
    """The figures counted from the raw tables (while the rollups are backfilled; and the tests' brute force)."""
    created = _executions_created(connection, window.start)
    return _Counted(
        {status.value: created.get(status, (0, 0))[0] for status in ExecutionStatus},
        sum(replays for _, replays in created.values()),
        connection.execute(status_count_statement([ExecutionStatus.FAILED_RETRYABLE])).scalar_one(),
        connection.execute(status_count_statement([ExecutionStatus.FAILED])).scalar_one(),
        connection.execute(attempts_failed_statement(window.start)).scalar_one(),
        connection.execute(retries_statement(window.start)).scalar_one(),
        events_since(connection, ids, window.today),
        {name: int(n) for n, name in connection.execute(_counters_statement(window))},
        {trigger_id for _, trigger_id in connection.execute(_paused_statement(ids))},
    )


def _running_since(start: datetime) -> Select[Any]:
    """``SELECT count(*)`` of running executions created since ``start``: rows leased now, a range of an index on
    status."""
    running = executions.c.status == ExecutionStatus.RUNNING
    return select(func.count()).where(running, executions.c.created_at >= start)


def _rolled(connection: Connection, window: Window, ids: list[int]) -> _Counted:
    """The figures from the rollups: whole UTC days, so no edge to read raw; ``unfinished`` split by running rows.

    One statement, one round trip: a ``UNION ALL`` of every part, each row ``(part, key, n)``.
    """
    days, today = reads.since_day(window.start), reads.since_day(window.today)
    parts = {
        "created": reads.keyed("created", days, "status"),
        "replays": reads.keyed("replays", days),
        "failing": reads.keyed("failing", reads.ALL, "status"),
        "failed_attempts": reads.keyed("failed_attempts", days),
        "retries": reads.keyed("retries", days),
        "events": reads.keyed("events", today, "trigger_id"),
        "running": _running_since(window.start).add_columns(literal("")),
        "counters": _counters_statement(window),
        "paused": _paused_statement(ids),
    }
    found = reads.parts(connection, parts)
    created = found["created"]
    running = found["running"].get("", 0)
    by_status = {status.value: created.get(status.value, 0) for status in ExecutionStatus}
    by_status[ExecutionStatus.PENDING] = created.get(rollups.UNFINISHED, 0) - running
    by_status[ExecutionStatus.RUNNING] = running
    failing = found["failing"]
    return _Counted(
        by_status,
        found["replays"].get("", 0),
        failing.get(ExecutionStatus.FAILED_RETRYABLE.value, 0),
        failing.get(ExecutionStatus.FAILED.value, 0),
        found["failed_attempts"].get("", 0),
        found["retries"].get("", 0),
        {int(key): n for key, n in found["events"].items()},
        found["counters"],
        {int(key) for key in found["paused"]},
    )


def summary(declared: Sequence[Trigger], window: Window) -> Callable[[Connection], dict[str, Any]]:
    """A read job: the overview of ``window`` with per-trigger volume today and warnings (the ``*_MEANS``)."""

    def job(connection: Connection) -> dict[str, Any]:
        ids = [t.id for t in declared]
        counted = _rolled(connection, window, ids) if rollups.ready(connection) else _scanned(connection, window, ids)
        return _laid_out(declared, window, counted)

    return job


def exact_summary(declared: Sequence[Trigger], window: Window) -> Callable[[Connection], dict[str, Any]]:
    """A read job: the summary counted from the raw tables, whatever the rollups say (what tests compare with)."""

    def job(connection: Connection) -> dict[str, Any]:
        return _laid_out(declared, window, _scanned(connection, window, [t.id for t in declared]))

    return job


def _laid_out(declared: Sequence[Trigger], window: Window, counted: _Counted) -> dict[str, Any]:
    """The summary's body: the figures, the day counters, per-trigger volume and the warnings."""
    counters = {name: counted.counters.get(name, 0) for name in SUMMED_COUNTERS}
    per_trigger: dict[str, dict[str, Any]] = {}
    warnings = ["dlq_growing"] if counted.dlq_size > DLQ_WARNING else []
    for trigger in sorted(declared, key=lambda t: t.name):
        count = counted.today.get(trigger.id, 0)
        watermark = trigger.config.limits.daily_watermark
        hit = watermark is not None and count >= watermark
        per_trigger[trigger.name] = {
            "count": count,
            "daily_watermark": watermark,
            "watermark_hit": hit,
            "paused": trigger.id in counted.paused,
        }
        if hit:
            warnings.append(f"watermark_hit:{trigger.name}")
    return {
        "days": window.days,
        "since": window.start.isoformat(),
        "total": sum(counted.by_status.values()),
        "by_status": counted.by_status,
        "failing_now": counted.dlq_size + counted.permanent,
        "dlq_size": counted.dlq_size,
        "permanent_failures": counted.permanent,
        "attempts_failed": counted.attempts_failed,
        "retries_observed": counted.retries,
        "replays": counted.replays,
        "idempotent_replays": counters["duplicates"],
        "key_conflicts": counters["key_conflicts"],
        "invalid_signatures": counters["invalid_signatures"],
        "triggers": per_trigger,
        "warnings": warnings,
    }


def _bucket(connection: Connection, column: Any, seconds: int) -> ColumnElement[Any]:
    """The bucket number of ``column``: whole ``seconds`` since the epoch, divided down, computed in SQL."""
    if connection.dialect.name == "sqlite":
        return cast(func.strftime("%s", column), BigInteger) // seconds  # integer division: '/' would be true division
    return cast(func.floor(extract("epoch", column) / seconds), BigInteger)


def _grouped(
    connection: Connection, inner: Select[Any] | CompoundSelect[Any], keyed: bool
) -> dict[int, dict[str, int]]:
    bucketed = inner.subquery("bucketed")
    columns = (bucketed.c.bucket, bucketed.c.key) if keyed else (bucketed.c.bucket,)
    found: dict[int, dict[str, int]] = {}
    for row in connection.execute(select(*columns, func.count()).group_by(*columns)).all():
        found.setdefault(int(row[0]), {})[str(row[1]) if keyed else "failed"] = row[-1]
    return found


Span = tuple[datetime, datetime, bool]  # start, end, and whether the end is in the span


def _raw_rows(connection: Connection, span: Span, seconds: int, by: Key, fingerprint: str | None) -> Select[Any]:
    """The bucket (and key) of each raw row in ``span``: the group's failed attempts, or finished executions."""
    start, end, closed = span
    if fingerprint is not None:
        finished = attempts.c.finished_at
        return select(_bucket(connection, finished, seconds).label("bucket")).where(
            attempts.c.fingerprint == fingerprint, finished >= start, finished <= end if closed else finished < end
        )
    finished = executions.c.finished_at
    key: Any = {"status": executions.c.status, "kind": executions.c.action_kind, "trigger": triggers.c.name}[by]
    rows = select(_bucket(connection, finished, seconds).label("bucket"), key.label("key")).where(
        executions.c.status.in_(FINISHED), finished >= start, finished <= end if closed else finished < end
    )
    if by == "trigger":
        rows = rows.join_from(executions, triggers, triggers.c.id == executions.c.trigger_id)
    return rows


def _scanned_series(
    connection: Connection, spans: Sequence[Span], seconds: int, by: Key, fingerprint: str | None
) -> dict[int, dict[str, int]]:
    """Counts per bucket from the raw rows in ``spans`` (a window's partial minutes at both ends: one statement,
    each span one index range)."""
    ranges = [_raw_rows(connection, span, seconds, by, fingerprint) for span in spans]
    return _grouped(connection, ranges[0] if len(ranges) == 1 else union_all(*ranges), keyed=fingerprint is None)


def _rolled_series(
    connection: Connection, whole: tuple[int, int], seconds: int, by: Key, fingerprint: str | None
) -> dict[int, dict[str, int]]:
    """Counts per bucket from the rollups over whole minutes; only grains that divide the bucket width, so every
    rollup bucket falls in one of the series' buckets."""
    pieces = reads.cover(*whole, [grain for grain in rollups.TIMED if seconds % grain == 0])
    names: dict[Any, str] | None = None  # by trigger: names by id
    fixed: str | None = None  # a group's series: every count is keyed ``failed``
    if fingerprint is not None:
        rows = reads.summed("failed_attempts", pieces, [], stat_rollups.c.fingerprint == fingerprint)
        fixed = "failed"
    else:
        column = {"status": "status", "kind": "kind", "trigger": "trigger_id"}[by]
        rows = reads.summed("finished", pieces, [column])  # every ``finished`` row has a FINISHED status
        if by == "trigger":
            names = {row.id: row.name for row in connection.execute(select(triggers.c.id, triggers.c.name))}
    found: dict[int, dict[str, int]] = {}
    for row in connection.execute(rows).all():  # all(): one fetchall, not a fetch per row
        key = fixed or (names[row[2]] if names is not None else row[2])
        counts = found.setdefault(row[1] // seconds, {})
        counts[key] = counts.get(key, 0) + row[-1]
    return found


def _merge(into: dict[int, dict[str, int]], found: dict[int, dict[str, int]]) -> None:
    for bucket, counts in found.items():
        mine = into.setdefault(bucket, {})
        for key, count in counts.items():
            mine[key] = mine.get(key, 0) + count


def timeseries(
    since: datetime, until: datetime, seconds: int, by: Key, fingerprint: str | None = None
) -> Callable[[Connection], dict[int, dict[str, int]]]:
    """A read job: counts per bucket number (``epoch // seconds``) and key, for rows in ``[since, until]``.

    Finished executions keyed by status, action kind or trigger name; with ``fingerprint``, that error group's
    failed attempts instead, keyed ``failed``. Whole minutes come from the rollups, the partial minute at each end
    from the raw rows; a bucket width that is not whole minutes cannot be summed from minutes, so such a series
    (at most MAX_BUCKETS buckets under a minute: about a day and a half of rows) is counted from the raw rows.
    """

    def job(connection: Connection) -> dict[int, dict[str, int]]:
        if seconds % rollups.MINUTE or not rollups.ready(connection):
            return _scanned_series(connection, [(since, until, True)], seconds, by, fingerprint)
        window = reads.split(since, until)
        edges: list[Span] = []
        if window.head is not None:
            edges.append((*window.head, window.whole is None))
        if window.tail is not None:
            edges.append((window.tail, until, True))
        found = _scanned_series(connection, edges, seconds, by, fingerprint) if edges else {}
        if window.whole is not None:
            _merge(found, _rolled_series(connection, window.whole, seconds, by, fingerprint))
        return found

    return job


def zero_filled(
    starts: Sequence[datetime], seconds: int, found: dict[int, dict[str, int]], keys: Sequence[str]
) -> list[dict[str, Any]]:
    """Every bucket of ``starts`` with a count for every key (zero when nothing was found)."""
    zeros = dict.fromkeys(keys, 0)
    buckets = []
    for start in starts:
        counts = found.get(int(start.timestamp()) // seconds)
        buckets.append({"start": start.isoformat(), "counts": zeros | counts if counts else zeros.copy()})
    return buckets
