"""Reading destinations: the list a page at a time (every one declared or seen, those needing attention first:
``redrive.destinations.paging``) and one with its transitions, for the API, the CLI and the dashboard. Counts of
pending and running executions come from ix_executions_destination (an index range per destination shown, never a
table scan)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, true
from sqlalchemy.engine import Connection

from redrive.db.schema import breaker_transitions, destinations, executions
from redrive.destinations.breaker import CLOSED, OPEN, Destination
from redrive.destinations.paging import CLOSED_RANK, PageQuery, attention, cut, encode, summary
from redrive.destinations.store import describe, load
from redrive.states import ExecutionStatus

MAX_TRANSITIONS = 200


def _counts(connection: Connection, names: list[str]) -> dict[tuple[str, str], int]:
    """Pending and running executions of ``names`` (a page's: at most 500 bound) by (destination, status)."""
    if not names:
        return {}
    queued = executions.c.status.in_([ExecutionStatus.PENDING, ExecutionStatus.RUNNING])
    query = (
        select(executions.c.destination, executions.c.status, func.count())
        .where(executions.c.destination.in_(names), queued)
        .group_by(executions.c.destination, executions.c.status)
    )
    return {(row[0], row[1]): row[2] for row in connection.execute(query)}


def _last_transitions(connection: Connection, names: list[str]) -> dict[str, datetime]:
    """When each of ``names`` (a page's) last changed state, for those that ever did: the end of each name's range of
    ix_breaker_transitions_destination_at."""
    if not names:
        return {}
    query = (
        select(breaker_transitions.c.destination, func.max(breaker_transitions.c.at))
        .where(breaker_transitions.c.destination.in_(names))
        .group_by(breaker_transitions.c.destination)
    )
    return {row[0]: row[1] for row in connection.execute(query)}


def _view(
    d: Destination, counts: dict[tuple[str, str], int], last_transition: datetime | None, now: datetime
) -> dict[str, Any]:
    view = describe(d, now)
    pending = counts.get((d.name, ExecutionStatus.PENDING), 0)
    held = d.forced == OPEN or (d.state == OPEN and d.forced is None)
    view.update(pending=pending, held=pending if held else 0, running=counts.get((d.name, ExecutionStatus.RUNNING), 0))
    view["last_transition_at"] = last_transition.isoformat() if last_transition is not None else None
    return view


def restricted_rows(after: str | None = None) -> Select[Any]:
    """The restricted rows by name, from ix_destinations_restricted (every one of ranks 0 to 2 is among them, with a
    few closed ones: limited, ramping or paced), each with ``later``: whether its name comes after ``after``."""
    later = destinations.c.name > after if after is not None else true()
    return (
        select(destinations, later.label("later"))
        .where(destinations.c.restricted.is_(True))
        .order_by(destinations.c.name)
    )


def closed_rows(after: str | None, need: int) -> Select[Any]:
    """The next ``need`` closed rows, not forced, after the name ``after``: a walk of the primary key that steps over
    the few rows of the other ranks, never a sort of the table."""
    query = select(destinations).where(destinations.c.state == CLOSED, destinations.c.forced.is_(None))
    if after is not None:
        query = query.where(destinations.c.name > after)
    return query.order_by(destinations.c.name).limit(need)


def _summary(connection: Connection, restricted: list[Destination]) -> dict[str, int]:
    """Every destination by state (``paging.summary``): the attention ranks from the ``restricted`` rows the page
    read, the closed ones from one count of the table. The count reads an index entry per destination (the current
    state of each, not history: no rollup holds it); with 66,000 it took 0.8 ms on SQLite and 3.6 ms on PostgreSQL,
    where a GROUP BY by state took 21 and 11 ms."""
    rows = connection.execute(select(func.count()).select_from(destinations)).scalar_one()
    return summary(restricted, rows)


def _page(connection: Connection, restricted: list[tuple[Destination, bool]], query: PageQuery) -> list[Destination]:
    """The page's destinations in order, one more than it shows when another page follows: the attention ranks from
    the ``restricted`` rows, then the closed ones."""
    page = attention(restricted, query)
    need = query.limit + 1 - len(page)
    if need <= 0 or CLOSED_RANK not in query.ranks:
        return page
    return page + [load(row) for row in connection.execute(closed_rows(query.closed_after, need))]


def list_destinations(now: datetime, query: PageQuery) -> Callable[[Connection], dict[str, Any]]:
    """A read job: one page of destinations, those needing attention first (``redrive.destinations.paging``), with
    ``next_cursor`` (None on the last page) and the ``summary`` of every destination. Every destination known up
    front has a row from start-up (``store.declare``), so the table is the whole list.

    No statement returns more rows than the page shows, but the read of the restricted ones (a few, from their
    index): the next closed rows by name, the queue's counts and the last transitions of the page's names, one count
    of the table."""

    def job(connection: Connection) -> dict[str, Any]:
        read = connection.execute(restricted_rows(query.attention_after))
        restricted = [(load(row), bool(row.later)) for row in read]
        shown, following = cut(_page(connection, restricted, query), query.limit)
        names = [d.name for d in shown]
        counts, last = _counts(connection, names), _last_transitions(connection, names)
        return {
            "items": [_view(d, counts, last.get(d.name), now) for d in shown],
            "next_cursor": encode(following) if following is not None else None,
            "summary": _summary(connection, [d for d, _ in restricted]),
        }

    return job


def get_destination(name: str, now: datetime) -> Callable[[Connection], dict[str, Any] | None]:
    """A read job: one destination (None when it has no row: neither declared nor seen) with its latest
    transitions."""

    def job(connection: Connection) -> dict[str, Any] | None:
        row = connection.execute(select(destinations).where(destinations.c.name == name)).one_or_none()
        if row is None:
            return None
        view = _view(load(row), _counts(connection, [name]), _last_transitions(connection, [name]).get(name), now)
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
