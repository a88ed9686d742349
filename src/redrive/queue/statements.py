"""Every statement the queue runs: claim, renew, complete, release, sweep. Each function returns a writer job.

The executions table is the queue. A claim leases a batch of due rows under a fresh token; every later change to a
running row is fenced by that token, so a worker whose lease expired (and whose row was swept and claimed again)
changes nothing. On PostgreSQL the claim skips rows other workers hold (``FOR UPDATE SKIP LOCKED``); on SQLite the
single writer serialises claims and the clause compiles to nothing. Executions whose destination is restricted (its
breaker open or probing, a limit, a ramped drain, a ``Retry-After``) are claimed within what their destination
allows now (``redrive.destinations.store.plan_claim``, under the destination's row lock), or held; a completion
counts its outcome at its destination, where the breaker decides. A restricted destination with a backlog of due
rows is laned (``redrive.destinations.store.lane``): its rows leave the range the free claim reads, so a long outage's
backlog costs the other destinations' claims nothing, and the destination is claimed through its own range.

Ordered triggers (``ordering:``) add one condition, ``ordering.ordering_head``: a row with an ordering key is due
only when it is its key's head, no earlier row of the key pending or running (nor, under ``on_dead_letter: block``,
dead), and no row of the key running at all. A head waiting for its retry is pending with a future ``run_at``, so it
holds back its own key and nothing else. When no declared trigger is ordered the condition is left out entirely: the
unordered claim is the very statement it always was. On PostgreSQL the head check reads a snapshot, and two claims
whose snapshots straddle an ingest commit (a lower id of the key committed late) could each see a different head; so
after leasing keyed rows a claim takes a transaction-scoped advisory lock per key (at the transaction's end, with its
other keys, in key order: ``db.writer.LAST_WRITES``) and, in a fresh snapshot, gives back any row whose key another
execution is now running (``_settle_keys``). Claims of one key are thereby serialised from the lock to the commit,
and each sees the previous one's lease.

The rows waiting behind a key's holder are parked (``redrive.queue.parking``): every claim reads only the range
``status = 'pending' AND key_waiting = false`` of its index, so a backlog behind busy keys costs a claim nothing. A
completion that frees its key promotes the key's next row in the same transaction (one statement per batch, at the
transaction's end under the keys' locks: ``db.writer.LAST_WRITES`` gives the writer's lock order).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Update,
    bindparam,
    false,
    func,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.engine import Connection

from redrive.db.engine import json_dumps
from redrive.db.hints import unindexed
from redrive.db.lists import in_list
from redrive.db.many import many, named, rows_of, scalar_of
from redrive.db.schema import attempts, destinations, events, executions, triggers
from redrive.db.writer import BatchJob
from redrive.destinations.breaker import Observed, Policy
from redrive.destinations.store import ClaimPlan, Outcome, PolicyOf, plan_claim, record_outcomes, settle
from redrive.extensions import BreakerTransition
from redrive.failures.error_groups import record_failure
from redrive.observe import rollups
from redrive.observe.rollups import AttemptFacts, ExecutionFacts
from redrive.queue import parking
from redrive.queue.ordering import ordering_head
from redrive.states import TERMINAL, ExecutionStatus


@dataclass(frozen=True, slots=True)
class Claimed:
    """A leased execution with the event it runs for."""

    id: int
    event_id: int
    trigger_id: int
    attempts: int
    lease_token: str
    payload: Any
    headers: dict[str, str]
    idempotency_key: str | None
    received_at: datetime
    destination: str | None = None
    probe: bool = False  # leased as a half-open breaker's probe: its failure is charged (destinations.holding)


@dataclass(frozen=True, slots=True)
class Claim:
    """What a claim found: the leased rows and, when it found fewer than asked, when the next row falls due; the
    breaker transitions it made (a cool-down over: half-open); and whether any destination was restricted."""

    executions: list[Claimed]
    next_run_at: datetime | None
    transitions: list[BreakerTransition] = field(default_factory=list)
    restricted: bool = True  # some destination was restricted: the next claim plans first (``claim``'s ``plan_first``)


@dataclass(frozen=True, slots=True)
class Completion:
    """The fenced result of one attempt."""

    execution_id: int
    lease_token: str
    status: str
    run_at: datetime | None
    started_at: datetime
    finished_at: datetime
    outcome: str  # succeeded | transient | permanent
    error_category: str | None
    error_code: str | None
    message: str | None
    detail: dict[str, Any]
    excerpt: str | None
    pause_trigger_id: int | None = None
    trigger_id: int | None = None
    action_kind: str | None = None
    fingerprint: str | None = None  # set on failures: the error group this attempt counts in
    title: str | None = None  # the failure message, normalised: the group's title
    request: dict[str, Any] | None = None  # what the attempt sent, redacted and capped (Trigger.render)
    destination: str | None = None
    observed: Observed | None = None  # set when the destination's breaker or limits count this attempt
    policy: Policy | None = None  # the destination's policy, as the trigger it ran for sees it
    charged: bool = True  # False: held by an open breaker, not charged (``redrive.destinations.holding``)
    probe: bool = False  # the attempt was a half-open breaker's probe (``Claimed.probe``)
    ordering_blocks: bool = False  # its trigger orders with ``on_dead_letter: block``: a dead end holds the key


def held_by_breaker(result: Completion) -> Completion:
    """The completion of an attempt held by an open breaker: back to pending at its place, uncharged, no backoff."""
    return replace(result, status=ExecutionStatus.PENDING, run_at=None, charged=False)


@dataclass(frozen=True, slots=True)
class _ClaimStatements:
    lease: Any  # lease the due rows: UPDATE ... WHERE id IN (due rows, locked, skipping locked ones) RETURNING
    lease_destination: Any  # the same, for the due rows of one restricted destination (``c_destination``)
    lease_unplanned: Any  # SQLite: ``lease`` without a plan, every restricted destination left out, and whether one is
    lease_unplanned_events: Any  # PostgreSQL: ``lease_unplanned``, each row with its event's (``_event_columns``)
    events: Any  # the leased rows' events
    next_due: Any  # when the next pending row of a runnable trigger falls due


def _destination_unrestricted() -> ColumnElement[bool]:
    """dest: rows whose destination a claim may take freely: none, or not among the restricted ones (held by an
    open breaker, probing, limited, ramping or paced), which ``c_restricted`` lists and claims take one by one."""
    return or_(executions.c.destination.is_(None), ~in_list(executions.c.destination, "c_restricted"))


def _restricted_now() -> Select[Any]:
    """The names of the destinations restricted now, read in the statement that uses them (from
    ix_destinations_restricted), for a claim that has not planned: ``claim``'s ``plan_first``."""
    return select(destinations.c.name).where(destinations.c.restricted.is_(True))


def _destination_unrestricted_now() -> ColumnElement[bool]:
    """dest: rows whose destination is not among ``_restricted_now``."""
    return or_(executions.c.destination.is_(None), executions.c.destination.not_in(_restricted_now()))


def _destination_is() -> ColumnElement[bool]:
    """dest: rows of the one restricted destination ``c_destination`` (served by ix_executions_destination)."""
    return executions.c.destination == bindparam("c_destination", type_=executions.c.destination.type)


def _event_columns() -> tuple[Any, ...]:
    """What a claimed execution carries of its event (``Claimed``)."""
    return (events.c.payload, events.c.headers, events.c.idempotency_key, events.c.received_at)


@cache
def _claim_statements(ordered: bool = False) -> _ClaimStatements:
    """The claim's statements; ``ordered`` adds ``ordering.ordering_head`` (only when some declared trigger orders)."""
    # Built once with bound parameters: building these statements cost more than running them.
    now = bindparam("c_now", type_=executions.c.run_at.type)
    runnable = select(triggers.c.id).where(in_list(triggers.c.id, "c_trigger_ids"), triggers.c.paused == false())

    def lease(*conditions: ColumnElement[bool], returning: tuple[Any, ...] = ()) -> Any:
        # A materialised CTE: the planner may not re-run or flatten the locking subquery, so LIMIT holds.
        due = (
            select(executions.c.id)
            .where(
                executions.c.status == ExecutionStatus.PENDING,
                executions.c.key_waiting == false(),  # a literal: the range never holds a parked row
                *conditions,
                executions.c.run_at <= now,
                executions.c.trigger_id.in_(runnable),
                ordering_head(ordered),
            )
            .order_by(executions.c.run_at)
            .limit(bindparam("c_limit", type_=Integer()))
            .with_for_update(skip_locked=True, of=executions)
            .cte("due")
            .prefix_with("MATERIALIZED")
        )
        # No status guard here: ``due`` locked its rows (PostgreSQL re-checks a locked row's conditions on its
        # newest version) and the single writer serialises SQLite. A guard is a second way into the table: with
        # statistics gathered while the queue was nearly empty, PostgreSQL chose it and compared every pending row
        # with every locked one (50 x the backlog per claim) instead of looking the locked rows up by id.
        return (
            update(executions)
            .where(executions.c.id == due.c.id)
            .values(
                status=ExecutionStatus.RUNNING,
                dest_waiting=False,  # a lane holds pending rows only: its release never waits on a running row
                lease_token=bindparam("c_token", type_=executions.c.lease_token.type),
                lease_expires_at=bindparam("c_expires", type_=executions.c.lease_expires_at.type),
                updated_at=now,
            )
            .returning(
                executions.c.id,
                executions.c.event_id,
                executions.c.trigger_id,
                executions.c.attempts,
                executions.c.destination,
                executions.c.ordering_key,
                *returning,
            )
        )

    event_rows = select(events.c.id, *_event_columns()).where(in_list(events.c.id, "c_event_ids"))
    unplanned = lease(
        executions.c.dest_waiting == false(),
        _destination_unrestricted_now(),
        returning=(_restricted_now().exists().label("restricted"),),
    )
    # PostgreSQL: the usual claim's events read in the same statement, one round trip fewer per claim. (SQLite
    # takes no UPDATE in a WITH; its read is a call into the library, not a round trip.)
    leased = unplanned.cte("leased")
    unplanned_events = select(leased, *_event_columns()).join_from(leased, events, events.c.id == leased.c.event_id)
    # ORDER BY ... LIMIT 1 rather than min(): PostgreSQL reads min() from an index only on a single table, and the
    # runnable-trigger test joins triggers, so min() read every pending row; this reads the range's first row.
    next_due = (
        select(executions.c.run_at)
        .where(
            executions.c.status == ExecutionStatus.PENDING,
            executions.c.key_waiting == false(),
            executions.c.dest_waiting == false(),
            executions.c.trigger_id.in_(runnable),
            ordering_head(ordered),
            _destination_unrestricted(),
        )
        .order_by(executions.c.run_at)
        .limit(1)
    )
    return _ClaimStatements(
        # The free range never holds a laned row (``dest_waiting``, a literal); a destination's range holds both.
        lease=lease(executions.c.dest_waiting == false(), _destination_unrestricted()),
        lease_destination=lease(_destination_is()),
        lease_unplanned=unplanned,
        lease_unplanned_events=unplanned_events,
        events=event_rows,
        next_due=next_due,
    )


def claim(
    trigger_ids: Sequence[int],
    limit: int,
    lease_seconds: float,
    now: datetime,
    *,
    owner: str = "",
    ordered: bool = False,
    blocking: Sequence[int] = (),
    policy_of: PolicyOf | None = None,
    plan_first: bool = True,
) -> Callable[[Connection], Claim]:
    """Lease up to ``limit`` due pending executions of runnable triggers, oldest ``run_at`` first.

    The lease token starts with ``owner`` (the claiming node's id), so a dead node's leases can be found. ``ordered``
    (some declared trigger orders by key) leases only the heads of keys; ``blocking`` are the ordered triggers whose
    dead-lettered head holds its key (``on_dead_letter: block``). Restricted destinations
    (``redrive.destinations.store.plan_claim``, with ``policy_of`` saying their policies) are taken first, each
    within what it may take now; the rest of the batch comes from the others.

    ``plan_first=False`` (the claim before found no destination restricted, ``Claim.restricted``: the usual case,
    breakers closed and no limits) leases first, leaving out every destination restricted now, and plans only when
    the lease says one is (or leased nothing): the plan's read of the restricted rows, which nearly always finds
    none, is then one statement (a round trip on PostgreSQL) fewer per claim. A destination restricted since waits
    for this one claim, as it would for a claim that planned just before it was.
    """
    token = (owner + uuid.uuid4().hex)[:32]
    ids = list(trigger_ids)
    keys: dict[str, list[int]] = {"c_blocking_ids": list(blocking)} if ordered else {}

    def name(statement: str) -> str:  # the name a connection keeps its compiled text under (``db.many``)
        return f"claim.{statement}.{'ordered' if ordered else 'unordered'}"

    def job(connection: Connection) -> Claim:
        statements = _claim_statements(ordered)
        params: dict[str, Any] = {
            "c_trigger_ids": ids,
            "c_now": now,
            "c_token": token,
            "c_expires": now + timedelta(seconds=lease_seconds),
            **keys,
        }
        rows: list[Any] = []
        event_of: dict[int, Any] = {}  # the leased rows' events, by id
        unplanned = policy_of is not None and not plan_first  # the free rows are leased before any plan
        if unplanned:
            settle(connection)  # it reads which destinations are restricted from their rows
            if connection.dialect.name == "postgresql":
                rows = named(connection.execute(statements.lease_unplanned_events, {**params, "c_limit": limit}))
                event_of = {row.event_id: row for row in rows}
            else:
                rows = rows_of(
                    connection, name("lease_unplanned"), statements.lease_unplanned, {**params, "c_limit": limit}
                )
        if policy_of is None or (rows and not rows[0].restricted):  # nothing restricted when the rows were leased
            planned = ClaimPlan()
        else:
            planned = plan_claim(connection, policy_of, now)
        # A destination that may take a whole batch is taken freely; the others, one by one, within their allowance:
        # those capped now, and those with laned rows (``destinations.store.lane``), which the free range never holds.
        capped = {name for name, allowed in planned.allowances.items() if allowed < limit}
        one_by_one = sorted(capped | planned.laned)
        for destination in one_by_one:
            room = min(planned.allowances.get(destination, limit), limit - len(rows))
            taken = 0
            if room > 0:
                leased = rows_of(
                    connection,
                    name("lease_destination"),
                    statements.lease_destination,
                    {**params, "c_destination": destination, "c_limit": room},
                )
                rows += leased
                taken = len(leased)
            if destination in capped and taken == room:  # it may have more due than it could take: it is laned
                planned.lane(connection, destination, now)
        # After an unplanned lease, what the free range may still hold is the rows of restricted destinations that
        # may take a whole batch: none unless the plan found some.
        if len(rows) < limit and (planned.restricted or not unplanned):
            free = {**params, "c_limit": limit - len(rows), "c_restricted": one_by_one}
            rows += rows_of(connection, name("lease"), statements.lease, free)
        if planned.allowances or one_by_one:  # a laned destination released is unlaned as it is saved
            planned.commit(connection, Counter(row.destination for row in rows), now)
        claimed: list[Claimed] = []
        probing = planned.probing
        if rows:
            unread = sorted({r.event_id for r in rows} - event_of.keys())
            if unread:
                event_of.update(
                    (e.id, e) for e in named(connection.execute(statements.events, {"c_event_ids": unread}))
                )
            for row in sorted(rows, key=lambda r: r.id):
                event = event_of[row.event_id]
                claimed.append(
                    Claimed(
                        row.id,
                        row.event_id,
                        row.trigger_id,
                        row.attempts,
                        token,
                        event.payload,
                        event.headers,
                        event.idempotency_key,
                        event.received_at,
                        row.destination,
                        row.destination in probing,
                    )
                )
        if ordered:  # keys left on rows of a trigger that no longer orders (and none does) order nothing
            _settle_keys(connection, rows, token, now, claimed)
        next_run_at = None
        if len(rows) < limit:
            next_run_at = scalar_of(
                connection,
                name("next_due"),
                statements.next_due,
                {"c_trigger_ids": ids, "c_restricted": sorted(capped), **keys},
            )
            if planned.next_at is not None and (next_run_at is None or planned.next_at < next_run_at):
                next_run_at = planned.next_at
        return Claim(claimed, next_run_at, planned.transitions, planned.restricted)

    return job


def _settle_keys(
    connection: Connection, rows: Sequence[Any], token: str, now: datetime, claimed: list[Claimed]
) -> None:
    """On PostgreSQL, give back each leased keyed row whose key another execution runs, and drop it from ``claimed``.

    The check runs under the keys' advisory locks, taken at the transaction's end with its other keys'
    (``parking.under_keys``), in a snapshot taken after they were granted: whichever claim of a key comes second
    sees the first one's lease. SQLite's single writer serialises claims, so there nothing can straddle.
    """
    keyed = [row for row in rows if row.ordering_key is not None]
    if not keyed or connection.dialect.name != "postgresql":
        return
    other = executions.alias("other")
    busy = parking.probe(
        other,
        parking.same_key(other, executions),
        other.c.status == ExecutionStatus.RUNNING,
        other.c.id != executions.c.id,
    )
    mine = executions.c.id.in_([row.id for row in keyed])
    given_back = back_to_pending(now, mine, executions.c.lease_token == token, busy)

    def settle(connection: Connection) -> None:
        back = set(connection.execute(given_back).scalars())
        if back:
            claimed[:] = [one for one in claimed if one.id not in back]

    parking.under_keys(connection, [(row.trigger_id, row.ordering_key) for row in keyed], settle, parking.SETTLE)


class Complete(BatchJob[bool]):
    """The writer job that records one attempt; a batch of them is recorded together (``complete_many``).

    The breaker transitions the batch's outcomes caused are handed back on the batch's first job
    (``transitions``), for the worker to report once committed; ``held`` says the attempt completed into an open
    breaker and was held, not charged.
    """

    __slots__ = ("held", "result", "transitions")

    def __init__(self, result: Completion) -> None:
        self.result = result
        self.transitions: list[BreakerTransition] = []
        self.held = False

    @classmethod
    def run_batch(cls, connection: Connection, jobs: Sequence[Complete]) -> list[bool]:
        """Record the attempts of ``jobs``, in one pass, counted first at their destinations (which may hold some)."""
        held: set[tuple[int, str]] = set()
        for job in jobs:
            job.transitions = []

        def count(firsts: list[Completion]) -> list[Completion]:
            counted = [
                (i, Outcome(r.destination, r.observed, r.policy, r.probe))
                for i, r in enumerate(firsts)
                if r.destination is not None and r.observed is not None and r.policy is not None
            ]
            if not counted:
                return firsts
            now = max(job.result.finished_at for job in jobs)
            recorded = record_outcomes(connection, [outcome for _, outcome in counted], now)
            jobs[0].transitions = recorded.transitions
            holding = {counted[n][0] for n in recorded.held}
            held.update((firsts[i].execution_id, firsts[i].lease_token) for i in holding)
            return [held_by_breaker(r) if i in holding else r for i, r in enumerate(firsts)]

        flags = complete_many(connection, [job.result for job in jobs], count)
        for job, applied in zip(jobs, flags, strict=True):
            job.held = applied and (job.result.execution_id, job.result.lease_token) in held
        return flags


def complete(result: Completion) -> Complete:
    """Record an attempt and move the execution on; False (and nothing written) when the lease was lost."""
    return Complete(result)


@dataclass(frozen=True, slots=True)
class _CompleteStatements:
    held: Any  # the running rows among :ids, locked: PostgreSQL locks them before counting
    fence: Any  # SQLite: ``held``, with whether each row's key has a parked row (``waiting``, as _promote_next reads)
    update: Any  # one fenced execution update per bound row
    hold: Any  # the same for attempts held by an open breaker: ``uncharged`` counts it, not ``attempts``
    attempt: Any  # the attempt rows (SQLite; PostgreSQL inserts them with the fenced update)


@cache
def _complete_statements() -> _CompleteStatements:
    def bind(name: str, column: str) -> Any:
        return bindparam(name, type_=executions.c[column].type)

    held = (
        select(
            executions.c.id,
            executions.c.lease_token,
            executions.c.attempts,
            executions.c.uncharged,
            executions.c.trigger_id,
            executions.c.action_kind,
            executions.c.created_at,
            executions.c.replay_of,
            executions.c.ordering_key,
        )
        .where(in_list(executions.c.id, "ids"), unindexed(executions.c.status) == ExecutionStatus.RUNNING)
        .with_for_update(of=executions)
    )
    parked = executions.alias("parked")
    waiting = parking.probe(
        parked,
        parking.same_key(parked, executions),
        parked.c.status == ExecutionStatus.PENDING,
        parked.c.key_waiting == true(),
    )
    fenced = update(executions).where(
        executions.c.id == bind("b_id", "id"),
        executions.c.lease_token == bind("b_token", "lease_token"),
        executions.c.status == ExecutionStatus.RUNNING,
    )
    values = {
        "status": bind("b_status", "status"),
        "run_at": func.coalesce(bind("b_run_at", "run_at"), executions.c.run_at),
        "lease_token": None,
        "lease_expires_at": None,
        "updated_at": bind("b_updated_at", "updated_at"),
        "finished_at": bind("b_finished_at", "finished_at"),
        "error_category": bind("b_error_category", "error_category"),
        "error_code": bind("b_error_code", "error_code"),
        "error_message": bind("b_error_message", "error_message"),
        "fingerprint": bind("b_fingerprint", "fingerprint"),
    }
    return _CompleteStatements(
        held=held,
        fence=held.add_columns(waiting.label("waiting")),
        update=fenced.values(attempts=executions.c.attempts + 1, **values),
        hold=fenced.values(uncharged=executions.c.uncharged + 1, **values),
        attempt=attempts.insert(),
    )


# PostgreSQL: every fenced update of a batch in one statement that also hands back what the rollups need, so a
# completion costs neither a SELECT ... FOR UPDATE round trip nor that statement's row lock (a WAL record per row).
# The same statement inserts the attempt of each row it updated (``i``): a round trip fewer per completion batch
# than an INSERT of its own, which the writer, waiting on round trips rather than on the CPU, felt (``peers.py
# --systems redrive-pg``, 8 rounds alternated: +0.3% to +7.7%, median +2.0%). The arrays travel as one parameter
# each; the statement's text never changes with the batch's size. ``charge`` is 1
# for an attempt charged to the retry budget, 0 for one held by an open breaker (``uncharged`` counts it). ``waiting``
# is always true here: every freed key is promoted, under its lock (``_promote_next``).
#
# Each row takes its values from the arrays at its id's place (``array_position``; ids are unique in a statement,
# ``_fenced_update``), so the table is read once, by primary key or through the running rows, and never joined to
# the batch. Joined to the arrays unnested as rows, the statement's cached plan (made while the table was new)
# believed one row was running, and its nested loop scanned the whole batch again for each running row: 2.4-2.8 ms
# a completion of about 32 rows in ``peers.py``, against 1.9 ms now (``pg_stat_statements``). Where PostgreSQL
# hashes the batch instead, the join is about 9% cheaper than this; the statement pays that for a plan that does not
# hang on the statistics (``test_executions_partial_indexes``). Each ``array_position`` is repeated rather than
# taken once in a sub-select per row: that form measured 5% slower still (its sub-plan runs once per row).
_FENCED_UPDATE = text(
    "WITH u AS (UPDATE executions AS e SET "
    "status = a.statuses[array_position(a.ids, e.id)], "
    "attempts = e.attempts + a.charges[array_position(a.ids, e.id)], "
    "uncharged = e.uncharged + 1 - a.charges[array_position(a.ids, e.id)], "
    "run_at = coalesce(a.run_ats[array_position(a.ids, e.id)], e.run_at), "
    "lease_token = NULL, lease_expires_at = NULL, "
    "updated_at = a.updated_ats[array_position(a.ids, e.id)], "
    "finished_at = a.finished_ats[array_position(a.ids, e.id)], "
    "error_category = a.categories[array_position(a.ids, e.id)], "
    "error_code = a.codes[array_position(a.ids, e.id)], "
    "error_message = a.messages[array_position(a.ids, e.id)], "
    "fingerprint = a.fingerprints[array_position(a.ids, e.id)] "
    "FROM (SELECT CAST(:ids AS bigint[]) AS ids, CAST(:tokens AS text[]) AS tokens, "
    "CAST(:statuses AS text[]) AS statuses, CAST(:run_ats AS timestamptz[]) AS run_ats, "
    "CAST(:updated_ats AS timestamptz[]) AS updated_ats, CAST(:finished_ats AS timestamptz[]) AS finished_ats, "
    "CAST(:categories AS text[]) AS categories, CAST(:codes AS text[]) AS codes, "
    "CAST(:messages AS text[]) AS messages, CAST(:fingerprints AS text[]) AS fingerprints, "
    "CAST(:charges AS int[]) AS charges) AS a "
    "WHERE e.id = ANY(a.ids) AND e.lease_token = a.tokens[array_position(a.ids, e.id)] AND e.status = 'running' "
    "RETURNING e.id, a.tokens[array_position(a.ids, e.id)] AS token, "
    "e.attempts - a.charges[array_position(a.ids, e.id)] AS attempts, "
    "e.uncharged - 1 + a.charges[array_position(a.ids, e.id)] AS uncharged, "
    "e.trigger_id, e.action_kind, e.created_at, e.replay_of, e.ordering_key, true AS waiting), "
    # The attempt of each row the update applied (and of no other), numbered after every earlier request.
    "i AS (INSERT INTO attempts (execution_id, number, started_at, finished_at, duration_ms, outcome, "
    "error_category, error_code, message, detail, excerpt, fingerprint, request, charged) "
    "SELECT id, attempts + uncharged + 1, (CAST(:started_ats AS timestamptz[]))[n], "
    "(CAST(:updated_ats AS timestamptz[]))[n], (CAST(:durations AS double precision[]))[n], "
    "(CAST(:outcomes AS text[]))[n], (CAST(:categories AS text[]))[n], (CAST(:codes AS text[]))[n], "
    "(CAST(:messages AS text[]))[n], CAST((CAST(:details AS text[]))[n] AS jsonb), (CAST(:excerpts AS text[]))[n], "
    "(CAST(:fingerprints AS text[]))[n], CAST((CAST(:requests AS text[]))[n] AS jsonb), "
    "(CAST(:charges AS int[]))[n] = 1 "
    "FROM (SELECT u.*, array_position(CAST(:ids AS bigint[]), u.id) AS n FROM u) AS applied) "
    "SELECT * FROM u"
)


def _fenced_update(connection: Connection, results: Sequence[Completion]) -> dict[tuple[int, str], Any]:
    """PostgreSQL: apply each result whose lease holds (``_FENCED_UPDATE``); returns the updated rows (attempts as
    they were before) by (id, token). ``results`` hold each (id, token) once; an execution whose older lease
    completes beside its newer one is in the batch twice, so its second result goes in a statement of its own."""
    updated: dict[tuple[int, str], Any] = {}
    left = list(results)
    while left:
        batch: list[Completion] = []
        later: list[Completion] = []
        ids: set[int] = set()
        for result in left:
            (later if result.execution_id in ids else batch).append(result)
            ids.add(result.execution_id)
        updated.update(_fenced_batch(connection, batch))
        left = later
    return updated


def _fenced_batch(connection: Connection, results: Sequence[Completion]) -> dict[tuple[int, str], Any]:
    values = [_execution_values(result) for result in results]
    columns = {
        "ids": "b_id",
        "tokens": "b_token",
        "statuses": "b_status",
        "run_ats": "b_run_at",
        "updated_ats": "b_updated_at",
        "finished_ats": "b_finished_at",
        "categories": "b_error_category",
        "codes": "b_error_code",
        "messages": "b_error_message",
        "fingerprints": "b_fingerprint",
    }
    params: dict[str, list[Any]] = {name: [row[key] for row in values] for name, key in columns.items()}
    params["charges"] = [1 if result.charged else 0 for result in results]
    params |= {  # the attempts' own columns (``_attempt_row``'s, less those the execution's share)
        "started_ats": [result.started_at for result in results],
        "durations": [_duration_ms(result) for result in results],
        "outcomes": [result.outcome for result in results],
        "details": [json_dumps(result.detail) for result in results],
        "excerpts": [result.excerpt for result in results],
        "requests": [json_dumps(result.request) for result in results],
    }
    return {(row.id, row.token): row for row in named(connection.execute(_FENCED_UPDATE, params))}


def _sqlite_many(connection: Connection, name: str, rows: list[dict[str, Any]]) -> None:
    """SQLite: run the completion's per-row statement ``name`` (``update``, ``hold`` or ``attempt``) over ``rows``,
    handed to the driver as tuples (``db.many``). The attempts' insert is compiled for its rows' keys
    (``_attempt_row``'s); the updates name their parameters themselves."""
    columns = rows[0] if name == "attempt" else ()
    many(connection, f"complete.{name}", getattr(_complete_statements(), name), columns).run(connection, rows)


def _held_then_updated(connection: Connection, results: Sequence[Completion]) -> dict[tuple[int, str], Any]:
    """SQLite: read the running rows (its single writer holds the lock), keep those whose token matches, update
    them; returns them by (id, token), as read before the update."""
    statements = _complete_statements()
    held = named(connection.execute(statements.fence, {"ids": sorted({r.execution_id for r in results})}))
    current = {row.id: row for row in held}
    fenced = [r for r in results if r.execution_id in current and current[r.execution_id].lease_token == r.lease_token]
    for name, charged in (("update", True), ("hold", False)):
        rows = [_execution_values(result) for result in fenced if result.charged is charged]
        if rows:
            _sqlite_many(connection, name, rows)
    return {(r.execution_id, r.lease_token): current[r.execution_id] for r in fenced}


def complete_many(
    connection: Connection,
    results: Sequence[Completion],
    count: Callable[[list[Completion]], list[Completion]] | None = None,
) -> list[bool]:
    """Record each result whose lease still holds, as if one after the other; one flag per result.

    Each (execution, lease token) is applied once, by its first result: a later one for the same lease, or one
    whose token is not the row's, changes nothing. ``count`` sees each lease's first result (its destination counts
    the outcome, which happened whether or not the lease still holds) and may hand a transient failure back held by
    an open breaker (``held_by_breaker``). The fenced updates go in one statement (on SQLite after reading the
    running rows, in one more), the attempt rows in one more, and the stats rollups take the batch's changes with
    the rest of the transaction's (``observe.rollups``).

    Lock order: the executions' rows before the destinations' (``count`` locks those). A batch with no transient
    failure cannot be held, so on PostgreSQL its fenced update runs first and locks the rows it completes; one that
    may be held locks its running rows first (``SELECT ... FOR UPDATE``), then is counted, then updated. A writer
    transaction that renewed leases (rows first) and one that completed (destination first, then rows) each held
    what the other waited for.
    """
    first: dict[tuple[int, str], Completion] = {}
    for result in results:
        first.setdefault((result.execution_id, result.lease_token), result)
    unique = list(first.values())
    postgres = connection.dialect.name == "postgresql"
    may_hold = any(r.observed is not None and r.observed.outcome == "transient" for r in unique)
    if count is not None and unique and (may_hold or not postgres):
        if postgres:
            connection.execute(_complete_statements().held, {"ids": sorted(first_id for first_id, _ in first)})
        unique = count(unique)
        first = {(r.execution_id, r.lease_token): r for r in unique}
        count = None
    updated = _fenced_update(connection, unique) if postgres else _held_then_updated(connection, unique)
    if count is not None and unique:  # nothing transient: nothing to hold, counted after the rows are locked
        count(unique)
    applied = [(r, updated[key]) for key, r in first.items() if key in updated]
    flags: list[bool] = []
    for result in results:
        key = (result.execution_id, result.lease_token)
        flags.append(key in updated and first.pop(key, None) is not None)  # the first result of a lease alone
    if applied:
        if not postgres:  # PostgreSQL's went in with the fenced update (``_FENCED_UPDATE``)
            _sqlite_many(connection, "attempt", [_attempt_row(result, _number(row)) for result, row in applied])
        for result, _ in applied:
            _after_failure(connection, result)
        _promote_next(connection, applied)
        rollups.completed(connection, [_rollup_change(result, row) for result, row in applied])
    return flags


def _promote_next(connection: Connection, applied: Sequence[tuple[Completion, Any]]) -> None:
    """Unpark the next row of each key the batch freed (``parking.promote_in``): one statement, none when unordered.

    An ordered row frees its key when it succeeds, or dead-letters or fails under ``on_dead_letter: continue``; a
    retry (pending again) keeps holding it.

    On SQLite a key that had no parked row when the fence read it (``waiting``) is left out: the promotion would
    find nothing to unpark. The writer transaction is the only one, and what it parks later (``parking.PARK``, at
    its end) parks behind a holder it finds then, so a key the fence saw without a parked row ends the transaction
    with none left without a holder. On PostgreSQL an ingest on another node may park behind the row while it
    completes (``parking.lock_keys``), so ``_FENCED_UPDATE`` says every row ``waiting`` and every freed key is
    promoted under its lock.
    """
    freed: list[int] = []
    keys: list[tuple[int, str]] = []
    for result, row in applied:
        if (
            row.ordering_key is not None
            and result.status in TERMINAL
            and (result.status == ExecutionStatus.SUCCEEDED or not result.ordering_blocks)
            and row.waiting
        ):
            freed.append(result.execution_id)
            keys.append((row.trigger_id, row.ordering_key))
    if freed:
        blocking = sorted({r.trigger_id for r, _ in applied if r.ordering_blocks and r.trigger_id is not None})
        parking.promote_under_keys(connection, keys, freed, blocking, max(r.finished_at for r, _ in applied))


def _execution_values(result: Completion) -> dict[str, Any]:
    return {
        "b_id": result.execution_id,
        "b_token": result.lease_token,
        "b_status": result.status,
        "b_run_at": result.run_at,
        "b_updated_at": result.finished_at,
        "b_finished_at": result.finished_at if result.status in TERMINAL else None,
        "b_error_category": result.error_category,
        "b_error_code": result.error_code,
        "b_error_message": result.message,
        "b_fingerprint": result.fingerprint,
    }


def _number(held: Any) -> int:
    """The number of the attempt completing on the running row ``held``: every earlier request, charged or not."""
    return int(held.attempts + held.uncharged + 1)


def _rollup_change(result: Completion, held: Any) -> tuple[int, ExecutionFacts, AttemptFacts]:
    """What the stats rollups count of a recorded attempt: the execution as it is now, and the attempt."""
    finished = result.finished_at if result.status in TERMINAL else None
    after = ExecutionFacts(
        held.trigger_id,
        held.action_kind,
        result.status,
        held.created_at,
        finished,
        result.fingerprint,
        held.replay_of is not None,
    )
    attempt = AttemptFacts(
        held.trigger_id, held.action_kind, _number(held), result.finished_at, result.outcome, result.fingerprint
    )
    return result.execution_id, after, attempt


def _duration_ms(result: Completion) -> float:
    return (result.finished_at - result.started_at).total_seconds() * 1000


def _attempt_row(result: Completion, number: int) -> dict[str, Any]:
    return {
        "execution_id": result.execution_id,
        "number": number,
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "duration_ms": _duration_ms(result),
        "outcome": result.outcome,
        "error_category": result.error_category,
        "error_code": result.error_code,
        "message": result.message,
        "detail": result.detail,
        "excerpt": result.excerpt,
        "fingerprint": result.fingerprint,
        "request": result.request,
        "charged": result.charged,
    }


def _after_failure(connection: Connection, result: Completion) -> None:
    if result.fingerprint is not None:
        assert result.trigger_id is not None
        assert result.action_kind is not None
        record_failure(
            connection,
            fingerprint=result.fingerprint,
            trigger_id=result.trigger_id,
            kind=result.action_kind,
            code=result.error_code or "unknown",
            category=result.error_category or "permanent",
            title=result.title or "",
            execution_id=result.execution_id,
            at=result.finished_at,
        )
    if result.pause_trigger_id is not None:
        connection.execute(
            update(triggers)
            .where(triggers.c.id == result.pause_trigger_id)
            .values(paused=True, paused_reason=result.message, updated_at=result.finished_at)
        )


def _running_unlocked(*where: ColumnElement[bool]) -> ColumnElement[bool]:
    """The running rows matching ``where`` that no other transaction has locked (PostgreSQL: ``SKIP LOCKED``).

    What renews or gives back leases never waits for a row: a row locked elsewhere is being completed (its lease
    ends anyway) or given back already. So these statements take no part in a lock cycle with a completion, which
    locks its rows and then its destinations'.
    """
    free = select(executions.c.id).where(executions.c.status == ExecutionStatus.RUNNING, *where)
    return executions.c.id.in_(free.with_for_update(skip_locked=True))


def renew(tokens: Sequence[str], lease_seconds: float, now: datetime) -> Callable[[Connection], int]:
    """Extend the leases still held under ``tokens``; returns how many rows were renewed."""

    def job(connection: Connection) -> int:
        return connection.execute(
            update(executions)
            .where(_running_unlocked(executions.c.lease_token.in_(tokens)))
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        ).rowcount

    return job


def back_to_pending(now: datetime, *where: ColumnElement[bool]) -> Update:
    """The one statement that gives running executions back to the queue, uncharged: lease cleared, due ``now``.

    ``where`` narrows which running rows (one lease, expired leases, a dead node's leases); it returns their ids.
    Rows another transaction holds are left alone (``_running_unlocked``).
    """
    return (
        update(executions)
        .where(executions.c.status == ExecutionStatus.RUNNING, _running_unlocked(*where))
        .values(status=ExecutionStatus.PENDING, lease_token=None, lease_expires_at=None, run_at=now, updated_at=now)
        .returning(executions.c.id)
    )


def release(held: Sequence[tuple[int, str]], now: datetime) -> Callable[[Connection], int]:
    """Give leased executions back to the queue without charging an attempt (graceful shutdown)."""

    def job(connection: Connection) -> int:
        released = 0
        for execution_id, token in held:
            statement = back_to_pending(now, executions.c.id == execution_id, executions.c.lease_token == token)
            released += len(connection.execute(statement).all())
        return released

    return job


def sweep(now: datetime) -> Callable[[Connection], list[int]]:
    """Return executions whose lease expired to pending, uncharged; returns their ids."""

    def job(connection: Connection) -> list[int]:
        return list(connection.execute(back_to_pending(now, executions.c.lease_expires_at < now)).scalars())

    return job
