"""Parking on both databases: an ordered execution made while its key is held is parked (``key_waiting``), out of
every claim's index range, and promoted when its key's holder goes; the leader's repair promotes what a race left.

The statements are driven directly with explicit times, as in test_ordering_claim.py (whose ``Queue`` this uses).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
from queue_support import succeeded
from sqlalchemy import Connection, Engine, create_engine, select, text
from test_ordering_claim import T0, Queue, _waiting_on_advisory_locks, config, opened

from redrive.db.schema import executions
from redrive.db.writer import WRITER_THREAD_INFO, Writer
from redrive.failures.replay import ReplayRequest, replay, replay_in
from redrive.ingest.prepare import prepare
from redrive.ingest.store import Stored, store_event, store_events
from redrive.node import retention
from redrive.observe.redaction import Redactor
from redrive.queue import parking
from redrive.queue import statements as queue
from redrive.triggers.runtime import sync_triggers
from support import wait_until

LATER = T0 + timedelta(minutes=5)


@pytest.fixture(params=["continue", "block"])
def q(request: pytest.FixtureRequest, db_url: str) -> Iterator[Queue]:
    yield from opened(db_url, request.param)


@pytest.fixture
def cont(db_url: str) -> Iterator[Queue]:
    yield from opened(db_url, "continue")


@pytest.fixture
def block(db_url: str) -> Iterator[Queue]:
    yield from opened(db_url, "block")


def parked(q: Queue) -> dict[int, bool]:
    """Every execution's ``key_waiting``, by id."""
    rows = q.db.write_sync(lambda c: c.execute(select(executions.c.id, executions.c.key_waiting)).all())
    return {row.id: bool(row.key_waiting) for row in rows}


def run_at(q: Queue, execution_id: int) -> datetime:
    statement = select(executions.c.run_at).where(executions.c.id == execution_id)
    value: datetime = q.db.write_sync(lambda c: c.execute(statement).scalar_one())
    return value


def replay_of(q: Queue, execution_id: int, at: datetime = T0) -> int:
    request = ReplayRequest(
        execution_id,
        "tester",
        at,
        frozenset(q.ids.values()),
        force=True,
        may_force=True,
        blocking=frozenset(q.blocking),
    )
    result = q.db.write_sync(replay(request))
    assert result.outcome == "ok", result
    assert result.new_execution_id is not None
    return result.new_execution_id


def test_rows_behind_a_holder_are_parked_at_ingest_and_the_rest_are_not(q: Queue) -> None:
    a = [q.accept("ordered", "a") for _ in range(3)]
    b = q.accept("ordered", "b")
    loose = [q.accept("loose", "a") for _ in range(2)]
    assert parked(q) == {a[0]: False, a[1]: True, a[2]: True, b: False, loose[0]: False, loose[1]: False}


def test_a_batch_of_one_key_parks_all_but_its_first_row(q: Queue) -> None:
    declared = q.config.trigger("ordered")
    assert declared is not None
    body = b'{"customer": {"id": "k"}}'
    batch = [prepare(declared, q.ids["ordered"], body=body, headers={}, received_at=T0, redactor=Redactor())] * 3
    ids = [s.execution_id for s in q.db.write_sync(lambda c: store_events(c, batch))]
    assert [parked(q)[i] for i in ids] == [False, True, True]  # type: ignore[index]


def test_a_success_promotes_the_next_row_due_no_earlier_than_now(q: Queue) -> None:
    a = [q.accept("ordered", "a") for _ in range(3)]
    [head] = q.claim()
    q.finish(head, "succeeded", LATER)
    assert parked(q)[a[1]] is False
    assert parked(q)[a[2]] is True
    assert run_at(q, a[1]) == LATER  # due from the promotion on, not from when it was accepted
    assert [c.id for c in q.claim(LATER)] == [a[1]]


def test_a_retry_keeps_the_key_held(q: Queue) -> None:
    a = [q.accept("ordered", "a") for _ in range(2)]
    [head] = q.claim()
    q.finish(head, "pending", T0, run_at=LATER)
    assert parked(q)[a[1]] is True
    [retried] = q.claim(LATER)
    assert retried.id == a[0]


@pytest.mark.parametrize("dead", ["failed_retryable", "failed"])
def test_a_dead_head_promotes_under_continue_and_holds_under_block(q: Queue, dead: str) -> None:
    a = [q.accept("ordered", "a") for _ in range(2)]
    [head] = q.claim()
    q.finish(head, dead, T0)
    blocking = bool(q.blocking)
    assert parked(q)[a[1]] is blocking
    newcomer = q.accept("ordered", "a")
    assert parked(q)[newcomer] is True  # behind a dead head (block) or behind the promoted a[1] (continue)
    assert [c.id for c in q.claim()] == ([] if blocking else [a[1]])


@pytest.mark.parametrize("dead", ["failed_retryable", "failed"])
def test_a_row_made_behind_a_dead_head_alone_parks_under_block_only(q: Queue, dead: str) -> None:
    """The key's only earlier row is dead: under block it holds the key, so the newcomer parks; under continue the
    newcomer is the key's head and runs."""
    q.accept("ordered", "a")
    [head] = q.claim()
    q.finish(head, dead, T0)
    newcomer = q.accept("ordered", "a")
    assert parked(q)[newcomer] is bool(q.blocking)
    assert [c.id for c in q.claim()] == ([] if q.blocking else [newcomer])


def test_replaying_a_dead_head_under_block_frees_its_key_and_the_replay_parks_at_the_end(block: Queue) -> None:
    a = [block.accept("ordered", "a") for _ in range(3)]
    [head] = block.claim()
    block.finish(head, "failed_retryable", T0)
    assert parked(block)[a[1]] is True
    again = replay_of(block, a[0], LATER)
    assert parked(block)[a[1]] is False  # the dead head went (replayed): its key's next row is due
    assert parked(block)[a[2]] is True
    assert parked(block)[again] is True  # the replay waits at the end of the key
    order = []
    for _ in range(3):
        [claimed] = block.claim(LATER)
        order.append(claimed.id)
        block.finish(claimed, "succeeded", LATER)
    assert order == [a[1], a[2], again]


def test_a_replay_behind_a_running_row_parks(cont: Queue) -> None:
    first = cont.accept("ordered", "a")
    [head] = cont.claim()
    cont.finish(head, "failed_retryable", T0)
    second = cont.accept("ordered", "a")
    assert parked(cont)[second] is False  # continue: the dead row holds nothing
    [running] = cont.claim()
    again = replay_of(cont, first)
    assert parked(cont)[again] is True
    cont.finish(running, "succeeded", T0)
    assert [c.id for c in cont.claim()] == [again]


def test_purging_a_dead_head_under_block_promotes_the_next_row(block: Queue) -> None:
    a = [block.accept("ordered", "a") for _ in range(2)]
    [head] = block.claim()
    block.finish(head, "failed", T0)
    plan = retention.plan({}, T0 + timedelta(days=400))
    assert asyncio.run(retention.purge(block.db.write, plan)).executions == 1
    assert parked(block)[a[1]] is False
    assert [c.id for c in block.claim(T0 + timedelta(days=400))] == [a[1]]


def test_the_repair_promotes_a_key_left_without_a_holder_and_only_such_keys(q: Queue) -> None:
    a = [q.accept("ordered", "a") for _ in range(3)]
    b = [q.accept("ordered", "b") for _ in range(2)]
    # A race's outcome, made by hand: a's head finished without promoting (it did not see a[1] parked).
    q.db.write_sync(
        lambda c: c.execute(text("UPDATE executions SET status = 'succeeded' WHERE id = :id"), {"id": a[0]})
    )
    repair = parking.Repair(q.db.write, [q.ids["ordered"]], q.blocking, lambda: LATER, lambda: None, size=2)
    assert asyncio.run(repair.promote_stranded()) == [a[1]]  # the first pass reads every window
    assert parked(q)[a[2]] is True
    assert parked(q)[b[1]] is True  # b's head still holds b
    assert asyncio.run(repair.promote_stranded()) == []


def test_block_to_continue_lets_the_repair_free_keys_behind_dead_heads(block: Queue) -> None:
    a = [block.accept("ordered", "a") for _ in range(2)]
    [head] = block.claim()
    block.finish(head, "failed_retryable", T0)
    assert parked(block)[a[1]] is True
    # Restarted under continue: the first maintenance pass reads every parked row with the new policy.
    repair = parking.Repair(block.db.write, [block.ids["ordered"]], [], lambda: LATER, lambda: None)
    assert asyncio.run(repair.promote_stranded()) == [a[1]]


def completion_waits_for(engine: Engine, parker: Connection, head: queue.Claimed) -> None:
    """Complete ``head`` (a success) in another transaction while ``parker`` holds, uncommitted, a row it parked
    behind it: the completion must wait for ``parker``'s commit (the key's advisory lock), then apply."""

    def complete(connection: Connection) -> list[bool]:
        with connection.begin():
            return queue.complete_many(connection, [succeeded(head, T0, trigger_id=head.trigger_id)])

    with engine.connect() as other, ThreadPoolExecutor(1) as pool:
        parker.info[WRITER_THREAD_INFO] = 0  # two writer threads: their stats rollups go to different rows
        other.info[WRITER_THREAD_INFO] = 1
        completed = pool.submit(complete, other)
        wait_until(lambda: _waiting_on_advisory_locks(engine) == 1 or completed.done())
        assert not completed.done()  # without the lock it would have committed, promoting nothing
        parker.commit()
        assert completed.result(timeout=30) == [True]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_completion_beside_an_ingest_that_parks_behind_its_row_waits_and_promotes_it(db_url: str) -> None:
    """The ingest reads the running head and parks its row; the head's completion, in another transaction, would not
    see that uncommitted row and promote nothing (the row parked with no holder). The key's advisory lock, taken by
    both, makes the completion wait for the ingest's commit and then promote the row."""
    engine = create_engine(db_url)
    declared = config()
    try:
        with engine.begin() as connection:
            ids = sync_triggers(connection, declared, T0)
        trigger = declared.trigger("ordered")
        assert trigger is not None
        body = b'{"customer": {"id": "k"}}'
        event = prepare(trigger, ids["ordered"], body=body, headers={}, received_at=T0, redactor=Redactor())
        with engine.begin() as connection:
            store_events(connection, [event])
            [head] = queue.claim(list(ids.values()), 10, 30, T0, ordered=True)(connection).executions
        with engine.connect() as ingest:
            [late] = store_events(ingest, [event])  # sees the running head: parks, uncommitted
            completion_waits_for(engine, ingest, head)
        with engine.begin() as connection:
            assert _claim(connection, ids) == [late.execution_id]
    finally:
        engine.dispose()


def _claim(connection: Connection, ids: dict[str, int]) -> list[int]:
    job = queue.claim(list(ids.values()), 10, 30, LATER, ordered=True)
    return [c.id for c in job(connection).executions]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_completion_beside_a_replay_that_parks_behind_its_row_waits_and_promotes_it(cont: Queue) -> None:
    """The replay of a dead row reads its key's running head and parks the new row; the head's completion, in
    another transaction, would not see that uncommitted row (the replay parked with no holder until the repair's
    next pass). The replay takes the key's advisory lock as an ingest does, so the completion waits and promotes it."""
    first = cont.accept("ordered", "a")
    [dead] = cont.claim()
    cont.finish(dead, "failed_retryable", T0)
    cont.accept("ordered", "a")
    [head] = cont.claim()
    request = ReplayRequest(first, "tester", T0, frozenset(cont.ids.values()), force=True, may_force=True)
    engine = create_engine(cont.db.url)
    try:
        with engine.connect() as replaying:
            again = replay_in(replaying, request).new_execution_id  # sees the running head: parks, uncommitted
            completion_waits_for(engine, replaying, head)
    finally:
        engine.dispose()
    assert [c.id for c in cont.claim(LATER)] == [again]


@pytest.mark.parametrize("first", ["ingest", "completion"])
@pytest.mark.parametrize("behind", [0, 1])
def test_an_ingest_and_its_heads_completion_in_one_writer_transaction_leave_no_row_stranded(
    cont: Queue, first: str, behind: int
) -> None:
    """One writer transaction stores a row of a key and completes the key's running head, in either order, with
    ``behind`` rows of the key parked before it. On SQLite the completion promotes only keys its fence read with a
    parked row (``statements._promote_next``): a row the transaction parks at its end parks behind a holder it
    finds then, so none is left parked without one. The key's rows run in order, one at a time, to the last."""
    rows = [cont.accept("ordered", "k") for _ in range(1 + behind)]
    [head] = cont.claim()
    assert head.id == rows[0]
    declared = cont.config.trigger("ordered")
    assert declared is not None
    body = b'{"customer": {"id": "k"}}'
    event = prepare(declared, cont.ids["ordered"], body=body, headers={}, received_at=T0, redactor=Redactor())
    jobs = [store_event(event), queue.complete(succeeded(head, T0, trigger_id=head.trigger_id))]
    writer = Writer(cont.db.write_engine, threads=1)
    writer.start()
    started, gate = threading.Event(), threading.Event()

    def gate_job(connection: Connection) -> None:
        started.set()
        assert gate.wait(30)

    async def submit() -> list[Any]:
        gated = asyncio.ensure_future(writer.run(gate_job))
        await asyncio.to_thread(started.wait, 30)  # the writer runs the gate alone; the two queue behind it
        both = [asyncio.ensure_future(writer.run(job)) for job in (jobs if first == "ingest" else jobs[::-1])]
        await asyncio.sleep(0)
        gate.set()
        return await asyncio.gather(gated, *both)

    try:
        results = asyncio.run(submit())
    finally:
        writer.close()
    stored = next(r for r in results if isinstance(r, Stored))
    assert stored.execution_id is not None
    rows.append(stored.execution_id)
    ran = [rows[0]]
    at = LATER
    while len(ran) < len(rows):
        claimed = cont.claim(at)
        assert len(claimed) == 1, f"after {ran}: {[c.id for c in claimed]} claimable"
        ran.append(claimed[0].id)
        cont.finish(claimed[0], "succeeded", at)
        at += timedelta(seconds=1)
    assert ran == rows
