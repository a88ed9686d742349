"""Bulk replay: replay every dead-lettered execution matching a filter, paced, cancellable, one job per trigger.

This module holds the statements; ``bulk_runner`` runs a job. A ``bulk_replays`` row is the job. The partial unique
index ``uq_bulk_replays_running`` allows one running job per trigger across every process and node (a second one is
409 ``replay_in_progress``). The runner walks the matching executions in id order, up to the largest id matched when
the job started (so replays that dead-letter during the run are not picked up again), and replays each through the
single-replay statement (``replay.replay_in``) in a transaction (``step``) that first checks, under a row lock, that
the job is still ``running`` and then counts the item as ``replayed`` or ``skipped``.

Decisions:

- The per-event rules (60 s apart, at most 5 replays) apply to bulk replays too, uniformly: a bulk job replays each
  execution once, so the interval only refuses an event replayed in the last minute by someone else, which is right.
  Refused items are counted in ``skipped`` and audited like any refused replay. Every item writes its own audit row
  (action ``replay``, detail ``bulk_replay_id``), besides the job's ``bulk_replay`` row.
- Items that no longer match when the walk reaches them (replayed by hand meanwhile) count as skipped: at ``done``,
  ``skipped = matched - replayed``.
- Cancelling (from any node) sets the row to ``cancelled``; the runner sees it at its next item and, while waiting
  for its turn, re-reads the row at least every 0.5 s. A clean shutdown marks the job ``failed`` with "runner
  stopped"; a process that dies leaves it ``running``. Such a job is never failed automatically (no
  node can tell a dead runner from a slow one without a heartbeat column): ``GET /api/v1/replays/{id}`` reports it
  as ``stale`` when no new execution appeared for ``STALE_AFTER`` (and no task of this process runs it), and the
  409 for a new job on that trigger says so and names the cancel route that frees the trigger.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from redrive.db.schema import bulk_replays, error_groups, executions, triggers
from redrive.failures import audit
from redrive.failures.replay import ReplayRequest, ReplayResult, replay_in
from redrive.states import ExecutionStatus

MAX_LIMIT = 100_000
MAX_RATE = 500.0
PAGE = 500
SAMPLE = 10
STALE_AFTER = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class BulkFilter:
    """Which executions a bulk replay takes (``trigger_id`` resolved from a name or a fingerprint)."""

    trigger_id: int
    status: str = ExecutionStatus.FAILED_RETRYABLE
    code: str | None = None
    fingerprint: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = MAX_LIMIT

    def conditions(self) -> list[ColumnElement[bool]]:
        """The WHERE clauses on ``executions``."""
        where = [executions.c.trigger_id == self.trigger_id, executions.c.status == self.status]
        if self.code is not None:
            where.append(executions.c.error_code == self.code)
        if self.fingerprint is not None:
            where.append(executions.c.fingerprint == self.fingerprint)
        if self.since is not None:
            where.append(executions.c.created_at >= self.since)
        if self.until is not None:
            where.append(executions.c.created_at < self.until)
        return where


@dataclass(frozen=True, slots=True)
class Plan:
    """A started job as its runner needs it."""

    id: int
    filter: BulkFilter
    rate: float
    actor: str
    matched: int
    max_id: int | None  # the walk stops here: executions that dead-letter later are not part of the job


def fingerprint_trigger(fingerprint: str) -> Callable[[Connection], int | None]:
    """A read job: the trigger id of an error group, or None for an unknown fingerprint."""

    def job(connection: Connection) -> int | None:
        query = select(error_groups.c.trigger_id).where(error_groups.c.fingerprint == fingerprint)
        return connection.execute(query).scalar_one_or_none()

    return job


def _matches(connection: Connection, f: BulkFilter) -> tuple[int, int | None]:
    ids = select(executions.c.id).where(*f.conditions()).order_by(executions.c.id).limit(f.limit).subquery()
    count, max_id = connection.execute(select(func.count(), func.max(ids.c.id))).one()
    return int(count), max_id


def dry_run(f: BulkFilter) -> Callable[[Connection], dict[str, Any]]:
    """A read job: how many executions a bulk replay would take, and the first few of them."""

    def job(connection: Connection) -> dict[str, Any]:
        matched, _ = _matches(connection, f)
        rows = connection.execute(
            select(
                executions.c.id,
                triggers.c.name.label("trigger"),
                executions.c.event_id,
                executions.c.action_kind.label("kind"),
                executions.c.status,
                executions.c.attempts.label("attempt_count"),
                executions.c.error_code,
                executions.c.error_message,
                executions.c.fingerprint,
                executions.c.created_at,
                executions.c.finished_at,
            )
            .join(triggers, triggers.c.id == executions.c.trigger_id)
            .where(*f.conditions())
            .order_by(executions.c.id)
            .limit(min(SAMPLE, f.limit))
        )
        return {"dry_run": True, "matched": matched, "sample": [audit.jsonable(dict(r._mapping)) for r in rows]}

    return job


def _is_running_conflict(exc: IntegrityError) -> bool:
    text = str(exc.orig)
    return "uq_bulk_replays_running" in text or "bulk_replays.trigger_id" in text  # PostgreSQL, SQLite


def create(
    f: BulkFilter, *, rate: float, actor: str, now: datetime, shown_filter: dict[str, Any]
) -> Callable[[Connection], Plan | int]:
    """A write job: start a job (its Plan), or return the id of the job already running on the trigger."""

    def job(connection: Connection) -> Plan | int:
        def note(result: str, target: str, **detail: Any) -> None:
            audit.record(
                connection,
                at=now,
                actor=actor,
                action="bulk_replay",
                target=target,
                result=result,
                detail={"filter": shown_filter, "rate": rate, **detail},
            )

        try:
            with connection.begin_nested():
                bulk_id = connection.execute(
                    bulk_replays.insert()
                    .values(
                        trigger_id=f.trigger_id,
                        filter=shown_filter,
                        rate=rate,
                        status="running",
                        created_by=actor,
                        created_at=now,
                    )
                    .returning(bulk_replays.c.id)
                ).scalar_one()
        except IntegrityError as exc:
            if not _is_running_conflict(exc):
                raise
            running = connection.execute(
                select(bulk_replays.c.id).where(
                    bulk_replays.c.trigger_id == f.trigger_id, bulk_replays.c.status == "running"
                )
            ).scalar_one()
            note("replay_in_progress", f"bulk:{running}", running=running)
            return int(running)
        matched, max_id = _matches(connection, f)
        connection.execute(update(bulk_replays).where(bulk_replays.c.id == bulk_id).values(matched=matched))
        note("ok", f"bulk:{bulk_id}", matched=matched)
        return Plan(bulk_id, f, rate, actor, matched, max_id)

    return job


def step(bulk_id: int, request: ReplayRequest) -> Callable[[Connection], ReplayResult | None]:
    """A write job: replay one item of a running job and count it; None (nothing done) once the job stopped."""

    def job(connection: Connection) -> ReplayResult | None:
        status = connection.execute(
            select(bulk_replays.c.status).where(bulk_replays.c.id == bulk_id).with_for_update()
        ).scalar_one()
        if status != "running":
            return None
        result = replay_in(connection, request)
        counter = bulk_replays.c.replayed if result.outcome == "ok" else bulk_replays.c.skipped
        connection.execute(update(bulk_replays).where(bulk_replays.c.id == bulk_id).values({counter: counter + 1}))
        return result

    return job


def page(f: BulkFilter, after_id: int, max_id: int) -> Callable[[Connection], list[int]]:
    """A read job: the next ids to replay, in id order."""

    def job(connection: Connection) -> list[int]:
        query = (
            select(executions.c.id)
            .where(*f.conditions(), executions.c.id > after_id, executions.c.id <= max_id)
            .order_by(executions.c.id)
            .limit(PAGE)
        )
        return list(connection.execute(query).scalars())

    return job


def status_of(bulk_id: int) -> Callable[[Connection], str | None]:
    """A read job: a job's status."""

    def job(connection: Connection) -> str | None:
        query = select(bulk_replays.c.status).where(bulk_replays.c.id == bulk_id)
        return connection.execute(query).scalar_one_or_none()

    return job


def finish(bulk_id: int, status: str, now: datetime, error: str | None = None) -> Callable[[Connection], bool]:
    """A write job: end a running job; at ``done`` whatever was not replayed counts as skipped."""

    def job(connection: Connection) -> bool:
        values: dict[Any, Any] = {"status": status, "finished_at": now, "error": error}
        if status == "done":
            values["skipped"] = bulk_replays.c.matched - bulk_replays.c.replayed
        changed = connection.execute(
            update(bulk_replays).where(bulk_replays.c.id == bulk_id, bulk_replays.c.status == "running").values(values)
        ).rowcount
        return bool(changed)

    return job


def cancel(bulk_id: int, actor: str, now: datetime) -> Callable[[Connection], str | None]:
    """A write job: cancel a running job, audited. Returns the status found (``running`` when it was cancelled)."""

    def job(connection: Connection) -> str | None:
        status = connection.execute(
            select(bulk_replays.c.status).where(bulk_replays.c.id == bulk_id).with_for_update()
        ).scalar_one_or_none()
        if status == "running":
            connection.execute(
                update(bulk_replays).where(bulk_replays.c.id == bulk_id).values(status="cancelled", finished_at=now)
            )
        result = "ok" if status == "running" else ("not_found" if status is None else "not_running")
        audit.record(
            connection,
            at=now,
            actor=actor,
            action="bulk_replay_cancel",
            target=f"bulk:{bulk_id}",
            result=result,
            detail={"status": status},
        )
        return status

    return job


def describe(bulk_id: int, now: datetime, local: frozenset[int]) -> Callable[[Connection], dict[str, Any] | None]:
    """A read job: a job's row with the outcome of its new executions, or None; ``local`` = ids run here."""

    def job(connection: Connection) -> dict[str, Any] | None:
        row = connection.execute(
            select(bulk_replays, triggers.c.name.label("trigger"))
            .join(triggers, triggers.c.id == bulk_replays.c.trigger_id)
            .where(bulk_replays.c.id == bulk_id)
        ).one_or_none()
        if row is None:
            return None
        done = executions.c.status
        progress = connection.execute(
            select(
                func.count(case((done == ExecutionStatus.SUCCEEDED, 1))),
                func.count(case((done.in_((ExecutionStatus.FAILED, ExecutionStatus.FAILED_RETRYABLE)), 1))),
                func.count(case((done.in_((ExecutionStatus.PENDING, ExecutionStatus.RUNNING)), 1))),
                func.max(executions.c.created_at),
            ).where(executions.c.bulk_replay_id == bulk_id)
        ).one()
        found = dict(row._mapping)
        found.pop("trigger_id")
        last = progress[3] or found["created_at"]
        stale_after = max(STALE_AFTER, timedelta(seconds=3 / found["rate"]))
        found.update(
            succeeded=progress[0],
            failed=progress[1],
            pending=progress[2],
            last_progress_at=last,
            stale=found["status"] == "running" and bulk_id not in local and now - last > stale_after,
        )
        return dict(audit.jsonable(found))

    return job
