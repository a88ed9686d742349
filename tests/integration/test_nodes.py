"""Heartbeats, dead nodes and maintenance leadership: a node missing three beats is reported dead and its leases go
back to the queue uncharged; on PostgreSQL exactly one node leads maintenance and another takes over when it dies."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from redrive.db.database import Database
from redrive.ingest.prepare import prepare
from redrive.ingest.store import store_event
from redrive.node.heartbeats import beat, list_nodes, this_node
from redrive.node.leader import Leadership
from redrive.node.maintenance import Maintenance
from redrive.observe.redaction import Redactor
from redrive.queue import statements as queue
from redrive.queue.notify import libpq_url
from redrive.triggers.config import parse_config
from redrive.triggers.runtime import sync_triggers

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = parse_config("triggers: [{name: t, action: {kind: command, argv: ['true']}}]")
BEAT = 5.0


@pytest.fixture
def db(db_url: str):
    database = Database(db_url)
    database.start()
    yield database
    database.close()


def seed(db: Database, count: int) -> int:
    trigger_id = db.write_sync(lambda c: sync_triggers(c, CONFIG, T0))["t"]
    for n in range(count):
        event = prepare(
            CONFIG.triggers[0], trigger_id, body=b"{}", headers={}, received_at=T0, redactor=Redactor(), key=f"k{n}"
        )
        db.write_sync(store_event(event))
    return trigger_id


def status(db: Database, execution_id: int) -> tuple[str, int]:
    row = db.read_sync(
        lambda c: c.exec_driver_sql(f"SELECT status, attempts FROM executions WHERE id = {execution_id}").one()
    )
    return row[0], row[1]


async def leading(leadership: Leadership) -> None:
    async with asyncio.timeout(10):
        while not leadership.is_leader:  # noqa: ASYNC110 (a flag set by another task's SQL round trip)
            await asyncio.sleep(0.02)


def test_a_node_missing_three_beats_is_dead_and_its_leases_are_swept(db: Database) -> None:
    trigger_id = seed(db, 4)
    dead, also_dead, alive = this_node("worker", T0), this_node("worker", T0), this_node("worker", T0)
    now = T0 + timedelta(seconds=3 * BEAT + 1)
    warnings: list[dict[str, Any]] = []

    async def scenario() -> None:
        await db.write(beat(dead, 2, T0))
        await db.write(beat(also_dead, 1, T0))
        await db.write(beat(alive, 1, now))
        # Long leases: only the reaper, not lease expiry, can explain the dead nodes' rows going back.
        mine = await db.write(queue.claim([trigger_id], 2, 600, T0, owner=dead.id))
        await db.write(queue.claim([trigger_id], 1, 600, T0, owner=also_dead.id))
        theirs = await db.write(queue.claim([trigger_id], 1, 600, T0, owner=alive.id))
        assert all(c.lease_token.startswith(dead.id) for c in mine.executions)
        leadership = Leadership(db.url, 0.05)
        leadership.start()
        try:
            await leading(leadership)
            maintenance = Maintenance(
                db,
                leadership,
                interval=1,
                heartbeat_interval=BEAT,
                clock=lambda: now,
                wake=lambda: None,
                warn=warnings.append,
            )
            assert await maintenance.run_once() == 3
            # One warning per dead node, each with its own leases.
            assert sorted((w["node_id"], w["leases_swept"]) for w in warnings) == sorted(
                [(dead.id, 2), (also_dead.id, 1)]
            )
            for claimed in mine.executions:
                assert status(db, claimed.id) == ("pending", 0)  # back in the queue, uncharged
            assert status(db, theirs.executions[0].id) == ("running", 0)
            nodes = {n["id"]: n for n in await db.read(list_nodes(now, BEAT))}
            assert nodes[dead.id]["alive"] is False
            assert nodes[alive.id]["alive"] is True
            assert await maintenance.run_once() == 0  # reported once; nothing more to sweep
            await db.write(beat(dead, 0, now))  # a node wrongly thought dead comes back
            nodes = {n["id"]: n for n in await db.read(list_nodes(now, BEAT))}
            assert nodes[dead.id]["alive"] is True
        finally:
            await leadership.stop()

    asyncio.run(scenario())


def test_on_sqlite_one_process_leads_and_the_next_takes_over_when_it_stops(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'unused.db'}"

    async def scenario() -> None:
        first, second = Leadership(url, 0.05), Leadership(url, 0.05)
        first.start()  # the lock is tried before start returns: a lone process leads from its first beat
        second.start()
        try:
            assert (first.is_leader, second.is_leader) == (True, False)
            await first.stop()  # as when its process exits: the kernel frees the flock
            await leading(second)
        finally:
            await first.stop()
            await second.stop()
        assert not second.is_leader

    asyncio.run(scenario())


def test_an_in_memory_sqlite_database_has_one_process_and_it_leads() -> None:
    async def scenario() -> None:
        leadership = Leadership("sqlite://", 1.0)
        leadership.start()
        assert leadership.is_leader
        await leadership.stop()

    asyncio.run(scenario())


postgres_only = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def _lock_holders(url: str) -> list[int]:
    with psycopg.connect(libpq_url(url)) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchall()
    return [row[0] for row in rows]


@postgres_only
def test_one_leader_at_a_time_and_failover_when_it_dies(db: Database) -> None:
    trigger_id = seed(db, 1)

    async def scenario() -> None:
        first, second = Leadership(db.url, 0.1, node_id="first"), Leadership(db.url, 0.1, node_id="second")
        first.start()
        await leading(first)
        second.start()
        try:
            await asyncio.sleep(0.5)  # several campaign rounds
            assert (first.is_leader, second.is_leader) == (True, False)
            # The follower does no maintenance: an expired lease stays until the leader sweeps it.
            claimed = (await db.write(queue.claim([trigger_id], 1, 5, T0))).executions[0]
            later = lambda: T0 + timedelta(minutes=1)  # noqa: E731
            follower = Maintenance(db, second, interval=1, heartbeat_interval=BEAT, clock=later, wake=lambda: None)
            assert await follower.run_once() == 0
            assert status(db, claimed.id) == ("running", 0)
            # The leader's node dies: its session ends (as when the process is killed), the lock is freed.
            [holder] = _lock_holders(db.url)
            with psycopg.connect(libpq_url(db.url), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (holder,))
            await leading(second)
            assert await follower.run_once() == 1
            assert status(db, claimed.id) == ("pending", 0)
            await asyncio.sleep(0.5)  # the old leader reconnects and campaigns, but the lock is taken
            assert (first.is_leader, second.is_leader) == (False, True)
            assert len(_lock_holders(db.url)) == 1
        finally:
            await first.stop()
            await second.stop()

    asyncio.run(scenario())
