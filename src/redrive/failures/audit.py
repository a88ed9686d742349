"""The audit log: who did what to which target, when, with which parameters, and how it came out.

Rows are written inside the transaction of the change they describe (``record``), so a change and its audit row
commit or vanish together, and a refused attempt leaves its row as well. ``list_audit`` reads them newest first.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from redrive.db.schema import audit_log

MAX_PAGE = 500


def jsonable(value: Any) -> Any:
    """``value`` with datetimes as ISO 8601 strings, ready for a JSON column."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):  # str(): SQLAlchemy's labels are str subclasses, which orjson refuses as keys
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


def record(
    connection: Connection,
    *,
    at: datetime,
    actor: str,
    action: str,
    target: str | None,
    result: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Write one audit row in the caller's transaction."""
    connection.execute(
        audit_log.insert().values(
            at=at, actor=actor, action=action, target=target, detail=jsonable(detail or {}), result=result
        )
    )


def record_job(
    *,
    at: datetime,
    actor: str,
    action: str,
    target: str | None,
    result: str,
    detail: dict[str, Any] | None = None,
) -> Callable[[Connection], None]:
    """A write job holding nothing but one audit row (for refusals decided before any statement runs)."""

    def job(connection: Connection) -> None:
        record(connection, at=at, actor=actor, action=action, target=target, result=result, detail=detail)

    return job


def list_audit(limit: int = 50, before: int | None = None) -> Callable[[Connection], list[dict[str, Any]]]:
    """A read job: audit rows newest first, at most ``limit``, older than id ``before`` when given."""

    def job(connection: Connection) -> list[dict[str, Any]]:
        query = select(
            audit_log.c.id,
            audit_log.c.at,
            audit_log.c.actor,
            audit_log.c.action,
            audit_log.c.target,
            audit_log.c.result,
            audit_log.c.detail,
        )
        if before is not None:
            query = query.where(audit_log.c.id < before)
        rows = connection.execute(query.order_by(audit_log.c.id.desc()).limit(min(limit, MAX_PAGE)))
        return [jsonable(dict(row._mapping)) for row in rows]

    return job
