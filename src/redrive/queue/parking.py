"""Parking: an ordered execution made while its key is held waits out of the claim's way until its turn comes.

An ordered trigger's executions stay ``pending`` behind their key's head, and a claim that had to step over them
(the head check of ``ordering.ordering_head``, once per waiting row) slowed with the backlog: 20,000 rows behind 20
busy keys cost every claim a walk of 20,000 rows. So a row made while its key has a *holder* is parked
(``key_waiting``), and every claim reads the range ``status = 'pending' AND key_waiting = false`` of its index, which
never holds a parked row. A key's holder is an earlier row of the key that is pending or running, or, under
``on_dead_letter: block``, dead (failed_retryable or failed).

- ``park_in`` runs after rows are made (ingest, replay, bulk replay): a row with a holder is parked. On SQLite the
  ingest's INSERT decides it for each row it makes (``parks_sql``): one write per row, not two, and no read first.
- ``promote_in`` runs in the transaction that removes a holder (a completion to a terminal status that frees the key,
  the replay of a dead head, a retention purge): the oldest parked row of each key left without a holder is unparked
  and due at ``max(run_at, now)``.
- Liveness on PostgreSQL: an ingest (or a replay) that parks behind a running head and that head's completion
  could each miss the other (each reads a snapshot without the other's uncommitted change), leaving the row parked
  with no holder. So both take the key's advisory lock (``lock_keys``, ``ordering.key_lock``) before they read:
  whichever comes second waits for the other's commit and sees it. (A repair on the maintenance pass alone was tried
  first: with keys busy on two processes, strands were frequent and each waited a sweep interval; the ordering
  cluster test timed out.) ``Repair``, the leader's maintenance chore, still reads a bounded window of parked rows
  per pass and promotes the oldest parked row of any key with no holder: what purges without the config, or a config
  change (``block`` to ``continue``, ordering removed), left. Its first pass reads every parked row and unparks the
  rows of triggers that no longer order.

Parking is an optimisation of the claim, not its guard: the head check stays in the claim, so a row unparked too
early (by a race, or a config change) still never runs out of its key's order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Exists,
    FromClause,
    and_,
    bindparam,
    case,
    false,
    func,
    literal_column,
    or_,
    select,
    text,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from redrive.db.hints import unindexed
from redrive.db.lists import in_list, one_of
from redrive.db.many import rows_of
from redrive.db.schema import executions
from redrive.db.writer import before_commit
from redrive.states import ExecutionStatus

PENDING = ExecutionStatus.PENDING.value
RUNNING = ExecutionStatus.RUNNING.value
DEAD = (ExecutionStatus.FAILED_RETRYABLE.value, ExecutionStatus.FAILED.value)
WINDOW = 500  # parked rows the repair reads per pass


def probe(table: FromClause, *where: ColumnElement[bool]) -> Exists:
    """``EXISTS (SELECT 1 FROM table WHERE ...)``, answered from an index alone.

    SQLAlchemy's ``exists().where(...)`` renders ``SELECT *``, and for that SQLite reads the table's row behind each
    index entry it finds (its plan says ``USING INDEX``, not ``USING COVERING INDEX``): a second B-tree search per
    probe, and the ordered claim, parking and promotion probe ix_executions_ordering several times per row.
    """
    return select(literal_column("1")).select_from(table).where(*where).exists()


def in_ordering_index(row: FromClause) -> ColumnElement[bool]:
    """``row`` is not succeeded, in the words of ix_executions_ordering's own test (``schema.ORDERING_LIVE``).

    The index leaves succeeded rows out (they never hold a key). A planner uses a partial index only for a query
    whose WHERE implies the index's. SQLite looks for each of the index's terms among the query's (its documented
    rule for partial indexes), so without this term the index goes unused (``test_parking_plan``). PostgreSQL's
    generic plans, which a statement the driver prepared gets after five calls, cannot prove the test from a status
    bound as a parameter: the promotion's then walked the primary key (the same test). A literal term serves both.
    No search looks for a succeeded row, so the term changes no answer.
    """
    return row.c.status != literal_column(f"'{ExecutionStatus.SUCCEEDED.value}'")


def same_key(other: FromClause, row: FromClause) -> ColumnElement[bool]:
    """``other`` is a row of ``row``'s key (the same trigger and ordering key) that may hold it (not succeeded): a
    prefix of ix_executions_ordering, with the index's own status test (``in_ordering_index``)."""
    return and_(
        other.c.trigger_id == row.c.trigger_id,
        other.c.ordering_key == row.c.ordering_key,
        in_ordering_index(other),
    )


EITHER = and_(executions.c.key_waiting.in_([False, True]), executions.c.dest_waiting.in_([False, True]))
"""Parked or laned or not: with ``status = ...`` it keeps a ``run_at`` bound inside the index ranges of
ix_executions_due."""


def oldest_due(now: datetime, *where: ColumnElement[bool]) -> Any:
    """The earliest ``run_at`` of the pending rows due at ``now`` (narrowed by ``where``), parked, laned or not.

    Three reads of one row each, the first of the free, the laned and the parked range of ix_executions_due (a
    parked row is never laned): min() over ``status = 'pending'`` alone would read every pending row,
    ``key_waiting`` and ``dest_waiting`` standing before ``run_at``.
    """
    firsts = [
        select(func.min(executions.c.run_at).label("run_at")).where(
            executions.c.status == PENDING,
            executions.c.key_waiting == waiting,
            executions.c.dest_waiting == laned,
            executions.c.run_at <= now,
            *where,
        )
        for waiting, laned in ((false(), false()), (false(), true()), (true(), false()))
    ]
    ranges = union_all(*firsts).subquery()
    return select(func.min(ranges.c.run_at))


# The statements are built once, with bound parameters (``_statements``): building one per ingest or completion
# batch (an alias, four EXISTS and their clause objects) cost about as much CPU as running it. Their lists of ids are
# bound as one parameter each (``db.lists``), so their text never changes with a batch's size.
_IDS = "p_ids"  # the rows made (park) or freed (promote)
_BLOCKING = "p_blocking"  # the triggers whose dead rows hold their key
_NOW = "p_now"


def _blocks(row: FromClause, blocking: bool | None) -> ColumnElement[bool]:
    """Whether a dead row holds ``row``'s key: its trigger is among ``p_blocking`` (None: every trigger's does)."""
    if blocking is None:
        return true()
    return in_list(row.c.trigger_id, _BLOCKING)


def _parks_behind(holder: FromClause, key: ColumnElement[bool], blocks: ColumnElement[bool]) -> ColumnElement[bool]:
    """A new row parks: ``holder`` (rows of its ``key``) has one pending or running, or, where ``blocks`` (its
    trigger is under ``block``), one dead and not parked. Two probes of ix_executions_ordering."""
    in_flight = probe(holder, key, one_of(holder.c.status, (PENDING, RUNNING)))
    dead = probe(holder, key, one_of(holder.c.status, DEAD), holder.c.key_waiting == false())
    return or_(in_flight, and_(blocks, dead))


@cache
def _park() -> Any:
    """Park each of the new rows ``p_ids`` whose key has a holder before it: one statement for a batch.

    Earlier rows only: of two rows of one key made in one batch, the first leads and the second parks behind it.
    A parked earlier row counts too (a key that waits stays in order, the newcomer goes to its end). The rows are
    found by id: the status guard is ``unindexed`` (``redrive.db.hints``), or SQLite reads the whole backlog for it.
    """
    earlier = executions.alias("earlier")
    before = and_(same_key(earlier, executions), earlier.c.id < executions.c.id)
    return (
        update(executions)
        .where(
            in_list(executions.c.id, _IDS),
            executions.c.ordering_key.is_not(None),
            unindexed(executions.c.status) == PENDING,
            _parks_behind(earlier, before, _blocks(executions, True)),
        )
        .values(key_waiting=True)
    )


def park_in(connection: Connection, ids: Sequence[int], blocking: Sequence[int]) -> None:
    """Park those of the new rows ``ids`` whose key has a holder; ``blocking``: the triggers under ``block``."""
    connection.execute(_park(), {_IDS: list(ids), _BLOCKING: list(blocking)})


@cache
def parks_sql(trigger: str, key: str, blocks: str) -> str:
    """SQLite: ``_park``'s test of a holder as SQL text, for a row not stored yet whose trigger id, ordering key and
    flag (1: its trigger is under ``block``) are the columns ``trigger``, ``key`` and ``blocks`` of the statement
    that makes it; every value written in, so the text binds nothing.

    The ingest's INSERT reads it for each row it makes (``ingest.store``), so the row is made parked, written once,
    where PostgreSQL parks it by an UPDATE after the insert, under its key's lock. Only where the writer
    transaction is the only one (SQLite): its later jobs can only take holders away, never add one before these
    rows (what it makes later has higher ids), and a holder that goes promotes what parked behind it
    (``statements._promote_next`` reads these rows in the same transaction).
    """
    holder = executions.alias("holder")
    same = and_(
        holder.c.trigger_id == literal_column(trigger),
        holder.c.ordering_key == literal_column(key),
        in_ordering_index(holder),
    )
    test = _parks_behind(holder, same, literal_column(blocks) == 1)
    return str(test.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))


def _held(row: FromClause, blocking: bool | None, gone: bool) -> ColumnElement[bool]:
    """Whether ``row``'s key has a holder: an unparked pending row, a running row or (under block) a dead one.

    Each test is one range of ix_executions_ordering; with ``gone``, the rows ``p_ids`` are about to be deleted
    (not holders).
    """
    holder = executions.alias("holder")
    key = [same_key(holder, row)]
    if gone:
        key.append(~in_list(holder.c.id, "p_gone"))
    pending = probe(holder, *key, holder.c.status == PENDING, holder.c.key_waiting == false())
    running = probe(holder, *key, holder.c.status == RUNNING)
    dead = probe(holder, *key, one_of(holder.c.status, DEAD), holder.c.key_waiting == false())
    return or_(pending, running, and_(_blocks(row, blocking), dead))


@cache
def _promote(every_trigger_blocks: bool, gone: bool) -> Any:
    """Unpark the oldest parked row of each key of the rows ``p_ids`` that has no holder left; one statement.

    The promoted row is due at ``max(run_at, p_now)``: it queues behind what is due already instead of jumping the
    whole queue with the time it was accepted. The rows are found by id: the guards are ``unindexed``
    (``redrive.db.hints``), or SQLite reads every parked row for them.
    """
    row = executions.alias("freed")
    parked = executions.alias("parked")
    oldest = (
        select(parked.c.id)
        .where(same_key(parked, row), parked.c.status == PENDING, parked.c.key_waiting == true())
        .order_by(parked.c.id)
        .limit(1)
        .scalar_subquery()
    )
    keys = select(oldest).where(
        in_list(row.c.id, _IDS),
        row.c.ordering_key.is_not(None),
        ~_held(row, None if every_trigger_blocks else True, gone),
    )
    now = bindparam(_NOW, type_=executions.c.run_at.type)
    return (
        update(executions)
        .where(
            executions.c.id.in_(keys),
            unindexed(executions.c.status) == PENDING,
            unindexed(executions.c.key_waiting) == true(),
        )
        .values(
            key_waiting=False, run_at=case((executions.c.run_at < now, now), else_=executions.c.run_at), updated_at=now
        )
        .returning(executions.c.id)
    )


_LOCK_KEYS = text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS u(k) ORDER BY k")


def lock_keys(connection: Connection, keys: Iterable[tuple[int, str]]) -> None:
    """On PostgreSQL, take the keys' advisory locks (``ordering.key_lock``, sorted: no cycle) until commit.

    Parking and promotion of one key take it, so an ingest that parks and a completion that promotes are serialised:
    whichever comes second reads the other's committed change (a fresh statement snapshot after the lock).
    """
    if connection.dialect.name != "postgresql":
        return
    from redrive.queue.ordering import key_lock  # ordering imports this module

    locks = sorted({key_lock(trigger_id, key) for trigger_id, key in keys})
    if locks:
        connection.execute(_LOCK_KEYS, {"keys": locks})


PARK, PROMOTE, SETTLE = 0, 1, 2  # the order of ``under_keys`` steps in one transaction


@dataclass(slots=True)
class _KeyWork:
    """A writer transaction's steps that need ordering keys' locks, run at its end under every key's lock at once."""

    keys: set[tuple[int, str]] = field(default_factory=set)
    steps: list[tuple[int, Callable[[Connection], object]]] = field(default_factory=list)


def _run(connection: Connection, work: _KeyWork) -> None:
    lock_keys(connection, work.keys)
    for _, step in sorted(work.steps, key=lambda ranked: ranked[0]):
        step(connection)


def under_keys(
    connection: Connection, keys: Iterable[tuple[int, str]], step: Callable[[Connection], object], rank: int
) -> None:
    """Run ``step`` under the advisory locks of ``keys`` (``lock_keys``).

    In a writer transaction that is at its end (``writer.LAST_WRITES``): every key the transaction parks, frees or
    claims is locked at once, in key order, after every row lock its jobs took, and the steps run in ``rank`` order
    (``PARK``, then ``PROMOTE``: a promotion unparks what a park left without a holder; then ``SETTLE``, the
    claims' check). Elsewhere, at once.
    """
    work = before_commit(connection, "ordering keys", _KeyWork, _run)
    if work is None:
        _run(connection, _KeyWork(set(keys), [(rank, step)]))
        return
    work.keys.update(keys)
    work.steps.append((rank, step))


def park_under_keys(
    connection: Connection, keys: Iterable[tuple[int, str]], ids: Sequence[int], blocking: Sequence[int]
) -> None:
    """``park_in`` the new rows ``ids`` under their ``keys``' locks (``under_keys``)."""
    under_keys(connection, keys, lambda c: park_in(c, ids, blocking), PARK)


def promote_under_keys(
    connection: Connection,
    keys: Iterable[tuple[int, str]],
    freed: Sequence[int],
    blocking: Sequence[int] | None,
    now: datetime,
) -> None:
    """``promote_in`` the keys of the rows ``freed`` under their locks (``under_keys``)."""
    under_keys(connection, keys, lambda c: promote_in(c, freed, blocking, now), PROMOTE)


def promote_in(
    connection: Connection, freed: Sequence[int], blocking: Sequence[int] | None, now: datetime, *, gone: bool = False
) -> list[int]:
    """Unpark the oldest parked row of each key of the rows ``freed`` that has no holder left; the promoted ids.

    ``blocking`` are the triggers whose dead rows hold their key (None: every trigger's, the careful choice where
    the config is not at hand: a key it leaves parked is the repair's). With ``gone``, the ``freed`` rows are about
    to be deleted and do not hold their key.
    """
    if not freed:
        return []
    params: dict[str, Any] = {_IDS: list(freed), _NOW: now, _BLOCKING: list(blocking or ())}
    if gone:
        params["p_gone"] = list(freed)
    every_trigger_blocks = blocking is None
    statement = _promote(every_trigger_blocks, gone)
    name = f"parking.promote.{every_trigger_blocks}.{gone}"  # one compiled text per statement (``db.many``)
    return [row[0] for row in rows_of(connection, name, statement, params)]


@dataclass(frozen=True, slots=True)
class Window:
    """Where the repair resumes: after the parked row (run_at, id) it read last; None from the start."""

    after: tuple[datetime, int] | None = None


def repair(window: Window, blocking: Sequence[int], now: datetime, size: int = WINDOW) -> Callable[[Connection], Any]:
    """A writer job: promote stranded keys among the next ``size`` parked rows; returns (promoted, next window).

    The window is a range of ix_executions_due (pending, parked, by run_at); the next one starts after it, and
    wraps to the start once a window comes back short.
    """

    def job(connection: Connection) -> tuple[list[int], Window, bool]:
        query = (
            select(executions.c.id, executions.c.run_at)
            .where(
                executions.c.status == PENDING, executions.c.key_waiting == true(), executions.c.dest_waiting == false()
            )
            .order_by(executions.c.run_at, executions.c.id)
            .limit(size)
        )
        if window.after is not None:
            at, last = window.after
            query = query.where(or_(executions.c.run_at > at, and_(executions.c.run_at == at, executions.c.id > last)))
        rows = connection.execute(query).all()
        promoted = promote_in(connection, [r.id for r in rows], blocking, now)
        wrapped = len(rows) < size
        return promoted, Window() if wrapped else Window((rows[-1].run_at, rows[-1].id)), wrapped

    return job


def release(ordered: Sequence[int], now: datetime) -> Callable[[Connection], list[int]]:
    """A writer job: unpark every parked row of a trigger that no longer orders (not in ``ordered``); their ids."""

    def job(connection: Connection) -> list[int]:
        statement = (
            update(executions)
            .where(
                executions.c.status == PENDING,
                executions.c.key_waiting == true(),
                executions.c.dest_waiting == false(),  # a parked row is never laned: this keeps the index range
                executions.c.trigger_id.not_in(list(ordered)),
            )
            .values(
                key_waiting=False,
                run_at=case((executions.c.run_at < now, now), else_=executions.c.run_at),
                updated_at=now,
            )
            .returning(executions.c.id)
        )
        return list(connection.execute(statement).scalars())

    return job


class Repair:
    """The maintenance chore: one window of parked rows per pass. The first pass (at start, after any config
    change) unparks the rows of triggers that no longer order, then reads every parked row."""

    def __init__(
        self,
        write: Callable[[Callable[[Connection], Any]], Awaitable[Any]],
        ordered: Sequence[int],
        blocking: Sequence[int],
        clock: Callable[[], datetime],
        wake: Callable[[], None],
        size: int = WINDOW,
    ) -> None:
        self._write = write
        self._ordered = list(ordered)
        self._blocking = list(blocking)
        self._clock = clock
        self._wake = wake
        self._size = size
        self._window = Window()
        self._swept_once = False

    async def run(self) -> None:
        """One pass (the maintenance chore)."""
        await self.promote_stranded()

    async def promote_stranded(self) -> list[int]:
        """Promote stranded keys in the next window (all of them on the first pass); the promoted ids."""
        promoted: list[int] = []
        if not self._swept_once:
            promoted += await self._write(release(self._ordered, self._clock()))
        while True:
            found, self._window, wrapped = await self._write(
                repair(self._window, self._blocking, self._clock(), self._size)
            )
            promoted += found
            if wrapped or self._swept_once:
                break
        self._swept_once = True
        if promoted:
            self._wake()
        return promoted
