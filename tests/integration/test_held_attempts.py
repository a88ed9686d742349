"""Attempts that complete into an open breaker, on both databases: held, not charged (``destinations.holding``).

Four attempts at one destination fail in one batch with a threshold of two: the first two are charged (the second
trips the breaker), the other two are held: back to pending where they were, their budget untouched, their attempt
rows recorded as not charged. Then two probes (the held rows, first in line) fail together: both are charged (the
second completes into the breaker the first reopened, but it was a probe), numbered after the held attempt.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from redrive.db.database import Database
from redrive.db.schema import executions
from redrive.destinations.breaker import Observed, Policy
from redrive.ingest.prepare import prepare
from redrive.ingest.store import store_event
from redrive.observe.redaction import Redactor
from redrive.queue import statements as queue
from redrive.queue.executions import get_execution
from redrive.triggers.config import BreakerConfig, parse_config
from redrive.triggers.runtime import sync_triggers

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = parse_config("triggers: [{name: t, action: {kind: command, argv: ['true']}}]")
POLICY = Policy(BreakerConfig(consecutive=2, cooldown=5, probes=2))
DESTINATION = "partner"


@pytest.fixture
def db(db_url: str):
    database = Database(db_url)
    database.start()
    yield database
    database.close()


def seed(db: Database, count: int) -> list[int]:
    ids = db.write_sync(lambda c: sync_triggers(c, CONFIG, T0))
    for n in range(count):
        event = prepare(
            CONFIG.triggers[0], ids["t"], body=b"{}", headers={}, received_at=T0, redactor=Redactor(), key=f"k{n}"
        )
        db.write_sync(store_event(event.__class__(**{**_fields(event), "destination": DESTINATION})))
    return [ids["t"]]


def _fields(event: object) -> dict[str, object]:
    return {name: getattr(event, name) for name in event.__slots__}  # type: ignore[attr-defined]


def claim(db: Database, triggers: list[int], limit: int, now: datetime) -> list[queue.Claimed]:
    job = queue.claim(triggers, limit, 30, now, policy_of=lambda name, trigger: POLICY)
    return db.write_sync(job).executions


def failed(claimed: queue.Claimed, started: datetime, finished: datetime) -> queue.Complete:
    """A transient failure the worker would retry in a minute."""
    return queue.complete(
        queue.Completion(
            execution_id=claimed.id,
            lease_token=claimed.lease_token,
            status="pending",
            run_at=finished + timedelta(minutes=1),
            started_at=started,
            finished_at=finished,
            outcome="transient",
            error_category="transient",
            error_code="connection_refused",
            message="down",
            detail={},
            excerpt=None,
            destination=DESTINATION,
            observed=Observed("transient", 0.01),
            policy=POLICY,
            probe=claimed.probe,  # as the worker carries it from the claim
        )
    )


def rows(db: Database, *columns: object) -> list[tuple[object, ...]]:
    query = select(*columns).order_by(executions.c.id)  # type: ignore[call-overload]
    return [tuple(row) for row in db.read_sync(lambda c: list(c.execute(query)))]


def test_attempts_into_an_open_breaker_are_held_and_probes_charged(db: Database) -> None:
    triggers = seed(db, 4)
    first = claim(db, triggers, 4, T0)
    assert [c.probe for c in first] == [False] * 4  # closed: nothing is probing
    batch = [failed(c, T0, T0 + timedelta(seconds=1)) for c in first]
    assert db.write_sync(lambda c: queue.Complete.run_batch(c, batch)) == [True] * 4
    assert [job.held for job in batch] == [False, False, True, True]
    assert [t.to_state for t in batch[0].transitions] == ["open"]
    retry_at = T0 + timedelta(seconds=61)
    assert rows(db, executions.c.status, executions.c.attempts, executions.c.uncharged, executions.c.run_at) == [
        ("pending", 1, 0, retry_at),
        ("pending", 1, 0, retry_at),
        ("pending", 0, 1, T0),  # held where it was: due, waiting for the breaker
        ("pending", 0, 1, T0),
    ]
    held_ids = [job.result.execution_id for job in batch[2:]]

    assert claim(db, triggers, 4, T0 + timedelta(seconds=3)) == []  # open: nothing goes
    probes = claim(db, triggers, 4, T0 + timedelta(seconds=6))  # half-open: two probes, the held rows first
    assert sorted(p.id for p in probes) == held_ids
    assert [p.probe for p in probes] == [True, True]
    started, finished = T0 + timedelta(seconds=6), T0 + timedelta(seconds=7)
    batch = [failed(p, started, finished) for p in probes]
    db.write_sync(lambda c: queue.Complete.run_batch(c, batch))
    assert [job.held for job in batch] == [False, False]  # the second came into an open breaker, but probed

    shown = db.read_sync(get_execution(held_ids[0]))
    assert shown is not None
    assert [(a["number"], a["charged"], a["note"]) for a in shown["attempts"]] == [
        (1, False, "held by the breaker: not charged"),  # numbered among the requests, not among the charges
        (2, True, None),
    ]
    assert (shown["attempt_count"], shown["uncharged"]) == (1, 1)


def test_a_probe_is_charged_whatever_the_clock_of_the_node_that_ran_it(db: Database) -> None:
    """Two probes fail together; the second completes into the breaker the first reopened. Its start, taken on a node
    whose clock runs behind, reads before the half-open transition another node recorded. It is told a probe by its
    claim, so it is charged all the same (told by times, it was held)."""
    triggers = seed(db, 4)
    batch = [failed(c, T0, T0 + timedelta(seconds=1)) for c in claim(db, triggers, 4, T0)]
    db.write_sync(lambda c: queue.Complete.run_batch(c, batch))
    probes = claim(db, triggers, 4, T0 + timedelta(seconds=6))  # half-open at T0 + 6 s: the two held rows probe
    behind = T0 + timedelta(seconds=5, milliseconds=500)  # the second node's clock: half a second behind
    finished = T0 + timedelta(seconds=7)
    batch = [failed(probes[0], T0 + timedelta(seconds=6), finished), failed(probes[1], behind, finished)]
    db.write_sync(lambda c: queue.Complete.run_batch(c, batch))
    assert [job.held for job in batch] == [False, False]
