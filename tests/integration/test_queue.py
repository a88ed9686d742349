"""Queue statements against both databases: claims lease, completions are fenced, the sweeper is free of charge."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from queue_support import succeeded
from sqlalchemy import select, text

from redrive.db.database import Database
from redrive.db.schema import attempts
from redrive.ingest.prepare import prepare
from redrive.ingest.store import store_event
from redrive.observe.redaction import Redactor
from redrive.queue import statements as queue
from redrive.triggers.config import parse_config
from redrive.triggers.runtime import sync_triggers

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = parse_config("triggers: [{name: t, action: {kind: command, argv: ['true']}}]")


@pytest.fixture
def db(db_url: str):
    database = Database(db_url)
    database.start()
    yield database
    database.close()


def seed(db: Database, count: int) -> list[int]:
    ids = db.write_sync(lambda c: sync_triggers(c, CONFIG, T0))
    created = []
    for n in range(count):
        event = prepare(
            CONFIG.triggers[0], ids["t"], body=b"{}", headers={}, received_at=T0, redactor=Redactor(), key=f"k{n}"
        )
        created.append(db.write_sync(store_event(event)).execution_id)
    return [ids["t"]]


def test_claims_lease_each_row_once(db: Database) -> None:
    triggers = seed(db, 5)
    first = asyncio.run(db.write(queue.claim(triggers, 3, 30, T0)))
    second = asyncio.run(db.write(queue.claim(triggers, 3, 30, T0)))
    assert len(first.executions) == 3
    assert len(second.executions) == 2
    assert {c.id for c in first.executions}.isdisjoint({c.id for c in second.executions})
    third = asyncio.run(db.write(queue.claim(triggers, 3, 30, T0)))
    assert third.executions == []
    assert third.next_run_at is None


def test_rows_not_yet_due_are_left_and_reported(db: Database) -> None:
    triggers = seed(db, 1)
    early = asyncio.run(db.write(queue.claim(triggers, 10, 30, T0 - timedelta(seconds=5))))
    assert early.executions == []
    assert early.next_run_at == T0


def test_a_completion_after_the_lease_was_lost_changes_nothing(db: Database) -> None:
    triggers = seed(db, 1)
    [stale] = asyncio.run(db.write(queue.claim(triggers, 1, 30, T0))).executions
    later = T0 + timedelta(seconds=31)
    assert asyncio.run(db.write(queue.sweep(later))) == [stale.id]
    [fresh] = asyncio.run(db.write(queue.claim(triggers, 1, 30, later))).executions
    assert fresh.id == stale.id
    assert fresh.lease_token != stale.lease_token
    assert fresh.attempts == 0  # the sweep charged nothing

    assert asyncio.run(db.write(queue.complete(succeeded(stale, later)))) is False
    assert asyncio.run(db.write(queue.complete(succeeded(fresh, later)))) is True
    assert asyncio.run(db.write(queue.complete(succeeded(fresh, later)))) is False  # and only once


def test_sweep_leaves_live_leases_alone_and_renew_extends_them(db: Database) -> None:
    triggers = seed(db, 2)
    claimed = asyncio.run(db.write(queue.claim(triggers, 2, 30, T0))).executions
    assert asyncio.run(db.write(queue.sweep(T0 + timedelta(seconds=29)))) == []
    renewed = asyncio.run(db.write(queue.renew([claimed[0].lease_token], 30, T0 + timedelta(seconds=20))))
    assert renewed == 2
    assert asyncio.run(db.write(queue.sweep(T0 + timedelta(seconds=45)))) == []
    assert sorted(asyncio.run(db.write(queue.sweep(T0 + timedelta(seconds=51))))) == sorted(c.id for c in claimed)


def test_release_returns_held_rows_uncharged(db: Database) -> None:
    triggers = seed(db, 2)
    claimed = asyncio.run(db.write(queue.claim(triggers, 2, 30, T0))).executions
    held = [(c.id, c.lease_token) for c in claimed] + [(claimed[0].id, "not-the-token")]
    assert asyncio.run(db.write(queue.release(held, T0))) == 2
    again = asyncio.run(db.write(queue.claim(triggers, 5, 30, T0))).executions
    assert sorted(c.id for c in again) == sorted(c.id for c in claimed)
    assert {c.attempts for c in again} == {0}


def test_one_failing_job_does_not_fail_its_batch_neighbours(db: Database) -> None:
    seed(db, 0)

    def boom(connection):
        raise RuntimeError("this job is broken")

    async def together():
        event = prepare(CONFIG.triggers[0], 1, body=b"{}", headers={}, received_at=T0, redactor=Redactor(), key="n")
        return await asyncio.gather(db.write(store_event(event)), db.write(boom), return_exceptions=True)

    good, bad = asyncio.run(together())
    assert isinstance(bad, RuntimeError)
    assert good.outcome == "created"


def test_completions_batched_together_are_fenced_one_by_one(db: Database) -> None:
    triggers = seed(db, 2)
    [stale, other] = asyncio.run(db.write(queue.claim(triggers, 2, 30, T0))).executions
    later = T0 + timedelta(seconds=31)
    db.write_sync(queue.sweep(later))
    [fresh, other_fresh] = asyncio.run(db.write(queue.claim(triggers, 2, 30, later))).executions
    assert fresh.id == stale.id
    batch = [
        succeeded(stale, later),  # lost its lease
        succeeded(fresh, later),  # holds it
        succeeded(fresh, later),  # the same lease again, later in the batch: already completed
        succeeded(other_fresh, later),
    ]
    assert db.write_sync(lambda connection: queue.complete_many(connection, batch)) == [False, True, False, True]
    rows = db.read_sync(
        lambda c: c.execute(text("SELECT execution_id, number FROM attempts ORDER BY execution_id")).all()
    )
    assert [tuple(r) for r in rows] == [(fresh.id, 1), (other_fresh.id, 1)]
    statuses = db.read_sync(lambda c: c.execute(text("SELECT DISTINCT status, attempts FROM executions")).all())
    assert [tuple(s) for s in statuses] == [("succeeded", 1)]
    assert other.id == other_fresh.id


def test_a_batch_of_attempts_is_recorded_column_for_column(db: Database) -> None:
    """Every field of each attempt in one completion batch reads back as completed: failures and successes, JSON
    documents and their absence, text that needs escaping, an uncharged attempt (PostgreSQL writes them from
    arrays, SQLite row by row)."""
    triggers = seed(db, 3)
    first, second, third = asyncio.run(db.write(queue.claim(triggers, 3, 30, T0))).executions
    later = T0 + timedelta(seconds=1, microseconds=250_000)
    failed = replace(
        succeeded(first, later),
        started_at=T0,  # each attempt its own duration: 1,250, 500 and 0 ms
        status="failed",
        outcome="permanent",
        error_category="permanent",
        error_code="http_404",
        message='not "found", {braces} \\ and Zoë',
        detail={"status": 404, "nested": {"list": [1, None]}},
        excerpt="<html>nope</html>",
        fingerprint="abcdef0123456789",
        title="not found",
        trigger_id=first.trigger_id,
        action_kind="command",
        request={"url": "https://example.com/x", "body": None},
    )
    uncharged = replace(succeeded(third, later), charged=False, detail={"held": True})
    completions = [failed, replace(succeeded(second, later), started_at=later - timedelta(milliseconds=500)), uncharged]
    assert db.write_sync(lambda c: queue.complete_many(c, completions)) == [True, True, True]

    columns = [
        attempts.c.execution_id, attempts.c.number, attempts.c.started_at, attempts.c.finished_at,
        attempts.c.duration_ms, attempts.c.outcome, attempts.c.error_category, attempts.c.error_code,
        attempts.c.message, attempts.c.detail, attempts.c.excerpt, attempts.c.fingerprint, attempts.c.request,
        attempts.c.charged,
    ]  # fmt: skip
    rows = db.read_sync(lambda c: c.execute(select(*columns).order_by(attempts.c.execution_id)).all())
    expected = [
        (r.execution_id, 1, r.started_at, r.finished_at, duration, r.outcome, r.error_category, r.error_code,
         r.message, r.detail, r.excerpt, r.fingerprint, r.request, r.charged)
        for r, duration in zip(completions, [1250.0, 500.0, 0.0], strict=True)
    ]  # fmt: skip
    assert [tuple(row) for row in rows] == sorted(expected)  # by execution id, as read
