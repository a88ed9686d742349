"""Reading destinations: the list (every one declared or seen) and one with its transitions, for the API, the CLI
and the dashboard. Counts of pending and running executions come from ix_executions_destination (an index range
per destination, never a table scan)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from redrive.db.schema import breaker_transitions, destinations, executions
from redrive.destinations.breaker import OPEN, Destination
from redrive.destinations.store import describe, load
from redrive.states import ExecutionStatus

MAX_TRANSITIONS = 200


def _counts(connection: Connection, names: list[str] | None) -> dict[tuple[str, str], int]:
    """Pending and running executions by (destination, status): of ``names``, or (None) of every destination.

    Every destination's are counted in one statement that binds no name: a list of every destination seen can be
    far longer than a statement's parameters may be (PostgreSQL's protocol takes 65,535), and the queue's rows of
    all of them are what it reads either way."""
    if names is not None and not names:
        return {}
    queued = executions.c.status.in_([ExecutionStatus.PENDING, ExecutionStatus.RUNNING])
    which = executions.c.destination.in_(names) if names is not None else executions.c.destination.is_not(None)
    query = (
        select(executions.c.destination, executions.c.status, func.count())
        .where(which, queued)
        .group_by(executions.c.destination, executions.c.status)
    )
    return {(row[0], row[1]): row[2] for row in connection.execute(query)}


def _view(d: Destination, counts: dict[tuple[str, str], int], now: datetime) -> dict[str, Any]:
    view = describe(d, now)
    pending = counts.get((d.name, ExecutionStatus.PENDING), 0)
    held = d.forced == OPEN or (d.state == OPEN and d.forced is None)
    view.update(pending=pending, held=pending if held else 0, running=counts.get((d.name, ExecutionStatus.RUNNING), 0))
    return view


def list_destinations(declared: Iterable[str], now: datetime) -> Callable[[Connection], list[dict[str, Any]]]:
    """A read job: every destination with a row, and those ``declared`` without one yet (closed), by name."""

    def job(connection: Connection) -> list[dict[str, Any]]:
        rows = {d.name: d for d in map(load, connection.execute(select(destinations)))}
        for name in declared:
            rows.setdefault(name, Destination.new(name, now))
        counts = _counts(connection, None)
        return [_view(rows[name], counts, now) for name in sorted(rows)]

    return job


def get_destination(name: str, declared: bool, now: datetime) -> Callable[[Connection], dict[str, Any] | None]:
    """A read job: one destination (None when it has no row and is not ``declared``) with its latest transitions."""

    def job(connection: Connection) -> dict[str, Any] | None:
        row = connection.execute(select(destinations).where(destinations.c.name == name)).one_or_none()
        if row is None and not declared:
            return None
        d = load(row) if row is not None else Destination.new(name, now)
        view = _view(d, _counts(connection, [name]), now)
        query = (
            select(
                breaker_transitions.c.at,
                breaker_transitions.c.from_state,
                breaker_transitions.c.to_state,
                breaker_transitions.c.reason,
                breaker_transitions.c.actor,
            )
            .where(breaker_transitions.c.destination == name)
            .order_by(breaker_transitions.c.at.desc(), breaker_transitions.c.id.desc())
            .limit(MAX_TRANSITIONS)
        )
        view["transitions"] = [{**row._mapping, "at": row.at.isoformat()} for row in connection.execute(query)]
        return view

    return job
