"""A held destination's backlog is laned: other destinations' claims never walk it.

While a destination's claims are held (an open breaker, an operator's maintenance, a ``Retry-After``) or capped by
its limits, its due rows wait in the queue. A claim for everything else reads ``ix_executions_due`` in ``run_at``
order, and the held rows are the oldest there: it used to step over every one of them, on every claim, for as long
as the outage lasted (``benchmarks/held_backlog.py``: 40 ms a claim at 100,000 held rows). Now a claim that finds a
capped destination with more due rows than it may take lanes them (``dest_waiting``), out of the free range; they are
claimed through their destination's own range, and unlaned when it is no longer restricted.

The rows a claim reads are counted by the database itself: on PostgreSQL the transaction's own table and index
statistics (``pg_stat_xact_user_*``), on SQLite the virtual machine's steps (a progress handler).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from queue_support import HELD, HELD_AND_HEALTHY, T0, store, trigger_set
from sqlalchemy import Connection, Engine, text

from redrive.destinations.store import force_job
from redrive.queue import statements as queue
from redrive.triggers.runtime import TriggerSet

BACKLOG = 2_000


def _triggers(engine: Engine) -> TriggerSet:
    return trigger_set(engine, HELD_AND_HEALTHY, T0)


def _claim(triggers: TriggerSet, now: datetime, limit: int = 50) -> Callable[[Connection], queue.Claim]:
    return queue.claim(triggers.ids, limit, 30, now, policy_of=triggers.policies.of)


@contextmanager
def _counting(connection: Connection) -> Iterator[Callable[[], int]]:
    """Count what the statements run inside read of the executions table: PostgreSQL's rows read from its heap and
    indexes in this transaction; SQLite's virtual machine steps (in hundreds)."""
    if connection.dialect.name == "postgresql":
        # Entries returned by each index of the table (before any filter), and rows read by sequential scans.
        reads = text(
            "SELECT sum(pg_stat_get_xact_tuples_returned(r)) FROM (SELECT indexrelid AS r FROM pg_index "
            "WHERE indrelid = 'executions'::regclass UNION ALL SELECT 'executions'::regclass) AS relations"
        )
        before = int(connection.execute(reads).scalar_one())
        yield lambda: int(connection.execute(reads).scalar_one()) - before
        return
    steps = [0]

    def step() -> int:
        steps[0] += 1
        return 0

    raw: Any = connection.connection.driver_connection
    raw.set_progress_handler(step, 100)
    try:
        yield lambda: steps[0]
    finally:
        raw.set_progress_handler(None, 100)


def _cost_of_a_claim(engine: Engine, job: Callable[[Connection], queue.Claim]) -> tuple[int, queue.Claim]:
    with engine.connect() as connection, connection.begin(), _counting(connection) as read:
        found = job(connection)
        return read(), found


def _vacuumed(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":  # as autovacuum would: the dead versions laning left are not the point
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE executions"))


@pytest.mark.parametrize("stored", ["before the hold", "during the hold"])
def test_a_held_backlog_costs_the_other_claims_nothing(engine: Engine, stored: str) -> None:
    """2,000 events wait for a destination an operator forced open: the claims that lease another destination's
    rows read no more than they do with nothing held (the first claim after they arrive lanes them, once)."""
    triggers = _triggers(engine)
    now = T0 + timedelta(minutes=1)
    with engine.begin() as connection:
        force_job(HELD, "open", "operator", T0)(connection)
    store(engine, triggers, "healthy", 40, now)
    _vacuumed(engine)
    idle, found = _cost_of_a_claim(engine, _claim(triggers, now, limit=10))
    assert len(found.executions) == 10

    if stored == "before the hold":  # the backlog was there when the breaker opened: reset, store, open again
        with engine.begin() as connection:
            force_job(HELD, "reset", "operator", T0)(connection)
        store(engine, triggers, "held", BACKLOG, T0)
        with engine.begin() as connection:
            force_job(HELD, "open", "operator", T0)(connection)
    else:
        store(engine, triggers, "held", BACKLOG, T0)
    _cost_of_a_claim(engine, _claim(triggers, now, limit=10))  # the claim that finds the backlog lanes it
    _vacuumed(engine)
    busy, found = _cost_of_a_claim(engine, _claim(triggers, now, limit=10))

    assert [c.destination for c in found.executions] == ["https://healthy.example:443"] * 10
    print(f"{engine.dialect.name}: a claim of 10 read {idle} with nothing held, {busy} with {BACKLOG} held")
    assert busy <= 2 * idle + 20, (idle, busy)  # the old claim read every held row: 2,000 more


def test_a_laned_backlog_flows_again_when_its_destination_is_released(engine: Engine) -> None:
    """150 held rows laned while forced open; forced closed, the destination is claimed through its own range and
    one row is leased (which unlanes it: a lane holds pending rows only); reset, everything is unlaned: the leased
    row, given back (a graceful stop), is claimed with the rest from the free range (none stranded in a lane no
    claim reads)."""
    triggers = _triggers(engine)
    now = T0 + timedelta(minutes=1)
    store(engine, triggers, "held", 150, T0)
    with engine.begin() as connection:
        force_job(HELD, "open", "operator", T0)(connection)
    assert _cost_of_a_claim(engine, _claim(triggers, now))[1].executions == []  # lanes the 150
    assert _laned(engine) == 150

    with engine.begin() as connection:
        force_job(HELD, "close", "operator", now)(connection)
    [running] = _cost_of_a_claim(engine, _claim(triggers, now, limit=1))[1].executions
    assert _laned(engine) == 149
    with engine.begin() as connection:
        force_job(HELD, "reset", "operator", now)(connection)
    assert _laned(engine) == 0
    with engine.begin() as connection:
        assert queue.release([(running.id, running.lease_token)], now)(connection) == 1

    later = now + timedelta(minutes=5)  # past the ramp a reset starts after an outage
    found = _cost_of_a_claim(engine, _claim(triggers, later, limit=200))[1]
    assert len(found.executions) == 150
    assert running.id in {c.id for c in found.executions}


def _laned(engine: Engine) -> int:
    with engine.begin() as connection:
        return int(connection.execute(text("SELECT count(*) FROM executions WHERE dest_waiting")).scalar_one())


def test_releasing_a_lane_never_waits_on_a_running_row(engine: Engine) -> None:
    """PostgreSQL: a completion locks its running rows, then their destination; the release of a lane runs with the
    destination locked. Were running rows laned, the release would wait for a completion's row lock while that
    completion waited for the destination's: a deadlock. A lease unlanes what it takes, so the release (here an
    operator's reset) commits while a completion holds its running row."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's: SQLite's single writer serialises these transactions")
    triggers = _triggers(engine)
    now = T0 + timedelta(minutes=1)
    store(engine, triggers, "held", 150, T0)
    with engine.begin() as connection:
        force_job(HELD, "open", "operator", T0)(connection)
    _cost_of_a_claim(engine, _claim(triggers, now))  # lanes the 150
    with engine.begin() as connection:
        force_job(HELD, "close", "operator", now)(connection)
    [running] = _cost_of_a_claim(engine, _claim(triggers, now, limit=1))[1].executions

    released: list[object] = []

    def reset() -> None:
        with engine.begin() as connection:
            released.append(force_job(HELD, "reset", "operator", now)(connection))

    with engine.connect() as completion, completion.begin():  # a completion's first step: its running rows, locked
        completion.execute(text("SELECT id FROM executions WHERE id = :id FOR UPDATE"), {"id": running.id})
        thread = threading.Thread(target=reset)
        thread.start()
        thread.join(timeout=30)
        done = not thread.is_alive()
        completion.rollback()
    thread.join()
    assert done, "the release of the lane waited for a running row's lock"
    assert released
    assert _laned(engine) == 0
