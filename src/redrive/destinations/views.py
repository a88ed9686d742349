"""Reading destinations: the list a page at a time (every one declared or seen, those needing attention first:
``redrive.destinations.paging``) and one with its transitions, for the API, the CLI and the dashboard. Counts of
pending and running executions come from ix_executions_destination (an index range per destination shown, never a
table scan)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, text, true
from sqlalchemy.engine import Connection

from redrive.db.schema import breaker_transitions, destinations, executions
from redrive.destinations.breaker import CLOSED, OPEN, Destination
from redrive.destinations.paging import CLOSED_RANK, PageQuery, attention, cut, encode, summary
from redrive.destinations.store import describe, load
from redrive.states import ExecutionStatus

MAX_TRANSITIONS = 200
NAMES_PER_STATEMENT = 1000
"""The most names one statement binds: PostgreSQL's protocol takes 65,535 parameters, and the declared destinations
are as many as the trigger file names. More than a page holds (501), so sorting by chunks (``_first_by_name``)
always ends."""


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


def _chunks(names: Sequence[str]) -> list[Sequence[str]]:
    return [names[start : start + NAMES_PER_STATEMENT] for start in range(0, len(names), NAMES_PER_STATEMENT)]


def _unrecorded(connection: Connection, declared: Sequence[str]) -> list[str]:
    """The ``declared`` names that have no row yet."""
    recorded: set[str] = set()
    for chunk in _chunks(declared):
        recorded.update(connection.execute(select(destinations.c.name).where(destinations.c.name.in_(chunk))).scalars())
    return [name for name in declared if name not in recorded]


def _first_by_name(connection: Connection, names: Sequence[str], after: str | None, need: int) -> list[str]:
    """The first ``need`` of ``names`` after ``after``, in the database's order of names (the one ``closed_rows``
    walks): the database sorts them, ``NAMES_PER_STATEMENT`` at a time, then what each chunk kept, until one
    statement holds them all."""
    while True:
        chunks = _chunks(names)
        names = [name for chunk in chunks for name in _sorted_by_name(connection, chunk, after, need)]
        if len(chunks) <= 1:
            return names


def _sorted_by_name(connection: Connection, names: Sequence[str], after: str | None, need: int) -> list[str]:
    # column1: the name SQLite and PostgreSQL both give a VALUES list's column (SQLite takes no alias list).
    params: dict[str, Any] = {f"n{i}": name for i, name in enumerate(names)}
    where = " WHERE column1 > :after" if after is not None else ""
    listed = ", ".join(f"(:n{i})" for i in range(len(names)))
    query = text(f"SELECT column1 FROM (VALUES {listed}) AS names{where} ORDER BY column1 LIMIT :need")  # noqa: S608 (placeholders only)
    return list(connection.execute(query, {**params, "after": after, "need": need}).scalars())


def _summary(connection: Connection, restricted: list[Destination], unrecorded: int) -> dict[str, int]:
    """Every destination by state (``paging.summary``): the attention ranks from the ``restricted`` rows the page
    read, the closed ones from one count of the table. The count reads an index entry per destination (the current
    state of each, not history: no rollup holds it); with 66,000 it took 0.8 ms on SQLite and 3.6 ms on PostgreSQL,
    where a GROUP BY by state took 21 and 11 ms."""
    rows = connection.execute(select(func.count()).select_from(destinations)).scalar_one()
    return summary(restricted, rows, unrecorded)


def _page(
    connection: Connection,
    restricted: list[tuple[Destination, bool]],
    unrecorded: list[str],
    query: PageQuery,
    now: datetime,
) -> list[Destination]:
    """The page's destinations in order, one more than it shows when another page follows: the attention ranks from
    the ``restricted`` rows, then the closed ones, among which the ``unrecorded`` declared names by name."""
    page = attention(restricted, query)
    need = query.limit + 1 - len(page)
    if need <= 0 or CLOSED_RANK not in query.ranks:
        return page
    rows = {d.name: d for d in map(load, connection.execute(closed_rows(query.closed_after, need)))}
    if not unrecorded:
        return page + list(rows.values())
    order = _first_by_name(connection, [*unrecorded, *rows], query.closed_after, need)
    return page + [rows.get(name) or Destination.new(name, now) for name in order]


def list_destinations(
    declared: Sequence[str], now: datetime, query: PageQuery
) -> Callable[[Connection], dict[str, Any]]:
    """A read job: one page of destinations, those needing attention first (``redrive.destinations.paging``), with
    ``next_cursor`` (None on the last page) and the ``summary`` of every destination. ``declared`` are the
    destinations known up front; those without a row yet show as closed.

    No statement returns more rows than the page shows, but the read of the restricted ones (a few, from their
    index): the next closed rows by name, the declared names that have a row, the queue's counts and the last
    transitions of the page's names, one count of the table."""

    def job(connection: Connection) -> dict[str, Any]:
        read = connection.execute(restricted_rows(query.attention_after))
        restricted = [(load(row), bool(row.later)) for row in read]
        unrecorded = _unrecorded(connection, declared)
        shown, following = cut(_page(connection, restricted, unrecorded, query, now), query.limit)
        names = [d.name for d in shown]
        counts, last = _counts(connection, names), _last_transitions(connection, names)
        return {
            "items": [_view(d, counts, last.get(d.name), now) for d in shown],
            "next_cursor": encode(following) if following is not None else None,
            "summary": _summary(connection, [d for d, _ in restricted], len(unrecorded)),
        }

    return job


def get_destination(name: str, declared: bool, now: datetime) -> Callable[[Connection], dict[str, Any] | None]:
    """A read job: one destination (None when it has no row and is not ``declared``) with its latest transitions."""

    def job(connection: Connection) -> dict[str, Any] | None:
        row = connection.execute(select(destinations).where(destinations.c.name == name)).one_or_none()
        if row is None and not declared:
            return None
        d = load(row) if row is not None else Destination.new(name, now)
        view = _view(d, _counts(connection, [name]), _last_transitions(connection, [name]).get(name), now)
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
