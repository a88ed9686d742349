"""The metrics history behind the System page's charts, on both databases: the maintenance leader stores one sample
per minute of its (injected) clock and a follower none; the samples say what the queue held; retention purges the
ones older than 7 days; ``GET /api/v1/system/history`` serves a window of them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx2
import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from redrive.db.database import Database
from redrive.db.schema import attempts, executions, metrics_history
from redrive.ingest.prepare import prepare
from redrive.ingest.store import store_event
from redrive.node.leader import Leadership
from redrive.node.maintenance import Maintenance
from redrive.node.retention import RetentionChore
from redrive.observe.history import HistorySampler
from redrive.observe.redaction import Redactor
from redrive.plugins import builtin_registry
from redrive.triggers.config import parse_config
from redrive.triggers.runtime import build_trigger_set, sync_triggers
from support import recount, run_service

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = parse_config("triggers: [{name: t, action: {kind: command, argv: ['true']}}]")


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    database.start()
    yield database
    database.close()


def seed_queue(db: Database) -> list[int]:
    """Three executions due since T0; the first dead-lettered; three attempts finished around 00:10."""
    trigger_id = db.write_sync(lambda c: sync_triggers(c, CONFIG, T0))["t"]
    ids = []
    for n in range(3):
        event = prepare(
            CONFIG.triggers[0], trigger_id, body=b"{}", headers={}, received_at=T0, redactor=Redactor(), key=f"k{n}"
        )
        stored = db.write_sync(store_event(event))
        assert stored.execution_id is not None
        ids.append(stored.execution_id)
    dead = update(executions).where(executions.c.id == ids[0]).values(status="failed_retryable", finished_at=T0)
    db.write_sync(lambda c: c.execute(dead))
    finished = [("transient", 9, 30), ("succeeded", 9, 50), ("permanent", 10, 30)]
    rows = [
        {
            "execution_id": ids[0],
            "number": number,
            "started_at": T0,
            "finished_at": T0.replace(minute=minute, second=second),
            "duration_ms": 1.0,
            "outcome": outcome,
            "detail": {},
        }
        for number, (outcome, minute, second) in enumerate(finished, start=1)
    ]
    db.write_sync(lambda c: c.execute(insert(attempts), rows))
    recount(db.url)  # the dead letter and the attempts went straight in, past the live path that keeps the rollups
    return ids


def stored(db: Database) -> list[dict[str, object]]:
    rows = db.read_sync(lambda c: c.execute(select(metrics_history).order_by(metrics_history.c.at)).all())
    return [dict(row._mapping) for row in rows]


def test_the_leader_samples_once_per_minute_tick_and_a_follower_never(db: Database) -> None:
    seed_queue(db)
    now = [T0]
    leader_skew = [timedelta(0)]

    def chores(leadership: Leadership, skew: timedelta) -> Maintenance:
        sampler = HistorySampler(db, lambda: now[0] + skew)  # a skewed clock: its minutes betray who sampled
        return Maintenance(
            db,
            leadership,
            interval=1,
            heartbeat_interval=5,
            clock=lambda: now[0],
            wake=lambda: None,
            extra=[sampler.run_when_due],
        )

    async def scenario() -> None:
        first, second = Leadership(db.url, 0.05), Leadership(db.url, 0.05)
        if db.is_sqlite:
            second.is_leader = False  # one process leads on SQLite: a second node is a follower by definition
        first.start()
        second.start()
        try:
            # On PostgreSQL the advisory lock decides: wait until one of the two holds it.
            async with asyncio.timeout(10):
                while not (first.is_leader or second.is_leader):  # noqa: ASYNC110 (set by another task's SQL)
                    await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)  # several campaign rounds: the other one must stay a follower
            assert first.is_leader != second.is_leader
            nodes = [chores(first, timedelta(0)), chores(second, timedelta(minutes=30))]
            leader_skew[0] = timedelta(0) if first.is_leader else timedelta(minutes=30)
            # Passes every ~30 s as the maintenance loop makes them; 00:12 has no pass at all (a stalled leader).
            for minute, second_of_minute in ((10, 5), (10, 40), (11, 1), (11, 59), (13, 0)):
                now[0] = T0.replace(minute=minute, second=second_of_minute)
                for node in nodes:
                    await node.run_once()
        finally:
            await first.stop()
            await second.stop()

    asyncio.run(scenario())
    rows = stored(db)
    assert [row["at"] for row in rows] == [T0.replace(minute=m) + leader_skew[0] for m in (10, 11, 13)]
    first = rows[0]
    assert (first["queue_depth"], first["dlq_size"]) == (2, 1)
    assert first["oldest_pending_age_seconds"] == 605.0 + leader_skew[0].total_seconds()  # due since T0
    if not leader_skew[0]:
        assert [(row["attempts"], row["failed_attempts"]) for row in rows] == [(2, 1), (1, 1), (0, 0)]


def test_two_samplers_in_one_minute_store_it_once(db: Database) -> None:
    seed_queue(db)
    at = T0.replace(minute=30, second=1)

    async def scenario() -> None:
        await HistorySampler(db, lambda: at).run_when_due()
        await HistorySampler(db, lambda: at + timedelta(seconds=20)).run_when_due()  # a hand-over within the minute

    asyncio.run(scenario())
    assert [row["at"] for row in stored(db)] == [T0.replace(minute=30)]


def test_retention_purges_samples_older_than_seven_days(db: Database) -> None:
    seed_queue(db)
    ages = [timedelta(days=8), timedelta(days=7, minutes=1), timedelta(days=6, hours=23), timedelta(minutes=1)]
    now = T0 + timedelta(days=30)
    for age in ages:
        db.write_sync(sample_row(now - age))
    ids = db.write_sync(lambda c: sync_triggers(c, CONFIG, T0))
    chore = RetentionChore(db, build_trigger_set(CONFIG, ids, builtin_registry()), 3600, lambda: now)
    asyncio.run(chore.run_when_due())
    assert [row["at"] for row in stored(db)] == [now - ages[2], now - ages[3]]


def sample_row(at: datetime) -> Callable[[Connection], object]:
    """A write job storing an empty sample at ``at``."""
    row = {"at": at, "queue_depth": 0, "oldest_pending_age_seconds": 0.0, "dlq_size": 0, "attempts": 0}
    return lambda c: c.execute(insert(metrics_history).values(**row, failed_attempts=0))


def test_the_api_serves_a_window_of_samples(db_url: str) -> None:
    with run_service(db_url, "triggers: [{name: t, action: {kind: command, argv: ['true']}}]") as service:
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        db = Database(db_url)
        try:
            for minutes, failed in ((400, 0), (300, 1), (2, 3)):
                row = {"at": now - timedelta(minutes=minutes), "queue_depth": minutes, "dlq_size": 1}
                values = {**row, "oldest_pending_age_seconds": 1.5, "attempts": 4, "failed_attempts": failed}
                db.write_sync(lambda c, v=values: c.execute(insert(metrics_history).values(**v)))
        finally:
            db.close()
        auth = service.auth("viewer")
        six_hours = httpx2.get(f"{service.url}/api/v1/system/history", params={"since": "6h"}, headers=auth).json()
        default = httpx2.get(f"{service.url}/api/v1/system/history", headers=auth).json()
        bad = httpx2.get(f"{service.url}/api/v1/system/history", params={"since": "8d"}, headers=auth)
    # The service's own leader samples too, from the current minute on: those rows come after the ones seeded here.
    seeded, live = six_hours["samples"][:2], six_hours["samples"][2:]
    assert [s["queue_depth"] for s in seeded] == [300, 2]
    assert [s["failure_rate"] for s in seeded] == [0.25, 0.75]
    assert all(datetime.fromisoformat(s["at"]) >= now for s in live)
    assert all(s["failure_rate"] is None for s in live)  # nothing ran
    assert six_hours["samples"][0]["at"] == (now - timedelta(minutes=300)).isoformat()
    assert six_hours["interval_seconds"] == 60
    assert default["samples"][:2] == seeded
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_window"
