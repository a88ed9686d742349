"""Every statement the queue runs: claim, renew, complete, release, sweep. Each function returns a writer job.

The executions table is the queue. A claim leases a batch of due rows under a fresh token; every later change to a
running row is fenced by that token, so a worker whose lease expired (and whose row was swept and claimed again)
changes nothing. On PostgreSQL the claim skips rows other workers hold (``FOR UPDATE SKIP LOCKED``); on SQLite the
single writer serialises claims and the clause compiles to nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import false, func, select, update
from sqlalchemy.engine import Connection

from redrive.db.schema import attempts, events, executions, triggers
from redrive.errorgroups import record_failure

TERMINAL = frozenset({"succeeded", "failed", "failed_retryable"})


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


@dataclass(frozen=True, slots=True)
class Claim:
    """What a claim found: the leased rows and, when it found fewer than asked, when the next row falls due."""

    executions: list[Claimed]
    next_run_at: datetime | None


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


def _runnable(trigger_ids: Sequence[int]) -> Any:
    return select(triggers.c.id).where(triggers.c.id.in_(trigger_ids), triggers.c.paused == false())


def claim(
    trigger_ids: Sequence[int], limit: int, lease_seconds: float, now: datetime, *, owner: str = ""
) -> Callable[[Connection], Claim]:
    """Lease up to ``limit`` due pending executions of runnable triggers, oldest ``run_at`` first.

    The lease token starts with ``owner`` (the claiming node's id), so a dead node's leases can be found.
    """
    token = (owner + uuid.uuid4().hex)[:32]

    def job(connection: Connection) -> Claim:
        # A materialised CTE: the planner may not re-run or flatten the locking subquery, so LIMIT holds.
        due = (
            select(executions.c.id)
            .where(
                executions.c.status == "pending",
                executions.c.run_at <= now,
                executions.c.trigger_id.in_(_runnable(trigger_ids)),
            )
            .order_by(executions.c.run_at)
            .limit(limit)
            .with_for_update(skip_locked=True, of=executions)
            .cte("due")
            .prefix_with("MATERIALIZED")
        )
        rows = connection.execute(
            update(executions)
            .where(executions.c.id == due.c.id, executions.c.status == "pending")
            .values(
                status="running",
                lease_token=token,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                updated_at=now,
            )
            .returning(executions.c.id, executions.c.event_id, executions.c.trigger_id, executions.c.attempts)
        ).all()
        claimed: list[Claimed] = []
        if rows:
            by_id = {
                e.id: e
                for e in connection.execute(
                    select(
                        events.c.id,
                        events.c.payload,
                        events.c.headers,
                        events.c.idempotency_key,
                        events.c.received_at,
                    ).where(events.c.id.in_({r.event_id for r in rows}))
                )
            }
            for row in sorted(rows, key=lambda r: r.id):
                event = by_id[row.event_id]
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
                    )
                )
        next_run_at = None
        if len(rows) < limit:
            next_run_at = connection.execute(
                select(func.min(executions.c.run_at)).where(
                    executions.c.status == "pending", executions.c.trigger_id.in_(_runnable(trigger_ids))
                )
            ).scalar_one_or_none()
        return Claim(claimed, next_run_at)

    return job


def complete(result: Completion) -> Callable[[Connection], bool]:
    """Record an attempt and move the execution on; False (and nothing written) when the lease was lost."""

    def job(connection: Connection) -> bool:
        terminal = result.status in TERMINAL
        changed = connection.execute(
            update(executions)
            .where(
                executions.c.id == result.execution_id,
                executions.c.lease_token == result.lease_token,
                executions.c.status == "running",
            )
            .values(
                status=result.status,
                attempts=executions.c.attempts + 1,
                run_at=result.run_at if result.run_at is not None else executions.c.run_at,
                lease_token=None,
                lease_expires_at=None,
                updated_at=result.finished_at,
                finished_at=result.finished_at if terminal else None,
                error_category=result.error_category,
                error_code=result.error_code,
                error_message=result.message,
                fingerprint=result.fingerprint,
            )
            .returning(executions.c.attempts)
        ).scalar_one_or_none()
        if changed is None:
            return False
        connection.execute(
            attempts.insert().values(
                execution_id=result.execution_id,
                number=changed,
                started_at=result.started_at,
                finished_at=result.finished_at,
                duration_ms=(result.finished_at - result.started_at).total_seconds() * 1000,
                outcome=result.outcome,
                error_category=result.error_category,
                error_code=result.error_code,
                message=result.message,
                detail=result.detail,
                excerpt=result.excerpt,
                fingerprint=result.fingerprint,
            )
        )
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
        return True

    return job


def renew(tokens: Sequence[str], lease_seconds: float, now: datetime) -> Callable[[Connection], int]:
    """Extend the leases still held under ``tokens``; returns how many rows were renewed."""

    def job(connection: Connection) -> int:
        return connection.execute(
            update(executions)
            .where(executions.c.lease_token.in_(tokens), executions.c.status == "running")
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        ).rowcount

    return job


def release(held: Sequence[tuple[int, str]], now: datetime) -> Callable[[Connection], int]:
    """Give leased executions back to the queue without charging an attempt (graceful shutdown)."""

    def job(connection: Connection) -> int:
        released = 0
        for execution_id, token in held:
            released += connection.execute(
                update(executions)
                .where(
                    executions.c.id == execution_id,
                    executions.c.lease_token == token,
                    executions.c.status == "running",
                )
                .values(status="pending", lease_token=None, lease_expires_at=None, run_at=now, updated_at=now)
            ).rowcount
        return released

    return job


def sweep(now: datetime) -> Callable[[Connection], list[int]]:
    """Return executions whose lease expired to pending, uncharged; returns their ids."""

    def job(connection: Connection) -> list[int]:
        return list(
            connection.execute(
                update(executions)
                .where(executions.c.status == "running", executions.c.lease_expires_at < now)
                .values(status="pending", lease_token=None, lease_expires_at=None, run_at=now, updated_at=now)
                .returning(executions.c.id)
            ).scalars()
        )

    return job
