"""Reading executions: the list (newest first, cursor-paginated) and one execution with its attempts and event."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, select
from sqlalchemy.engine import Connection

from redrive.db.schema import attempts, events, executions, triggers
from redrive.destinations.holding import NOT_CHARGED
from redrive.queue.ordering import Policy, describe, key_head

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    """What to list; every field optional."""

    trigger: str | None = None
    status: str | None = None
    kind: str | None = None
    code: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None  # the cursor: rows older than this id
    limit: int = 50
    fingerprint: str | None = None  # an error group: served by ix_executions_fingerprint, never a table scan


_COLUMNS = (
    executions.c.id,
    triggers.c.name.label("trigger"),
    executions.c.event_id,
    executions.c.action_kind.label("kind"),
    executions.c.status,
    executions.c.attempts.label("attempt_count"),
    executions.c.error_category,
    executions.c.error_code,
    executions.c.error_message,
    executions.c.run_at,
    executions.c.created_at,
    executions.c.updated_at,
    executions.c.finished_at,
    executions.c.replay_of,
    executions.c.fingerprint,
    executions.c.ordering_key,
)


def _row(row: Row[*tuple[Any, ...]]) -> dict[str, Any]:
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in row._mapping.items()}


def executions_query(f: ExecutionFilter) -> Select[Any]:
    """The SELECT behind the list: executions matching ``f``, newest first, at most ``f.limit``."""
    query = select(*_COLUMNS).join(triggers, triggers.c.id == executions.c.trigger_id)
    if f.trigger is not None:
        query = query.where(triggers.c.name == f.trigger)
    if f.status is not None:
        query = query.where(executions.c.status == f.status)
    if f.kind is not None:
        query = query.where(executions.c.action_kind == f.kind)
    if f.code is not None:
        query = query.where(executions.c.error_code == f.code)
    if f.fingerprint is not None:
        query = query.where(executions.c.fingerprint == f.fingerprint)
    if f.since is not None:
        query = query.where(executions.c.created_at >= f.since)
    if f.until is not None:
        query = query.where(executions.c.created_at < f.until)
    if f.before_id is not None:
        query = query.where(executions.c.id < f.before_id)
    return query.order_by(executions.c.id.desc()).limit(min(f.limit, MAX_PAGE))


def _attempt(row: Row[*tuple[Any, ...]]) -> dict[str, Any]:
    """An attempt as shown; one held by an open breaker says so (it did not count towards ``max_attempts``)."""
    attempt = _row(row)
    attempt["note"] = None if attempt["charged"] else NOT_CHARGED
    return attempt


def list_executions(f: ExecutionFilter) -> Callable[[Connection], list[dict[str, Any]]]:
    """A read job: executions matching ``f``, newest first, at most ``f.limit``."""

    def job(connection: Connection) -> list[dict[str, Any]]:
        return [_row(row) for row in connection.execute(executions_query(f))]

    return job


def get_execution(
    execution_id: int, policies: dict[str, Policy] | None = None
) -> Callable[[Connection], dict[str, Any] | None]:
    """A read job: one execution with its attempts (oldest first), its event and, when it has an ordering key, where
    it stands in its key (``policies``: each ordered trigger's ``on_dead_letter``, by name), or None."""

    def job(connection: Connection) -> dict[str, Any] | None:
        row = connection.execute(
            select(*_COLUMNS, executions.c.trigger_id, executions.c.uncharged)
            .join(triggers, triggers.c.id == executions.c.trigger_id)
            .where(executions.c.id == execution_id)
        ).one_or_none()
        if row is None:
            return None
        result = _row(row)
        del result["trigger_id"]
        result["ordering"] = None
        if row.ordering_key is not None:
            policy = (policies or {}).get(row.trigger)
            head = key_head(connection, execution_id, row.trigger_id, row.ordering_key, policy)
            result["ordering"] = describe(row.status, row.ordering_key, policy, head)
        result["attempts"] = [
            _attempt(a)
            for a in connection.execute(
                select(
                    attempts.c.number,
                    attempts.c.started_at,
                    attempts.c.finished_at,
                    attempts.c.duration_ms,
                    attempts.c.outcome,
                    attempts.c.error_category,
                    attempts.c.error_code,
                    attempts.c.message,
                    attempts.c.detail,
                    attempts.c.excerpt,
                    attempts.c.request,
                    attempts.c.charged,
                )
                .where(attempts.c.execution_id == execution_id)
                .order_by(attempts.c.number)
            )
        ]
        event = connection.execute(
            select(
                events.c.id,
                events.c.idempotency_key,
                events.c.received_at,
                events.c.headers,
                events.c.payload,
                events.c.body_sha256,
            ).where(events.c.id == row.event_id)
        ).one()
        result["event"] = _row(event)
        return result

    return job


def error_context(execution: dict[str, Any]) -> dict[str, Any] | None:
    """What the last failed attempt left behind: code, message and the facts (status, exit code, SMTP reply)."""
    failed = [a for a in execution["attempts"] if a["outcome"] != "succeeded"]
    if not failed:
        return None
    last = failed[-1]
    return {
        "attempt": last["number"],
        "category": last["error_category"],
        "code": last["error_code"],
        "message": last["message"],
        "detail": last["detail"],
        "excerpt": last["excerpt"],
    }
