"""Rollups: the counters behind every stats figure, kept in the transaction of the change they count.

Each metric of ``stat_rollups`` counts rows, keyed and bucketed as follows (the figures in ``observe.stats`` say
which they serve):

- ``events``: events stored, per trigger, by ``received_at`` per UTC day.
- ``created``: executions per trigger and status, by ``created_at`` per UTC day. Pending and running share one key,
  ``unfinished``: claims, sweeps and node deaths move rows between those two, and keeping them apart would put a
  rollup write on every claim. The running rows are few (leased now), so the summary counts them from the index.
- ``replays``: executions that replay another, per trigger, by ``created_at`` per day.
- ``finished``: executions in a finished status, per trigger, action kind and status, by ``finished_at`` per
  minute, five minutes, hour and day.
- ``failing``: executions failing now, per trigger, status and fingerprint, in one all-time bucket.
- ``failed_attempts``: failed attempts per trigger, kind and fingerprint, by ``finished_at`` per minute, five
  minutes, hour and day.
- ``retries``: attempts 2 and later per trigger, by ``finished_at`` per day.

What a row contributes is a pure function of the row (``add_execution``, ``add_attempt``, ``add_event``); a change
adds what the row contributes after it minus what it contributed before, a purge subtracts it. The live path, the
backfill and the property test share these definitions, so they cannot disagree. ``apply`` writes a batch's counts
in one multi-row upsert, sorted by key so concurrent transactions lock rows in the same order.

Rows that predate the rollups are counted by the backfill (``observe.backfill``); until it has passed them, the
live path leaves them alone (``live``) and the readers fall back to scanning (``ready``).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from redrive.db.many import run_of
from redrive.db.schema import attempts, events, executions, rollup_backfill, stat_rollups
from redrive.db.writer import WRITER_THREAD_INFO, before_commit
from redrive.states import FAILING, TERMINAL, ExecutionStatus

MINUTE, FIVE_MINUTES, HOUR, DAY, ALL_TIME = 60, 300, 3600, 86400, 0
# The grains of the metrics read over arbitrary windows: a window is read as whole days, hours, five-minute spans and
# minutes (the fewest rows); a series of 5-minute buckets (or 10, 15, 30) reads five-minute rows, not minutes.
TIMED = (MINUTE, FIVE_MINUTES, HOUR, DAY)
UNFINISHED = "unfinished"  # pending or running
SETTLED = TERMINAL | {ExecutionStatus.REPLAYED.value}  # the statuses an execution has once its attempts are over
FAILED_OUTCOMES = ("transient", "permanent")  # an attempt's outcome when it failed
SOURCES = ("executions", "events")  # what the backfill walks, by id
SHARDS = 8
KEY_COLUMNS = ("metric", "grain", "bucket", "trigger_id", "kind", "status", "fingerprint")
_ROW_COLUMNS = (*KEY_COLUMNS, "shard", "value")  # a row of the upsert
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)

Key = tuple[str, int, int, int, str, str, str]  # KEY_COLUMNS
Counts = Counter[Key]


@dataclass(frozen=True, slots=True)
class ExecutionFacts:
    """What the rollups know of an execution."""

    trigger_id: int
    kind: str
    status: str
    created_at: datetime
    finished_at: datetime | None
    fingerprint: str | None
    replay: bool


@dataclass(frozen=True, slots=True)
class AttemptFacts:
    """What the rollups know of an attempt."""

    trigger_id: int
    kind: str
    number: int
    finished_at: datetime
    outcome: str
    fingerprint: str | None


def bucket_of(moment: datetime, grain: int) -> int:
    """The start (seconds since the epoch) of the ``grain``-wide bucket holding ``moment``; 0 for all time."""
    if grain == ALL_TIME:
        return 0
    seconds = (moment - _EPOCH) // _SECOND
    return seconds - seconds % grain


def _timed(moment: datetime) -> list[tuple[int, int]]:
    """``(grain, bucket_of(moment, grain))`` for each of ``TIMED``, the moment's seconds computed once."""
    seconds = (moment - _EPOCH) // _SECOND
    return [(grain, seconds - seconds % grain) for grain in TIMED]


# The ``add_*`` functions are the definitions: each adds what one row contributes to ``counts`` (``sign=-1``: what
# removing it takes away), and a batch's rows add into one counter. A counter per row, merged one by one, cost a
# completion batch of 32 (about 100 counters) 355 us of the writer's CPU, against 116 us added into one.


def add_execution(counts: Counts, row: ExecutionFacts, sign: int = 1, status: str | None = None) -> None:
    """Add what ``row`` contributes as it is, or as it was with ``status`` instead of its own."""
    status = row.status if status is None else status
    trigger_id = row.trigger_id
    day = bucket_of(row.created_at, DAY)
    settled = status in SETTLED
    counts["created", DAY, day, trigger_id, "", status if settled else UNFINISHED, ""] += sign
    if row.replay:
        counts["replays", DAY, day, trigger_id, "", "", ""] += sign
    if settled and row.finished_at is not None:
        for grain, bucket in _timed(row.finished_at):
            counts["finished", grain, bucket, trigger_id, row.kind, status, ""] += sign
    if status in FAILING:
        counts["failing", ALL_TIME, 0, trigger_id, "", status, row.fingerprint or ""] += sign


def add_attempt(counts: Counts, attempt: AttemptFacts, sign: int = 1) -> None:
    """Add what ``attempt`` contributes."""
    at, trigger_id = attempt.finished_at, attempt.trigger_id
    if attempt.outcome in FAILED_OUTCOMES:
        fingerprint = attempt.fingerprint or ""
        for grain, bucket in _timed(at):
            counts["failed_attempts", grain, bucket, trigger_id, attempt.kind, "", fingerprint] += sign
    if attempt.number > 1:
        counts["retries", DAY, bucket_of(at, DAY), trigger_id, "", "", ""] += sign


def add_event(counts: Counts, trigger_id: int, received_at: datetime, sign: int = 1) -> None:
    """Add what an event contributes."""
    counts["events", DAY, bucket_of(received_at, DAY), trigger_id, "", "", ""] += sign


@cache
def _upsert(dialect: str) -> Any:
    insert = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(stat_rollups)
    return insert.on_conflict_do_update(
        index_elements=[*KEY_COLUMNS, "shard"], set_={"value": stat_rollups.c.value + insert.excluded.value}
    )


def _shard(connection: Connection) -> int:
    """This writer's shard: writers on other threads or processes mostly add to other rows of a hot bucket. The
    writer's threads of one process take consecutive shards (never the same one while there are fewer threads than
    shards); another process starts elsewhere."""
    thread = connection.info.get(WRITER_THREAD_INFO)
    if isinstance(thread, int):
        return (os.getpid() + thread) % SHARDS
    return hash((os.getpid(), threading.get_ident())) % SHARDS


def apply(connection: Connection, counts: Counts) -> None:
    """Add ``counts`` to the rollups in the open transaction.

    In a writer transaction they join the rest of the transaction's counts, written last (``writer.before_commit``):
    the hot rows' locks are then taken after every other lock the transaction takes, so two transactions of the
    writer threads or of other processes cannot deadlock over them. Elsewhere they are written at once.
    """
    pending = before_commit(connection, "rollups", Counter, _write)
    if pending is None:
        _write(connection, counts)
    else:
        pending.update(counts)


def _write(connection: Connection, counts: Counts) -> None:
    """One multi-row upsert, keys in order (two transactions lock the rows they share in the same order). On SQLite
    the rows go to the driver as tuples (``db.many``): SQLAlchemy's executemany of a dozen rows, nearly every writer
    transaction's, cost twice as much."""
    shard = _shard(connection)
    rows = [
        {**dict(zip(KEY_COLUMNS, key, strict=True)), "shard": shard, "value": value}
        for key, value in sorted(counts.items())
        if value
    ]
    run_of(connection, "rollups.upsert", _upsert(connection.dialect.name), rows, _ROW_COLUMNS)


# --- rows that predate the rollups --------------------------------------------------------------------------------

_counted: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()  # engines whose backfill is done


def _everything(row_id: int) -> bool:
    return True


def live(connection: Connection, source: str) -> Callable[[int], bool]:
    """Which rows of ``source`` (by id) the live path counts: all, once the backfill is done; until then, those the
    backfill does not count (above its watermark, or below where it has got to).

    On PostgreSQL the backfill's row is read ``FOR SHARE``, so a backfill batch waits for this transaction (and sees
    what it did) instead of counting a row this transaction changes.
    """
    if ready(connection):  # once done, remembered: the hot path reads nothing more
        return _everything
    query = select(rollup_backfill.c.watermark, rollup_backfill.c.next_id).where(rollup_backfill.c.source == source)
    row = connection.execute(query.with_for_update(read=True)).one_or_none()
    if row is None or row.next_id > row.watermark:
        return _everything
    watermark, next_id = row.watermark, row.next_id
    return lambda row_id: row_id > watermark or row_id < next_id


def ready(connection: Connection) -> bool:
    """True once every row is counted in the rollups (the backfill is done); remembered per engine."""
    if _counted.get(connection.engine):
        return True
    behind = connection.execute(
        select(rollup_backfill.c.source).where(rollup_backfill.c.next_id <= rollup_backfill.c.watermark).limit(1)
    ).first()
    if behind is None:
        _counted[connection.engine] = True
    return behind is None


def forget() -> None:
    """Stop trusting any engine's rollups until ``ready`` says so again (a rebuild has started). Only this process
    hears it: a rebuild is for a stopped service, or one running in this process (tests)."""
    _counted.clear()


# --- reading rows' facts --------------------------------------------------------------------------------------------

_EXECUTION_FACTS = (
    executions.c.id,
    executions.c.trigger_id,
    executions.c.action_kind,
    executions.c.status,
    executions.c.created_at,
    executions.c.finished_at,
    executions.c.fingerprint,
    executions.c.replay_of,
)


def execution_facts(row: Any) -> ExecutionFacts:
    """The facts of a row selected with ``_EXECUTION_FACTS``."""
    return ExecutionFacts(
        row.trigger_id,
        row.action_kind,
        row.status,
        row.created_at,
        row.finished_at,
        row.fingerprint,
        row.replay_of is not None,
    )


def executions_where(connection: Connection, *where: Any) -> dict[int, ExecutionFacts]:
    """The facts of the executions ``where`` selects, by id."""
    rows = connection.execute(select(*_EXECUTION_FACTS).where(*where))
    return {row.id: execution_facts(row) for row in rows}


def attempts_of(connection: Connection, *where: Any) -> list[AttemptFacts]:
    """The facts of the attempts of the executions ``where`` selects."""
    rows = connection.execute(
        select(
            executions.c.trigger_id,
            executions.c.action_kind,
            attempts.c.number,
            attempts.c.finished_at,
            attempts.c.outcome,
            attempts.c.fingerprint,
        )
        .join(executions, executions.c.id == attempts.c.execution_id)
        .where(*where)
    )
    return [AttemptFacts(*row) for row in rows]


# --- what the live path calls ---------------------------------------------------------------------------------------


def stored(connection: Connection, new: Sequence[tuple[int, str, datetime, bool]]) -> None:
    """Count events just stored at ingest, ``(trigger id, action kind, received at, filtered)`` each; an unfiltered
    one made a pending execution. New rows are above every backfill watermark: always counted here."""
    counts: Counts = Counter()
    for trigger_id, kind, at, filtered in new:
        add_event(counts, trigger_id, at)
        if not filtered:
            add_execution(counts, ExecutionFacts(trigger_id, kind, "pending", at, None, None, False))
    apply(connection, counts)


def replayed(connection: Connection, original_id: int, was: str, replay: ExecutionFacts) -> None:
    """Count a replay: its original moved from ``was`` to ``replayed`` (in this transaction), ``replay`` created."""
    counts: Counts = Counter()
    add_execution(counts, replay)
    if live(connection, "executions")(original_id):
        after = executions_where(connection, executions.c.id == original_id)[original_id]
        add_execution(counts, after)
        add_execution(counts, after, -1, status=was)
    apply(connection, counts)


def completed(connection: Connection, changes: Sequence[tuple[int, ExecutionFacts, AttemptFacts]]) -> None:
    """Count attempts just recorded, ``(execution id, the execution after, the attempt)`` each; the execution was
    running before."""
    counted = live(connection, "executions")
    counts: Counts = Counter()
    for execution_id, after, attempt in changes:
        if counted(execution_id):
            add_execution(counts, after)
            add_execution(counts, after, -1, status=ExecutionStatus.RUNNING.value)
            add_attempt(counts, attempt)
    apply(connection, counts)


def purged_executions(connection: Connection, ids: Sequence[int]) -> None:
    """Subtract executions about to be deleted, and their attempts, in the deleting transaction."""
    counted = live(connection, "executions")
    mine = [i for i in ids if counted(i)]
    if mine:
        apply(connection, executions_counted(connection, -1, executions.c.id.in_(mine)))


def purged_events(connection: Connection, ids: Sequence[int]) -> None:
    """Subtract events about to be deleted, in the deleting transaction."""
    counted = live(connection, "events")
    mine = [i for i in ids if counted(i)]
    if mine:
        apply(connection, events_counted(connection, -1, events.c.id.in_(mine)))


def executions_counted(connection: Connection, sign: int, *where: Any) -> Counts:
    """What the executions ``where`` selects and their attempts contribute (the backfill's ``sign`` 1, a purge's -1)."""
    counts: Counts = Counter()
    for row in executions_where(connection, *where).values():
        add_execution(counts, row, sign)
    for attempt in attempts_of(connection, *where):
        add_attempt(counts, attempt, sign)
    return counts


def events_counted(connection: Connection, sign: int, *where: Any) -> Counts:
    """What the events ``where`` selects contribute."""
    counts: Counts = Counter()
    for trigger_id, at in connection.execute(select(events.c.trigger_id, events.c.received_at).where(*where)):
        add_event(counts, trigger_id, at, sign)
    return counts
