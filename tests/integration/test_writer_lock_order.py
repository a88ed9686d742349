"""The writer's lock order on PostgreSQL (``db.writer.LAST_WRITES``).

A writer transaction locks its executions' rows, then their destinations' rows, and only at its end the ordering
keys it parks, frees or claims (all at once, in key order), then the stats rollups' hot rows; what renews or gives
back leases never waits for a row. Each test holds a destination's row in another transaction, starts work that
must wait for it, and looks at what that work holds while it waits. Holding a key's lock or a rollup's row there, or
waiting with its execution's row still free for a lease renewal to take, is half of a cycle: another transaction
holding those and waiting for the destination closes it. Such deadlocks stalled the writers for a second each, so
leases expired and executions ran twice (the cluster tests caught it).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from test_ordering_claim import T0, Queue, opened

from redrive.db.schema import executions
from redrive.db.writer import Writer
from redrive.destinations.breaker import Observed, Policy
from redrive.destinations.store import Outcome, record_outcomes
from redrive.ingest.prepare import NewEvent, prepare
from redrive.ingest.store import store_event
from redrive.observe.redaction import Redactor
from redrive.queue import statements as queue
from redrive.triggers.config import BreakerConfig
from support import wait_until

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
DESTINATION = "partner"
POLICY = Policy(BreakerConfig())


@pytest.fixture
def q(db_url: str) -> Iterator[Queue]:
    yield from opened(db_url, "continue")


def event(q: Queue, trigger: str, customer: str) -> NewEvent:
    declared = q.config.trigger(trigger)
    assert declared is not None
    body = f'{{"customer": {{"id": "{customer}"}}}}'.encode()
    return prepare(declared, q.ids[trigger], body=body, headers={}, received_at=T0, redactor=Redactor())


def claimed_at_destination(q: Queue) -> queue.Claimed:
    """One unordered execution at DESTINATION, leased; the destination's row made by an earlier outcome."""
    q.db.write_sync(store_event(replace(event(q, "loose", "a"), destination=DESTINATION)))
    q.db.write_sync(lambda c: record_outcomes(c, [Outcome(DESTINATION, Observed("succeeded", 0.01), POLICY)], T0))
    [claimed] = q.claim()
    return claimed


def completion(claimed: queue.Claimed, outcome: str) -> queue.Complete:
    failed = outcome != "succeeded"
    return queue.complete(
        queue.Completion(
            execution_id=claimed.id,
            lease_token=claimed.lease_token,
            status="pending" if failed else "succeeded",
            run_at=T0 + timedelta(minutes=1) if failed else None,
            started_at=T0,
            finished_at=T0,
            outcome=outcome,
            error_category=outcome if failed else None,
            error_code="http_503" if failed else None,
            message=None,
            detail={},
            excerpt=None,
            trigger_id=claimed.trigger_id,
            action_kind="command",
            fingerprint="f" if failed else None,
            title="" if failed else None,
            destination=DESTINATION,
            observed=Observed(outcome, 0.01),  # type: ignore[arg-type]
            policy=POLICY,
        )
    )


@contextmanager
def destination_held(engine: Engine) -> Iterator[None]:
    """Another transaction holds DESTINATION's row until the block ends."""
    with engine.connect() as holder:
        holder.execute(text("SELECT name FROM destinations WHERE name = :n FOR UPDATE"), {"n": DESTINATION}).one()
        try:
            yield
        finally:
            holder.rollback()


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as connection:
        return connection.execute(text(sql), params).scalar_one()


ADVISORY_LOCKS_HERE = (  # pg_locks lists every database's: the other test workers' too
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def waiting_for_a_lock(engine: Engine) -> int:
    sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    return int(scalar(engine, sql))


def row_locked(engine: Engine, execution_id: int) -> bool:
    sql = "SELECT count(*) FROM (SELECT id FROM executions WHERE id = :id FOR UPDATE SKIP LOCKED) AS free"
    return int(scalar(engine, sql, id=execution_id)) == 0


@pytest.mark.parametrize("outcome", ["succeeded", "transient"])
def test_a_completion_locks_its_execution_before_it_waits_for_its_destination(q: Queue, outcome: str) -> None:
    claimed = claimed_at_destination(q)
    engine = q.db.write_engine
    with ThreadPoolExecutor(1) as pool:
        with destination_held(engine):
            done = pool.submit(q.db.write_sync, completion(claimed, outcome))
            wait_until(lambda: waiting_for_a_lock(engine) == 1 or done.done(), what="the completion to wait")
            assert not done.done()
            assert row_locked(engine, claimed.id)  # a transient failure too: it may be held, so it is counted first
        assert done.result(timeout=30) is True
    assert q.db.write_sync(lambda c: c.execute(select(executions.c.lease_token)).scalar_one()) is None


def test_a_writer_transaction_takes_keys_and_rollups_after_its_jobs_rows(q: Queue) -> None:
    """One batch of the writer: an ordered event that parks behind its key's head, and a completion that waits for
    its destination. While it waits, the batch holds no key's lock and no rollup row; both come after."""
    claimed = claimed_at_destination(q)
    engine = q.db.write_engine
    writer = Writer(engine, threads=1)
    writer.start()
    started, gate, queued = threading.Event(), threading.Event(), threading.Event()

    def gate_job(connection: Any) -> None:
        started.set()
        assert gate.wait(30)

    async def submit() -> list[Any]:
        await writer.run(store_event(event(q, "ordered", "k")))  # the key's head; the rollups' rows of the writer
        gated = asyncio.ensure_future(writer.run(gate_job))
        await asyncio.to_thread(started.wait, 30)  # the writer runs the gate alone; the next two queue behind it
        stored = asyncio.ensure_future(writer.run(store_event(event(q, "ordered", "k"))))
        completed = asyncio.ensure_future(writer.run(completion(claimed, "succeeded")))
        await asyncio.sleep(0)
        queued.set()
        return await asyncio.gather(gated, stored, completed)

    try:
        with ThreadPoolExecutor(1) as pool:
            with destination_held(engine):
                results = pool.submit(asyncio.run, submit())
                assert queued.wait(30)
                gate.set()
                wait_until(lambda: waiting_for_a_lock(engine) == 1 or results.done(), what="the batch to wait")
                assert not results.done()
                assert scalar(engine, ADVISORY_LOCKS_HERE) == 0
                free = "SELECT count(*) FROM (SELECT 1 FROM stat_rollups FOR UPDATE SKIP LOCKED) AS free"
                assert scalar(engine, free) == scalar(engine, "SELECT count(*) FROM stat_rollups") > 0
            _, stored, applied = results.result(timeout=30)
    finally:
        writer.close()
    assert applied is True
    waiting = q.db.write_sync(
        lambda c: c.execute(select(executions.c.key_waiting).where(executions.c.id == stored.execution_id))
    ).scalar_one()
    assert waiting is True  # parked behind the head at the batch's end


def test_a_lease_renewal_skips_a_row_another_transaction_holds(q: Queue) -> None:
    claimed = claimed_at_destination(q)
    engine = q.db.write_engine
    with engine.connect() as holder, ThreadPoolExecutor(1) as pool:
        holder.execute(text("SELECT id FROM executions WHERE id = :id FOR UPDATE"), {"id": claimed.id}).one()
        renewed = pool.submit(q.db.write_sync, queue.renew([claimed.lease_token], 30, T0))
        wait_until(lambda: renewed.done() or waiting_for_a_lock(engine) == 1, what="the renewal to end or wait")
        try:
            assert renewed.done()
        finally:
            holder.rollback()
        assert renewed.result(timeout=30) == 0
    assert q.db.write_sync(queue.renew([claimed.lease_token], 30, T0)) == 1
