"""Ordered claims against both databases: only heads of keys are leased, a retrying head holds only its key,
``on_dead_letter`` decides whether a dead head releases the next one, and a replay goes to the end of its key.

The statements are driven directly with explicit times (no worker, no sleeping); the two-process delivery test is
tests/integration/test_ordering_processes.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import Connection, Engine, create_engine, text

from redrive.db.database import Database
from redrive.db.writer import WRITER_THREAD_INFO
from redrive.failures.replay import ReplayRequest, replay
from redrive.ingest.prepare import NewEvent, prepare
from redrive.ingest.store import store_event, store_events
from redrive.observe.redaction import Redactor
from redrive.queue import parking
from redrive.queue import statements as queue
from redrive.triggers.config import RedriveConfig, parse_config
from redrive.triggers.runtime import sync_triggers
from support import wait_until

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def config(policy: str = "continue") -> RedriveConfig:
    return parse_config(
        f"""
triggers:
  - name: ordered
    action: {{kind: command, argv: ['true']}}
    ordering: {{key: "{{{{ payload.customer.id }}}}", on_dead_letter: {policy}}}
  - name: loose
    action: {{kind: command, argv: ['true']}}
"""
    )


class Queue:
    """One database with both triggers, and the claim the worker would run for them."""

    def __init__(self, db: Database, policy: str) -> None:
        self.db = db
        self.config = config(policy)
        self.ids = db.write_sync(lambda c: sync_triggers(c, self.config, T0))
        self.blocking = [self.ids["ordered"]] if policy == "block" else []

    def accept(self, trigger: str, customer: str, at: datetime = T0) -> int:
        body = f'{{"customer": {{"id": "{customer}"}}}}'.encode()
        declared = self.config.trigger(trigger)
        assert declared is not None
        event = prepare(declared, self.ids[trigger], body=body, headers={}, received_at=at, redactor=Redactor())
        execution_id = self.db.write_sync(store_event(event)).execution_id
        assert execution_id is not None
        return execution_id

    def claim(self, at: datetime = T0, limit: int = 50) -> list[queue.Claimed]:
        job = queue.claim(list(self.ids.values()), limit, 30, at, ordered=True, blocking=self.blocking)
        return asyncio.run(self.db.write(job)).executions

    def finish(self, claimed: queue.Claimed, status: str, at: datetime, run_at: datetime | None = None) -> None:
        failed = status != "succeeded"
        result = queue.Completion(
            execution_id=claimed.id,
            lease_token=claimed.lease_token,
            status=status,
            run_at=run_at,
            started_at=at,
            finished_at=at,
            outcome="transient" if failed else "succeeded",
            error_category="transient" if failed else None,
            error_code="http_503" if failed else None,
            message=None,
            detail={},
            excerpt=None,
            trigger_id=claimed.trigger_id,
            ordering_blocks=claimed.trigger_id in self.blocking,
        )
        assert asyncio.run(self.db.write(queue.complete(result))) is True


def opened(db_url: str, policy: str) -> Iterator[Queue]:
    database = Database(db_url)
    database.start()
    yield Queue(database, policy)
    database.close()


@pytest.fixture(params=["continue", "block"])
def q(request: pytest.FixtureRequest, db_url: str) -> Iterator[Queue]:
    yield from opened(db_url, request.param)


@pytest.fixture
def cont(db_url: str) -> Iterator[Queue]:
    yield from opened(db_url, "continue")


@pytest.fixture
def block(db_url: str) -> Iterator[Queue]:
    yield from opened(db_url, "block")


def test_only_the_head_of_each_key_is_leased_and_unordered_work_flows(q: Queue) -> None:
    a = [q.accept("ordered", "a") for _ in range(3)]
    b = [q.accept("ordered", "b") for _ in range(2)]
    loose = [q.accept("loose", "a") for _ in range(3)]
    first = q.claim()
    assert sorted(c.id for c in first) == sorted([a[0], b[0], *loose])
    assert q.claim() == []  # every key's head is running: nothing else of theirs is due
    for claimed in first:
        q.finish(claimed, "succeeded", T0)
    assert sorted(c.id for c in q.claim()) == [a[1], b[1]]


def test_a_head_waiting_for_its_retry_holds_only_its_key(q: Queue) -> None:
    a = [q.accept("ordered", "a") for _ in range(2)]
    b = [q.accept("ordered", "b") for _ in range(3)]
    later = T0 + timedelta(seconds=60)
    for claimed in q.claim():
        if claimed.id == a[0]:
            q.finish(claimed, "pending", T0, run_at=later)  # a transient failure: retried in 60 s
        else:
            q.finish(claimed, "succeeded", T0)
    for expected in b[1:]:  # key b flows on while a's head waits
        [claimed] = q.claim(T0 + timedelta(seconds=1))
        assert claimed.id == expected
        q.finish(claimed, "succeeded", T0 + timedelta(seconds=1))
    assert q.claim(T0 + timedelta(seconds=2)) == []  # a[1] waits behind its head
    [retried] = q.claim(later)
    assert retried.id == a[0]
    q.finish(retried, "succeeded", later)
    assert [c.id for c in q.claim(later)] == [a[1]]


def test_continue_releases_the_next_execution_when_the_head_is_dead_lettered(cont: Queue) -> None:
    a = [cont.accept("ordered", "a") for _ in range(2)]
    [head] = cont.claim()
    cont.finish(head, "failed_retryable", T0)
    assert [c.id for c in cont.claim()] == [a[1]]


def test_block_holds_the_key_until_the_dead_head_is_replayed_and_the_replay_goes_last(block: Queue) -> None:
    a = [block.accept("ordered", "a") for _ in range(3)]
    b = block.accept("ordered", "b")
    first = block.claim()
    assert sorted(c.id for c in first) == [a[0], b]
    for claimed in first:
        block.finish(claimed, "failed" if claimed.id == a[0] else "failed_retryable", T0)
    assert block.claim() == []  # both keys are blocked by their dead heads
    request = ReplayRequest(a[0], "tester", T0, frozenset(block.ids.values()), force=True, may_force=True)
    result = block.db.write_sync(replay(request))
    assert result.outcome == "ok"
    assert result.new_execution_id is not None
    order = []
    for _ in range(3):
        [claimed] = block.claim()
        order.append(claimed.id)
        block.finish(claimed, "succeeded", T0)
    assert order == [a[1], a[2], result.new_execution_id]  # the replay took its place at the end of the key
    assert block.claim() == []  # b is still blocked: nobody replayed its head


def test_a_replay_keeps_the_ordering_key_and_queues_behind_the_key(cont: Queue) -> None:
    first = cont.accept("ordered", "a")
    [head] = cont.claim()
    cont.finish(head, "failed_retryable", T0)
    second = cont.accept("ordered", "a")
    [running] = cont.claim()
    assert running.id == second
    request = ReplayRequest(first, "tester", T0, frozenset(cont.ids.values()))
    result = cont.db.write_sync(replay(request))
    assert result.new_execution_id is not None
    assert cont.claim() == []  # the replay waits for the execution accepted before it
    cont.finish(running, "succeeded", T0)
    assert [c.id for c in cont.claim()] == [result.new_execution_id]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_claims_whose_snapshots_straddle_a_late_commit_never_lease_one_key_twice(db_url: str) -> None:
    """Two ingest transactions of one key commit out of id order; claim A leases the higher id, and claim B, whose
    snapshot sees the lower id (and A's row still pending), finds the lower id a head and locks it: SKIP LOCKED
    lets it. The per-key advisory lock makes B wait for A's commit and then give its row back."""
    engine = create_engine(db_url)
    declared = config()
    try:
        with engine.begin() as connection:
            ids = sync_triggers(connection, declared, T0)
        trigger = declared.trigger("ordered")
        assert trigger is not None

        def event() -> NewEvent:
            body = b'{"customer": {"id": "k"}}'
            return prepare(trigger, ids["ordered"], body=body, headers={}, received_at=T0, redactor=Redactor())

        def claim(connection: Connection) -> list[int]:
            job = queue.claim(list(ids.values()), 10, 30, T0, ordered=True)
            return [c.id for c in job(connection).executions]

        with engine.connect() as late, engine.connect() as a, engine.connect() as b:
            late.info[WRITER_THREAD_INFO] = 0  # two writer threads: their stats rollups go to different rows
            # A row made without the key's lock (an ingest takes it; a replay or an older node does not): uncommitted,
            # its id is the lower one.
            made = text(
                "INSERT INTO executions (event_id, trigger_id, action_kind, status, attempts, run_at, created_at, "
                "updated_at, ordering_key) SELECT id, trigger_id, 'command', 'pending', 0, :t, :t, :t, 'k' "
                "FROM events WHERE id = :event RETURNING id"
            )
            with engine.begin() as seed:
                [source] = store_events(seed, [replace(event(), filtered=True)])  # an event, no execution
            lower_id = late.execute(made, {"t": T0, "event": source.event_id}).scalar_one()
            with engine.begin() as early:
                early.info[WRITER_THREAD_INFO] = 1
                [higher] = store_events(early, [event()])
            lower = SimpleNamespace(execution_id=lower_id)
            assert higher.execution_id is not None
            assert lower.execution_id < higher.execution_id
            assert claim(a) == [higher.execution_id]  # A's lease and advisory lock stay uncommitted
            late.commit()
            with ThreadPoolExecutor(1) as pool:
                b_claim = pool.submit(claim, b)
                wait_until(lambda: _waiting_on_advisory_locks(engine) == 1 or b_claim.done())
                a.commit()
                assert b_claim.result(timeout=30) == []
            b.commit()
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, status FROM executions ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [(lower.execution_id, "pending"), (higher.execution_id, "running")]
    finally:
        engine.dispose()


def _waiting_on_advisory_locks(engine: Engine) -> int:
    with engine.connect() as connection:
        query = (
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return int(connection.execute(text(query)).scalar_one())


def test_keys_left_on_rows_order_nothing_once_no_trigger_orders(cont: Queue) -> None:
    a = [cont.accept("ordered", "a") for _ in range(3)]
    [head] = cont.claim()
    assert head.id == a[0]
    # A restart without ordering: the startup pass unparks the rows of triggers that no longer order.
    assert sorted(cont.db.write_sync(parking.release([], T0))) == a[1:]
    unordered = queue.claim(list(cont.ids.values()), 50, 30, T0)  # the worker's claim when no trigger orders
    assert sorted(c.id for c in asyncio.run(cont.db.write(unordered)).executions) == a[1:]
