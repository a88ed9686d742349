"""Ingest batches on both databases: many events stored in one pass answer exactly as if stored one by one."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import select, text

from redrive.db.database import Database
from redrive.db.schema import events, executions
from redrive.ingest.prepare import NewEvent, prepare
from redrive.ingest.store import store_event, store_events
from redrive.observe.redaction import Redactor
from redrive.triggers.config import parse_config
from redrive.triggers.runtime import sync_triggers

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = parse_config(
    """
triggers:
  - name: strict
    action: {kind: command, argv: ["true"]}
  - name: lenient
    source: {on_key_conflict: accept}
    action: {kind: command, argv: ["true"]}
  - name: picky
    source: {filter: "payload.keep == true"}
    action: {kind: command, argv: ["true"]}
  - name: ordered
    action: {kind: command, argv: ["true"]}
    ordering: {key: "{{ payload.k }}"}
"""
)


@pytest.fixture
def db(db_url: str):
    database = Database(db_url)
    database.start()
    yield database
    database.close()


@pytest.fixture
def ids(db: Database) -> dict[str, int]:
    return db.write_sync(lambda c: sync_triggers(c, CONFIG, T0))


def event(ids: dict[str, int], trigger: str, key: str | None, body: bytes = b"{}") -> NewEvent:
    config = next(t for t in CONFIG.triggers if t.name == trigger)
    return prepare(config, ids[trigger], body=body, headers={}, received_at=T0, redactor=Redactor(), key=key)


def counters(db: Database) -> dict[str, int]:
    rows = db.read_sync(lambda c: c.execute(text("SELECT name, sum(value) FROM daily_counters GROUP BY name")).all())
    return {name: int(value) for name, value in rows}


def test_a_batch_answers_like_one_event_after_the_other(db: Database, ids: dict[str, int]) -> None:
    earlier = db.write_sync(store_event(event(ids, "strict", "old")))
    batch = [
        event(ids, "strict", "a"),
        event(ids, "strict", None),
        event(ids, "strict", "a"),  # the same key and body, earlier in this batch: a duplicate of the first
        event(ids, "strict", "a", b'{"other": 1}'),  # the same key, another body: a conflict
        event(ids, "lenient", "a", b"[1]"),  # the same key under another trigger is another event
        event(ids, "lenient", "a", b"[2]"),  # which accepts conflicts as duplicates
        event(ids, "strict", "old"),  # a key taken before this batch
        event(ids, "strict", None, b"[]"),
        event(ids, "picky", "f", b'{"keep": false}'),  # filtered: stored, no execution
    ]
    stored = db.write_sync(lambda connection: store_events(connection, batch))

    outcomes = [s.outcome for s in stored]
    assert outcomes == [
        "created",
        "created",
        "duplicate",
        "conflict",
        "created",
        "duplicate",
        "duplicate",
        "created",
        "created",
    ]
    first_a, unkeyed, duplicate, conflict, lenient, lenient_again, old, unkeyed_2, filtered = stored
    assert (duplicate.event_id, duplicate.execution_id) == (first_a.event_id, first_a.execution_id)
    assert (conflict.event_id, conflict.execution_id) == (first_a.event_id, first_a.execution_id)
    assert (lenient_again.event_id, lenient_again.execution_id) == (lenient.event_id, lenient.execution_id)
    assert (old.event_id, old.execution_id) == (earlier.event_id, earlier.execution_id)
    assert filtered.filtered
    assert filtered.execution_id is None
    created = [first_a, unkeyed, lenient, unkeyed_2, filtered]
    assert len({s.event_id for s in created}) == 5

    # Each new event's execution is its own, and each response names rows that exist with the right key.
    rows = db.read_sync(
        lambda c: c.execute(
            text("SELECT e.id, e.idempotency_key, x.id FROM events e LEFT JOIN executions x ON x.event_id = e.id")
        ).all()
    )
    by_event = {event_id: (key, execution_id) for event_id, key, execution_id in rows}
    assert len(by_event) == 6  # five new, one earlier
    for stored_event, key in zip(created, ["a", None, "a", None, "f"], strict=True):
        assert by_event[stored_event.event_id] == (key, stored_event.execution_id)
    assert counters(db) == {"duplicates": 2, "key_conflicts": 2}  # the lenient trigger's conflict counts too


def test_concurrent_jobs_of_one_batch_each_get_their_own_answer(db: Database, ids: dict[str, int]) -> None:
    async def burst() -> list:
        jobs = [event(ids, "strict", f"k{n % 20}", b"[%d]" % (n % 40)) for n in range(80)]
        return await asyncio.gather(*(db.write(store_event(job)) for job in jobs))

    stored = asyncio.run(burst())
    firsts = {n % 20: stored[n] for n in range(20)}
    for n, result in enumerate(stored):
        if n < 20:
            assert result.outcome == "created"
            continue
        assert (result.event_id, result.execution_id) == (firsts[n % 20].event_id, firsts[n % 20].execution_id)
        assert result.outcome == ("duplicate" if n % 40 == (n % 20) else "conflict")
    assert db.read_sync(lambda c: c.execute(text("SELECT count(*) FROM executions")).scalar_one()) == 20


def test_a_failing_event_fails_alone_and_its_neighbours_are_stored(db: Database, ids: dict[str, int]) -> None:
    # A trigger id that does not exist breaks the foreign key: an integrity error that is not the key's.
    broken = event(ids, "strict", "broken")
    broken = NewEvent(**{**{f: getattr(broken, f) for f in NewEvent.__slots__}, "trigger_id": 999_999})

    async def together() -> list:
        jobs = [event(ids, "strict", "good-1"), broken, event(ids, "strict", None)]
        return await asyncio.gather(*(db.write(store_event(job)) for job in jobs), return_exceptions=True)

    good, bad, unkeyed = asyncio.run(together())
    assert isinstance(bad, Exception)
    assert "foreign key" in str(bad).lower()
    assert (good.outcome, unkeyed.outcome) == ("created", "created")
    keys = db.read_sync(lambda c: c.execute(text("SELECT idempotency_key FROM events ORDER BY id")).scalars().all())
    assert keys == ["good-1", None] or keys == [None, "good-1"]


def test_batches_of_any_size_store_their_documents_exactly(db: Database, ids: dict[str, int]) -> None:
    """Payloads and headers come back as sent (nested, non-ASCII, JSON null) from batches of 1, 3 and 17 keyed
    events."""
    sent: dict[str, object] = {}
    for size in (1, 3, 17):
        batch = []
        for n in range(size):
            payload = {"n": n, "name": "Zoë 東京", "nested": {"list": [1, None, {"x": "y"}]}, "nothing": None}
            body = json.dumps(payload).encode()
            one = event(ids, "strict", f"size-{size}-{n}", body)
            one = NewEvent(**{**{f: getattr(one, f) for f in NewEvent.__slots__}, "headers": {"x-n": f"{n}"}})
            sent[f"size-{size}-{n}"] = (payload, {"x-n": f"{n}"})
            batch.append(one)
        stored = db.write_sync(lambda connection, batch=batch: store_events(connection, batch))
        assert [s.outcome for s in stored] == ["created"] * size
    rows = db.read_sync(lambda c: c.execute(text("SELECT idempotency_key, payload, headers FROM events")).all())
    documents = {key: (_json(payload), _json(headers)) for key, payload, headers in rows}
    assert documents == sent


def _json(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value


def test_each_unkeyed_event_of_a_batch_gets_its_own_row(db: Database, ids: dict[str, int]) -> None:
    """Unkeyed events carry nothing to match the returned ids by but their order: each answer names the row that
    holds its own document (any JSON: scalars, null, arrays) and the execution made for it."""
    documents: list[object] = [7, "text", None, [1, "two"], {"n": 4, "name": "Zoë"}, True, 2.5, {}, []]
    batch = [event(ids, "strict", None, json.dumps(document).encode()) for document in documents]
    stored = db.write_sync(lambda connection: store_events(connection, batch))

    assert [s.outcome for s in stored] == ["created"] * len(documents)
    query = select(events.c.id, events.c.payload, executions.c.id).join(
        executions, executions.c.event_id == events.c.id
    )  # through the column's type: each database's JSON comes back as Python values
    rows = db.read_sync(lambda c: c.execute(query).all())
    by_event = {event_id: (payload, execution_id) for event_id, payload, execution_id in rows}
    assert [by_event[s.event_id] for s in stored] == [
        (d, s.execution_id) for d, s in zip(documents, stored, strict=True)
    ]


def test_a_batch_larger_than_one_statement_parks_every_row_behind_its_keys_first(
    db: Database, ids: dict[str, int]
) -> None:
    """5,000 ordered events over 7 keys in one batch (on SQLite, whose statement binds 32,766 values at most, two
    INSERTs of executions): each event gets its own execution, each key's first row leads, and every later row parks,
    in either statement, behind a row of its own batch."""
    batch = [event(ids, "ordered", f"o-{n}", json.dumps({"k": n % 7}).encode()) for n in range(5_000)]
    stored = db.write_sync(lambda connection: store_events(connection, batch))

    assert [s.outcome for s in stored] == ["created"] * 5_000
    query = select(executions.c.id, executions.c.event_id, executions.c.ordering_key, executions.c.key_waiting)
    rows = db.read_sync(lambda c: c.execute(query).all())
    assert sorted((r.event_id, r.id) for r in rows) == sorted((s.event_id, s.execution_id) for s in stored)
    assert {r.id: r.ordering_key for r in rows} == {s.execution_id: str(n % 7) for n, s in enumerate(stored)}
    assert {r.id for r in rows if not r.key_waiting} == {s.execution_id for s in stored[:7]}


def test_a_batchs_executions_are_numbered_in_the_order_its_events_came(db: Database, ids: dict[str, int]) -> None:
    """A key's executions run in id order, so a batch's are numbered as its events came, the keyed ones and the
    unkeyed ones each. (Between the two kinds no order is promised: the events of one batch were in flight together,
    none answered before another came.) On PostgreSQL each kind's events and executions are made by one statement:
    two for a batch of both kinds."""
    batch = [event(ids, "ordered", f"n-{n}" if n % 3 else None, b'{"k": %d}' % (n % 5)) for n in range(300)]
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    sqlalchemy_event.listen(db.write_engine, "before_cursor_execute", seen)
    try:
        stored = db.write_sync(lambda connection: store_events(connection, batch))
    finally:
        sqlalchemy_event.remove(db.write_engine, "before_cursor_execute", seen)
    keyed = [s.execution_id for n, s in enumerate(stored) if n % 3]
    unkeyed = [s.execution_id for n, s in enumerate(stored) if not n % 3]
    assert keyed == sorted(keyed)
    assert unkeyed == sorted(unkeyed)
    inserts = [s for s in statements if "INSERT INTO executions" in s]
    if db.write_engine.dialect.name == "postgresql":
        assert len(inserts) == 2
        assert all("INSERT INTO events" in s for s in inserts)
