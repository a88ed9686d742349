"""Store an event once: the insert is a writer job, batched with concurrent requests (group commit).

``store_event`` is the job the group-commit writer runs: insert the event unless its key is taken (``ON CONFLICT
... DO NOTHING`` on the partial unique index, so only that conflict is absorbed and any other integrity error
surfaces), then insert its execution. The writer stores every such job of a batch together (``store_events``): one
multi-row insert per table, however many requests are waiting.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any, Literal

from sqlalchemy import func, select, text, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from redrive.db.lists import by_column
from redrive.db.many import Many, many
from redrive.db.schema import daily_counters, events, executions
from redrive.db.writer import BatchJob
from redrive.destinations.store import seed_rows
from redrive.ingest.prepare import NewEvent
from redrive.observe import rollups
from redrive.queue import parking
from redrive.states import ExecutionStatus


@dataclass(frozen=True, slots=True)
class Stored:
    """What storing an event came to."""

    outcome: Literal["created", "duplicate", "conflict"]
    event_id: int
    execution_id: int | None
    filtered: bool


@dataclass(frozen=True, slots=True)
class _Statements:
    """The ingest statements for one dialect, built once: building a statement costs more than running it."""

    # SQLite's inserts (``db.many.Many.inserted`` writes them for a batch); PostgreSQL's are the statements from
    # arrays below.
    keyed_event: Any  # INSERT ... ON CONFLICT (trigger_id, idempotency_key) DO NOTHING RETURNING id, trigger, key
    unkeyed_event: Any  # INSERT ... RETURNING id
    count: Any  # daily counter upsert, adding the bound value


@cache
def _statements(dialect: str) -> _Statements:
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    keyed = insert(events).on_conflict_do_nothing(
        index_elements=["trigger_id", "idempotency_key"], index_where=text("idempotency_key IS NOT NULL")
    )
    counter = insert(daily_counters)
    return _Statements(
        keyed_event=keyed.returning(events.c.id, events.c.trigger_id, events.c.idempotency_key),
        unkeyed_event=events.insert().returning(events.c.id),
        count=counter.on_conflict_do_update(
            index_elements=["trigger_id", "day", "name"],
            set_={"value": daily_counters.c.value + counter.excluded.value},
        ),
    )


def _event_row(event: NewEvent) -> dict[str, Any]:
    return {
        "trigger_id": event.trigger_id,
        "idempotency_key": event.idempotency_key,
        "body_sha256": event.body_sha256,
        "headers": event.headers,
        "payload": event.payload,
        "filtered": event.filtered,
        "received_at": event.received_at,
    }


# PostgreSQL: a batch's events and their executions in one statement, one round trip (each of the writer's round
# trips is a wait that bounds one process's throughput there), from one array per column. The text never changes
# with the batch's size, so psycopg parses it once and the server prepares it once: a multi-row VALUES list was a
# new, long text per batch size, re-parsed by psycopg and planned again on every batch (about a sixth of the redrive
# process's busy time once). The arrays are named after the events' columns (``_event_row``'s keys,
# ``db.lists.by_column``) and the executions' own; the JSON columns travel as text and are parsed into jsonb by the
# cast. The events go in in the rows' order (``ORDER BY n``); the executions of those made and not filtered follow in
# the same order (a key's executions are numbered in the order their events came, which ordering relies on), each
# matched to its event's row: a keyed event by its key (the batch holds each key once), an unkeyed one by its place
# (its ids, given in the rows' order, ascend with it, as SQLAlchemy's own ``sort_by_parameter_order`` assumes).
_EVENTS_AND_EXECUTIONS = (
    "WITH v AS MATERIALIZED (SELECT * FROM unnest(CAST(:trigger_id AS bigint[]), CAST(:idempotency_key AS text[]), "
    "CAST(:body_sha256 AS text[]), CAST(:headers AS text[]), CAST(:payload AS text[]), CAST(:filtered AS boolean[]), "
    "CAST(:received_at AS timestamptz[]), CAST(:action_kind AS text[]), CAST(:ordering_key AS text[]), "
    "CAST(:destination AS text[])) WITH ORDINALITY AS v(t, k, s, h, p, f, a, x, o, d, n)), "
    "made AS (INSERT INTO events (trigger_id, idempotency_key, body_sha256, headers, payload, filtered, received_at) "
    "SELECT t, k, s, CAST(h AS jsonb), CAST(p AS jsonb), f, a FROM v ORDER BY n {conflict}RETURNING id, trigger_id, "
    "idempotency_key), "
    "paired AS (SELECT made.id AS event_id, v.* FROM {pairing}), "
    "run AS (INSERT INTO executions (event_id, trigger_id, action_kind, status, attempts, run_at, created_at, "
    "updated_at, ordering_key, destination) "
    "SELECT event_id, t, x, 'pending', 0, a, a, a, o, d FROM paired WHERE NOT f ORDER BY n "  # PENDING: due now
    "RETURNING id, event_id) "
    "SELECT paired.event_id, paired.t, paired.k, run.id FROM paired LEFT JOIN run ON run.event_id = paired.event_id "
    "ORDER BY paired.n"
)
_KEYED_EVENTS_AND_EXECUTIONS = text(
    _EVENTS_AND_EXECUTIONS.format(
        conflict="ON CONFLICT (trigger_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING ",
        pairing="made JOIN v ON v.t = made.trigger_id AND v.k = made.idempotency_key",
    )
)
_UNKEYED_EVENTS_AND_EXECUTIONS = text(
    _EVENTS_AND_EXECUTIONS.format(
        conflict="",
        pairing="(SELECT id, row_number() OVER (ORDER BY id) AS m FROM made) AS made JOIN v ON v.n = made.m",
    )
)


def _event_arrays(new: Sequence[NewEvent]) -> dict[str, list[Any]]:
    """The events' arrays of ``_EVENTS_AND_EXECUTIONS`` for ``new``: ``_event_row``'s, by column."""
    return by_column([_event_row(event) for event in new], json=("headers", "payload"))


def _made_with_executions(connection: Connection, new: Sequence[NewEvent], *, keyed: bool) -> list[Any]:
    """PostgreSQL: insert ``new`` (all keyed or all unkeyed) and the executions of those made and not filtered; the
    rows ``(event id, trigger id, key, execution id or None)`` of the events made, in the order of ``new`` (a keyed
    event whose key was taken makes none)."""
    arrays = _event_arrays(new)
    arrays |= {
        "action_kind": [event.action_kind for event in new],
        "ordering_key": [event.ordering_key for event in new],
        "destination": [event.destination for event in new],
    }
    return list(connection.execute(_KEYED_EVENTS_AND_EXECUTIONS if keyed else _UNKEYED_EVENTS_AND_EXECUTIONS, arrays))


def _insert_events(
    connection: Connection, statements: _Statements, new: Sequence[NewEvent], *, keyed: bool
) -> list[Any]:
    """SQLite: insert ``new`` (all keyed or all unkeyed): the rows ``(id, trigger_id, key)`` of the keyed events made
    (a key already taken makes none), or the unkeyed events' ids in the order of ``new`` (the caller pairs them
    strictly). PostgreSQL inserts their executions with them (``_made_with_executions``)."""
    rows = [_event_row(event) for event in new]
    if keyed:
        return _sqlite_insert(connection, statements, "keyed_event", rows)
    return sorted(event_id for (event_id,) in _sqlite_insert(connection, statements, "unkeyed_event", rows))


def _sqlite_insert(connection: Connection, statements: _Statements, name: str, rows: list[dict[str, Any]]) -> list[Any]:
    """SQLite: insert ``rows`` with the statement ``name`` of ``_Statements``, their values handed to the driver
    (``db.many``); what its RETURNING gives. The statement is compiled for the rows' keys, which one function builds
    for every batch (``_event_row``). The unkeyed events' ids are matched back by order: SQLite
    inserts the rows of a VALUES list in turn, each with the next id (one more than the largest), while RETURNING
    promises no order; hence the caller's sort."""
    return many(connection, f"ingest.{name}", getattr(statements, name), rows[0]).inserted(connection, rows)


_EXECUTION_VALUES = ("event_id", "trigger_id", "action_kind", "at", "ordering_key", "destination", "behind", "blocks")


@cache
def _sqlite_executions_insert() -> Many:
    """SQLite: the executions' INSERT, for ``Many.inserted``: one row of ``_EXECUTION_VALUES`` per execution.

    Each row is made parked when it is ``behind`` an earlier row of its key in the batch, or when its key has a
    holder already stored (``parking.parks_sql``, the rule ``parking.park_in`` applies on PostgreSQL after the
    insert). The holders are read by the INSERT itself, so a parked row is written once and nothing reads them
    before; SQLite reads the whole SELECT of an INSERT into its own table before it writes a row, which is why the
    batch's own order is ``behind``'s to say. A new execution is due at once (``ExecutionStatus.PENDING``), and its
    three times are the one ``at``, converted once (the column type's own conversion).
    """
    parks = parking.parks_sql("v.column2", "v.column5", "v.column8")
    row = ", ".join(["?"] * len(_EXECUTION_VALUES))
    sql = (
        "INSERT INTO executions (event_id, trigger_id, action_kind, status, attempts, run_at, created_at, "  # noqa: S608 (constants and compiled SQL)
        "updated_at, ordering_key, destination, key_waiting) "
        f"SELECT v.column1, v.column2, v.column3, '{ExecutionStatus.PENDING.value}', 0, v.column4, v.column4, "
        "v.column4, v.column5, v.column6, "
        f"CASE WHEN v.column5 IS NULL THEN 0 WHEN v.column7 = 1 OR {parks} THEN 1 ELSE 0 END "
        f"FROM (VALUES ({row})) AS v RETURNING id, event_id"
    )
    at = executions.c.run_at.type.bind_processor(sqlite.dialect())
    return Many(sql, tuple((name, at if name == "at" else None, None) for name in _EXECUTION_VALUES))


def _sqlite_executions(connection: Connection, new: Sequence[tuple[NewEvent, int]]) -> list[Any]:
    """SQLite: make the executions of ``(event, its new id)`` pairs (``_sqlite_executions_insert``); their
    ``(id, event id)`` rows, in no particular order."""
    seen: set[tuple[int, str]] = set()
    rows: list[dict[str, Any]] = []
    for event, event_id in new:
        behind = False
        if event.ordering_key is not None:
            key = (event.trigger_id, event.ordering_key)
            behind = key in seen
            seen.add(key)
        rows.append(
            {
                "event_id": event_id,
                "trigger_id": event.trigger_id,
                "action_kind": event.action_kind,
                "at": event.received_at,
                "ordering_key": event.ordering_key,
                "destination": event.destination,
                "behind": int(behind),
                "blocks": int(event.ordering_blocks),
            }
        )
    return _sqlite_executions_insert().inserted(connection, rows)


@dataclass(frozen=True, slots=True)
class _Original:
    event_id: int
    body_sha256: str
    filtered: bool
    execution_id: int | None


class StoreEvent(BatchJob[Stored]):
    """The writer job that stores an event and its execution, or reports the duplicate it is.

    A batch of them is stored with one multi-row statement per table; see ``store_events``.
    """

    __slots__ = ("event",)

    def __init__(self, event: NewEvent) -> None:
        self.event = event

    @classmethod
    def run_batch(cls, connection: Connection, jobs: Sequence[StoreEvent]) -> list[Stored]:
        """Store the events of ``jobs``, in one pass."""
        return store_events(connection, [job.event for job in jobs])


def store_event(event: NewEvent) -> StoreEvent:
    """A writer job that stores ``event`` and its execution, or reports the duplicate it is."""
    return StoreEvent(event)


def store_events(connection: Connection, batch: Sequence[NewEvent]) -> list[Stored]:
    """Store ``batch`` as if one event after the other: the first holder of a key creates, later ones are duplicates.

    Keyed events go in one ``INSERT ... ON CONFLICT DO NOTHING`` on the partial unique index (so only that
    conflict is absorbed; any other integrity error fails the batch, and the writer reruns its jobs one by one),
    and the rows it returns are matched back by key; a key taken before this batch, or earlier in it, makes a
    duplicate of the original. Executions for the new, unfiltered events go in one more statement, and the stats
    rollups count the new rows in one more (``observe.rollups``).
    """
    statements = _statements(connection.dialect.name)
    first: dict[tuple[int, str], int] = {}  # (trigger, key) -> index of its first event in the batch
    keyed: list[int] = []
    unkeyed: list[int] = []
    repeats: list[int] = []
    for index, event in enumerate(batch):
        if event.idempotency_key is None:
            unkeyed.append(index)
        elif (event.trigger_id, event.idempotency_key) in first:
            repeats.append(index)
        else:
            first[(event.trigger_id, event.idempotency_key)] = index
            keyed.append(index)
    created: dict[int, int] = {}  # index -> new event id
    execution_of: dict[int, int] = {}  # event id -> execution id
    postgres = connection.dialect.name == "postgresql"
    if keyed and postgres:
        for event_id, trigger_id, key, execution_id in _made_with_executions(
            connection, [batch[i] for i in keyed], keyed=True
        ):
            created[first[(trigger_id, key)]] = event_id
            if execution_id is not None:
                execution_of[event_id] = execution_id
    elif keyed:
        for event_id, trigger_id, key in _insert_events(connection, statements, [batch[i] for i in keyed], keyed=True):
            created[first[(trigger_id, key)]] = event_id
    if unkeyed and postgres:
        made = _made_with_executions(connection, [batch[i] for i in unkeyed], keyed=False)
        for index, (event_id, _, _, execution_id) in zip(unkeyed, made, strict=True):
            created[index] = event_id
            if execution_id is not None:
                execution_of[event_id] = execution_id
    elif unkeyed:
        ids = _insert_events(connection, statements, [batch[i] for i in unkeyed], keyed=False)
        created.update(zip(unkeyed, ids, strict=True))
    runnable = [i for i in created if not batch[i].filtered]
    if runnable and not postgres:  # SQLite: one INSERT, whose rows decide their own parking
        made = _sqlite_executions(connection, [(batch[i], created[i]) for i in runnable])
        execution_of = {event_id: execution_id for execution_id, event_id in made}
    if runnable and postgres:
        _park(connection, [batch[i] for i in runnable], [execution_of[created[i]] for i in runnable])
    seeds = {batch[i].destination: batch[i].seed for i in runnable if batch[i].seed is not None}
    if seeds:  # templated destinations of limited triggers: their rows before the first claim (policy.Seed)
        seed_rows(connection, seeds, max(batch[i].received_at for i in runnable))
    if created:
        new = [batch[i] for i in created]
        rollups.stored(connection, [(e.trigger_id, e.action_kind, e.received_at, e.filtered) for e in new])
    results: list[Stored | None] = [None] * len(batch)
    for index, event_id in created.items():
        results[index] = Stored("created", event_id, execution_of.get(event_id), batch[index].filtered)
    taken = [i for i in keyed if i not in created] + repeats
    if taken:
        _duplicates(connection, statements, batch, taken, first, created, execution_of, results)
    assert all(result is not None for result in results)
    return results  # type: ignore[return-value]


def _park(connection: Connection, new: Sequence[NewEvent], ids: Sequence[int]) -> None:
    """PostgreSQL: park the new ordered executions whose key is held (``redrive.queue.parking``), at the writer
    transaction's end under their keys' locks; nothing when none is ordered."""
    ordered = [execution_id for event, execution_id in zip(new, ids, strict=True) if event.ordering_key is not None]
    if ordered:
        keys = [(e.trigger_id, e.ordering_key) for e in new if e.ordering_key is not None]
        blocking = sorted({event.trigger_id for event in new if event.ordering_blocks})
        parking.park_under_keys(connection, keys, ordered, blocking)


def _duplicates(
    connection: Connection,
    statements: _Statements,
    batch: Sequence[NewEvent],
    taken: list[int],
    first: dict[tuple[int, str], int],
    created: dict[int, int],
    execution_of: dict[int, int],
    results: list[Stored | None],
) -> None:
    """Answer each event whose key was taken with its original, and count duplicates and conflicts."""
    originals: dict[tuple[int, str], _Original] = {}
    for key, index in first.items():
        if index in created:
            event = batch[index]
            event_id = created[index]
            originals[key] = _Original(event_id, event.body_sha256, event.filtered, execution_of.get(event_id))
    missing = {(batch[i].trigger_id, batch[i].idempotency_key) for i in taken} - originals.keys()
    if missing:
        originals.update(_stored_originals(connection, missing))
    counts: Counter[tuple[int, date, str]] = Counter()
    for index in taken:
        event = batch[index]
        assert event.idempotency_key is not None
        original = originals[(event.trigger_id, event.idempotency_key)]
        same_body = original.body_sha256 == event.body_sha256
        counts[(event.trigger_id, event.received_at.date(), "duplicates" if same_body else "key_conflicts")] += 1
        outcome: Literal["duplicate", "conflict"] = (
            "duplicate" if same_body or event.accept_key_conflicts else "conflict"
        )
        results[index] = Stored(outcome, original.event_id, original.execution_id, original.filtered)
    connection.execute(
        statements.count,
        [{"trigger_id": t, "day": day, "name": name, "value": n} for (t, day, name), n in counts.items()],
    )


def _stored_originals(connection: Connection, keys: set[tuple[int, str | None]]) -> dict[tuple[int, str], _Original]:
    first_execution = select(func.min(executions.c.id)).where(executions.c.event_id == events.c.id).scalar_subquery()
    rows = connection.execute(
        select(
            events.c.id,
            events.c.trigger_id,
            events.c.idempotency_key,
            events.c.body_sha256,
            events.c.filtered,
            first_execution,
        ).where(tuple_(events.c.trigger_id, events.c.idempotency_key).in_(sorted(keys)))
    ).all()
    found = {(r[1], r[2]): _Original(r[0], r[3], r[4], r[5]) for r in rows}
    if len(found) != len(keys):  # the conflicting row must be there: refuse to guess (a 500, logged)
        raise RuntimeError(f"an idempotency key conflicted but its event was not found: {sorted(keys - found.keys())}")
    return found
