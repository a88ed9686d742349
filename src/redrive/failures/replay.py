"""Replaying a dead-lettered execution: a new execution for the same event, linked by ``replay_of``.

Only ``failed_retryable`` executions are replayed, and ``failed`` ones when an admin forces it. Every rule is checked
by a conditional UPDATE in the database, so it holds across processes and nodes:

- ``UPDATE executions SET status='replayed' ... WHERE id = :id AND status = :seen``: of concurrent replays of one
  execution exactly one takes it; the others find it ``replayed`` (409 ``not_replayable``).
- ``UPDATE events SET replay_count = replay_count + 1, last_replay_at = :now WHERE id = :event AND replay_count < 5
  AND (last_replay_at IS NULL OR last_replay_at <= :now - 60 s)``: an event's executions are replayed at most
  ``MAX_REPLAYS`` times in all (409 ``replay_limit``), and at most once per ``REPLAY_INTERVAL`` (429
  ``rate_limited``). The interval is kept per event, not per execution row: a replayed execution is never
  replayable again, so "this execution was replayed less than 60 s ago" can only mean that its replay (the same
  event) dead-lettered and is being replayed again.

Both updates run in a SAVEPOINT that is rolled back when either finds nothing, and the audit row is written in the
same transaction in every case, so refused attempts are audited too. The job returns a ``ReplayResult``;
``raise_for`` turns a refusal into the matching ``RedriveError``. A replay keeps its execution's ordering key
(it is not rendered again): under its new id it queues behind everything already accepted for that key (parked
while the key is held, ``redrive.queue.parking``); replaying a dead head under ``block`` first frees its key. Times come
from the service clock (``now`` is a bind parameter), so nodes are expected to keep their clocks in step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, or_, select, update
from sqlalchemy.engine import Connection

from redrive.db.schema import attempts, events, executions, triggers
from redrive.destinations.policy import Seed
from redrive.destinations.store import seed_rows
from redrive.errors import Forbidden, NotFound, NotReplayable, RateLimited, ReplayLimit
from redrive.failures import audit
from redrive.observe import rollups
from redrive.observe.rollups import ExecutionFacts
from redrive.queue import parking
from redrive.states import ExecutionStatus
from redrive.triggers.runtime import StoredEvent, Trigger
from redrive.triggers.templating import RenderError

MAX_REPLAYS = 5
REPLAY_INTERVAL = timedelta(seconds=60)
REPLAYABLE = ExecutionStatus.FAILED_RETRYABLE

Outcome = Literal["ok", "not_found", "forbidden", "not_replayable", "replay_limit", "rate_limited"]


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """One replay to attempt: which execution, by whom, when, and under which permissions."""

    execution_id: int
    actor: str
    now: datetime
    runnable: frozenset[int]  # ids of the triggers this service declares (only those run)
    force: bool = False  # also replay a permanently ``failed`` execution
    may_force: bool = False  # the caller is an admin
    bulk_replay_id: int | None = None
    blocking: frozenset[int] = frozenset()  # ordered triggers under ``on_dead_letter: block``
    seeds: Mapping[int, Seed] = field(default_factory=dict)  # templated destinations' rows, by trigger id


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay came to; ``new_execution_id`` is set when ``outcome`` is ``ok``."""

    outcome: Outcome
    execution_id: int
    message: str
    new_execution_id: int | None = None
    retry_after: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


_WHY_NOT_REPLAYABLE: dict[str, str] = {
    ExecutionStatus.SUCCEEDED: "succeeded",
    ExecutionStatus.PENDING: "is pending (it has not finished)",
    ExecutionStatus.RUNNING: "is running",
    ExecutionStatus.REPLAYED: "was already replayed",
}


def status_refusal(execution_id: int, status: str, *, force: bool, may_force: bool) -> tuple[Outcome, str] | None:
    """Why an execution in ``status`` may not be replayed, or None when it may."""
    if status == REPLAYABLE:
        return None
    if status == ExecutionStatus.FAILED:
        if not force:
            return "not_replayable", (
                f"execution {execution_id} failed permanently; an admin can replay it with force=true "
                "once the cause is fixed"
            )
        if not may_force:
            return "forbidden", "replaying a permanently failed execution (force=true) needs the admin role"
        return None
    why = _WHY_NOT_REPLAYABLE.get(status, f"is {status}")
    return "not_replayable", f"execution {execution_id} {why}; only dead-lettered (failed_retryable) ones are replayed"


def limit_refusal(
    event_id: int, replay_count: int, last_replay_at: datetime | None, now: datetime
) -> tuple[Outcome, str, int | None] | None:
    """Why the event's limits refuse a replay now (outcome, message, seconds to wait), or None when they allow it."""
    if replay_count >= MAX_REPLAYS:
        return "replay_limit", f"event {event_id} was replayed {replay_count} times; the limit is {MAX_REPLAYS}", None
    if last_replay_at is not None and now - last_replay_at < REPLAY_INTERVAL:
        wait = max(1, math.ceil((last_replay_at + REPLAY_INTERVAL - now).total_seconds()))
        return (
            "rate_limited",
            (
                f"event {event_id} was replayed {int((now - last_replay_at).total_seconds())} s ago; replays of one "
                f"event are {int(REPLAY_INTERVAL.total_seconds())} s apart at least: retry in {wait} s"
            ),
            wait,
        )
    return None


def replay(request: ReplayRequest) -> Callable[[Connection], ReplayResult]:
    """A write job: replay one execution (or report why not) and audit the attempt in the same transaction."""

    def job(connection: Connection) -> ReplayResult:
        return replay_in(connection, request)

    return job


def replay_in(connection: Connection, request: ReplayRequest) -> ReplayResult:
    """Replay in the caller's transaction and write its audit row (the bulk runner calls this too)."""
    result = _replay(connection, request)
    detail: dict[str, Any] = {"force": request.force, **result.detail}
    if result.new_execution_id is not None:
        detail["new_execution_id"] = result.new_execution_id
    if request.bulk_replay_id is not None:
        detail["bulk_replay_id"] = request.bulk_replay_id
    if result.outcome != "ok":
        detail["message"] = result.message
    audit.record(
        connection,
        at=request.now,
        actor=request.actor,
        action="replay",
        target=f"execution:{request.execution_id}",
        result=result.outcome,
        detail=detail,
    )
    return result


def _replay(connection: Connection, r: ReplayRequest) -> ReplayResult:
    row = connection.execute(
        select(
            executions.c.status,
            executions.c.event_id,
            executions.c.trigger_id,
            executions.c.ordering_key,
            executions.c.destination,
            triggers.c.action_kind,
        )
        .join(triggers, triggers.c.id == executions.c.trigger_id)
        .where(executions.c.id == r.execution_id)
    ).one_or_none()
    if row is None:
        return ReplayResult("not_found", r.execution_id, f"no execution has id {r.execution_id}")
    if status_refusal(r.execution_id, row.status, force=r.force, may_force=r.may_force) is not None:
        return _refused(connection, r, row.status, row.event_id)
    if row.trigger_id not in r.runnable:
        return ReplayResult("not_replayable", r.execution_id, "its trigger is no longer declared, so nothing would run")
    savepoint = connection.begin_nested()
    taken = connection.execute(
        update(executions)
        .where(executions.c.id == r.execution_id, executions.c.status == row.status)
        .values(status=ExecutionStatus.REPLAYED, last_replay_at=r.now, updated_at=r.now)
    ).rowcount
    if not taken:  # a concurrent replay changed it since we looked
        savepoint.rollback()
        status = connection.execute(select(executions.c.status).where(executions.c.id == r.execution_id)).scalar_one()
        return _refused(connection, r, status, row.event_id)
    counted = connection.execute(
        update(events)
        .where(
            events.c.id == row.event_id,
            events.c.replay_count < MAX_REPLAYS,
            or_(events.c.last_replay_at.is_(None), events.c.last_replay_at <= r.now - REPLAY_INTERVAL),
        )
        .values(replay_count=events.c.replay_count + 1, last_replay_at=r.now)
    ).rowcount
    if not counted:
        savepoint.rollback()
        event = connection.execute(
            select(events.c.replay_count, events.c.last_replay_at).where(events.c.id == row.event_id)
        ).one()
        limited = limit_refusal(row.event_id, event.replay_count, event.last_replay_at, r.now)
        if limited is None:  # the limits moved between the UPDATE and this read; say so rather than guess
            return ReplayResult("rate_limited", r.execution_id, "the event is being replayed; retry", retry_after=1)
        return ReplayResult(limited[0], r.execution_id, limited[1], retry_after=limited[2])
    key = [(row.trigger_id, row.ordering_key)] if row.ordering_key is not None else []
    if key:  # the dead row no longer holds its key: its next row may go (then the replay)
        parking.promote_under_keys(connection, key, [r.execution_id], sorted(r.blocking), r.now)
    new_id = connection.execute(
        executions.insert()
        .values(
            event_id=row.event_id,
            trigger_id=row.trigger_id,
            action_kind=row.action_kind,  # the trigger's current kind: the worker runs the action as configured now
            status=ExecutionStatus.PENDING,
            attempts=0,
            run_at=r.now,
            created_at=r.now,
            updated_at=r.now,
            replay_of=r.execution_id,
            bulk_replay_id=r.bulk_replay_id,
            # The same key, under a new (larger) id: an ordered replay takes its place at the end of its key.
            ordering_key=row.ordering_key,
            destination=row.destination,  # the same event goes to the same place (and waits behind its breaker)
        )
        .returning(executions.c.id)
    ).scalar_one()
    seed = r.seeds.get(row.trigger_id)
    if seed is not None and row.destination is not None:  # its row, as an ingest makes it (limits from the start)
        seed_rows(connection, {row.destination: seed}, r.now)
    if key:  # under the key's lock, as an ingest parks: a completion freeing the key then sees the replay
        parking.park_under_keys(connection, key, [new_id], sorted(r.blocking))
    replay = ExecutionFacts(row.trigger_id, row.action_kind, ExecutionStatus.PENDING, r.now, None, None, True)
    rollups.replayed(connection, r.execution_id, row.status, replay)
    savepoint.commit()
    return ReplayResult("ok", r.execution_id, ExecutionStatus.REPLAYED, new_execution_id=new_id)


def _refused(connection: Connection, r: ReplayRequest, status: str, event_id: int) -> ReplayResult:
    detail = {"status": status}
    if status == ExecutionStatus.REPLAYED:  # name the replay; event_id first, so the lookup uses ix_executions_event
        newer = connection.execute(
            select(func.max(executions.c.id)).where(
                executions.c.event_id == event_id, executions.c.replay_of == r.execution_id
            )
        ).scalar_one_or_none()
        message = f"execution {r.execution_id} was already replayed" + (f" as execution {newer}" if newer else "")
        return ReplayResult("not_replayable", r.execution_id, message, detail=detail)
    refused = status_refusal(r.execution_id, status, force=r.force, may_force=r.may_force)
    outcome, message = refused or ("not_replayable", f"execution {r.execution_id} changed while replaying it")
    return ReplayResult(outcome, r.execution_id, message, detail=detail)


def raise_for(result: ReplayResult) -> None:
    """Raise the RedriveError matching a refused replay; return quietly for ``ok``."""
    if result.outcome == "ok":
        return
    if result.outcome == "rate_limited":
        raise RateLimited(result.message, result.retry_after or 1)
    error = {
        "not_found": NotFound,
        "forbidden": Forbidden,
        "replay_limit": ReplayLimit,
    }.get(result.outcome, NotReplayable)
    raise error(result.message)


# --- preview -------------------------------------------------------------------------------------------------------


def preview_facts(execution_id: int) -> Callable[[Connection], dict[str, Any] | None]:
    """A read job: what a preview needs (execution, event, its replay counters, first attempt), or None."""

    def job(connection: Connection) -> dict[str, Any] | None:
        row = connection.execute(
            select(
                executions.c.id,
                executions.c.status,
                executions.c.trigger_id,
                executions.c.action_kind,
                executions.c.created_at,
                triggers.c.name.label("trigger"),
                events.c.id.label("event_id"),
                events.c.payload,
                events.c.headers,
                events.c.idempotency_key,
                events.c.received_at,
                events.c.replay_count,
                events.c.last_replay_at,
            )
            .join(triggers, triggers.c.id == executions.c.trigger_id)
            .join(events, events.c.id == executions.c.event_id)
            .where(executions.c.id == execution_id)
        ).one_or_none()
        if row is None:
            return None
        facts = dict(row._mapping)
        facts["first_started_at"] = connection.execute(
            select(attempts.c.started_at).where(attempts.c.execution_id == execution_id).order_by(attempts.c.number)
        ).scalar()
        return facts

    return job


def build_preview(
    facts: Mapping[str, Any],
    trigger: Trigger | None,
    now: datetime,
    *,
    force: bool = False,
    may_force: bool = False,
) -> dict[str, Any]:
    """The replay preview: whether the replay would be accepted now and what it would send (redacted).

    ``replayable`` says what the replay route would answer now; ``reason`` gives the refusal, or, for a replayable
    execution whose action no longer renders, the render error (the replay would then fail with ``template_error``).
    """
    execution_id = int(facts["id"])
    refused = status_refusal(execution_id, facts["status"], force=force, may_force=may_force)
    limited = limit_refusal(facts["event_id"], facts["replay_count"], facts["last_replay_at"], now)
    reason = refused[1] if refused else (limited[1] if limited else None)
    action: dict[str, Any] | None = None
    if trigger is None:
        reason = reason or "its trigger is no longer declared, so nothing would run"
    else:
        event = StoredEvent(
            facts["event_id"], facts["payload"], facts["headers"], facts["idempotency_key"], facts["received_at"]
        )
        try:
            action = trigger.render(event).sent
        except RenderError as exc:
            reason = reason or f"the action does not render with the current trigger config: {exc}"
    last = facts["last_replay_at"]
    originally = facts["first_started_at"] or facts["created_at"]
    return {
        "execution_id": execution_id,
        "trigger": facts["trigger"],
        "kind": trigger.config.action.kind if trigger is not None else facts["action_kind"],
        "status": facts["status"],
        "replayable": refused is None and limited is None and trigger is not None,
        "reason": reason,
        "action": action,
        "target": trigger.kind.summary(action) if trigger and action else None,
        "originally_ran_at": originally.isoformat(),
        "replay_count": facts["replay_count"],
        "last_replay_at": last.isoformat() if last is not None else None,
    }
