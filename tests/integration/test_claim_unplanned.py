"""A claim that skips the plan while nothing is restricted (``queue.claim``'s ``plan_first=False``).

A claim plans the restricted destinations (breakers open or probing, limits, ramps, ``Retry-After``) under their row
locks before it leases. Nearly always there are none, and the plan is a read that finds nothing. So a worker whose
last claim found none leases first, leaving out every destination restricted in the lease's own statement, and
plans only when that statement says one is (or it leased nothing). The rows of a restricted destination are never
leased outside its plan either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from queue_support import HELD, HELD_AND_HEALTHY, T0, store, trigger_set
from sqlalchemy import Engine, select

from redrive.db.schema import events
from redrive.destinations.store import force_job
from redrive.ingest.prepare import prepare
from redrive.ingest.store import store_events
from redrive.observe.redaction import Redactor
from redrive.queue import statements as queue
from redrive.triggers.runtime import TriggerSet
from support import statements_seen

NOW = T0 + timedelta(minutes=1)


@pytest.fixture
def triggers(engine: Engine) -> TriggerSet:
    return trigger_set(engine, HELD_AND_HEALTHY, T0)


@contextmanager
def statements_run(engine: Engine) -> Iterator[Callable[[], int]]:
    """How many statements the engine runs inside the block (``support.statements_seen``)."""
    with statements_seen(engine) as seen:
        yield lambda: len(seen)


def claim(engine: Engine, triggers: TriggerSet, *, plan_first: bool, limit: int = 5) -> tuple[queue.Claim, int]:
    job = queue.claim(triggers.ids, limit, 30, NOW, policy_of=triggers.policies.of, plan_first=plan_first)
    with statements_run(engine) as run, engine.begin() as connection:
        found = job(connection)
    return found, run()


def event_row(engine: Engine, event_id: int) -> Any:
    with engine.connect() as connection:
        return connection.execute(select(events).where(events.c.id == event_id)).one()


def leased_triggers(found: queue.Claim, triggers: TriggerSet) -> set[str]:
    return {triggers.by_id(one.trigger_id).name for one in found.executions}  # type: ignore[union-attr]


def test_with_nothing_restricted_a_claim_that_skips_the_plan_runs_fewer_statements(
    engine: Engine, triggers: TriggerSet
) -> None:
    """One fewer: the plan's read. On PostgreSQL two: the lease also reads the leased rows' events (a round trip
    per claim), where SQLite, which takes no UPDATE in a WITH, reads them after it."""
    trigger = triggers.by_name("healthy")
    assert trigger is not None
    made = [
        prepare(
            trigger.config,
            trigger.id,
            body=f'{{"n": {n}}}'.encode(),
            headers={"x-n": str(n)},
            received_at=T0 + timedelta(seconds=n),
            redactor=Redactor(),
            destination=trigger.destination,
        )
        for n in range(10)
    ]
    with engine.begin() as connection:
        store_events(connection, made)
    planned, planned_statements = claim(engine, triggers, plan_first=True)
    unplanned, unplanned_statements = claim(engine, triggers, plan_first=False)
    assert len(planned.executions) == len(unplanned.executions) == 5
    assert not planned.restricted
    assert not unplanned.restricted
    assert unplanned_statements == planned_statements - (2 if engine.dialect.name == "postgresql" else 1)
    for found in (planned, unplanned):  # each way, every execution carries its own event
        for one in found.executions:
            stored_event = event_row(engine, one.event_id)
            carried = (one.payload, one.headers, one.idempotency_key, one.received_at)
            assert carried == (
                stored_event.payload,
                stored_event.headers,
                stored_event.idempotency_key,
                stored_event.received_at,
            )


def test_a_restricted_destination_is_left_out_of_the_lease_and_planned(engine: Engine, triggers: TriggerSet) -> None:
    with engine.begin() as connection:
        force_job(HELD, "open", "operator", T0)(connection)
    store(engine, triggers, "held", 5, T0)
    store(engine, triggers, "healthy", 5, T0)
    found, _ = claim(engine, triggers, plan_first=False, limit=10)
    assert leased_triggers(found, triggers) == {"healthy"}
    assert len(found.executions) == 5
    assert found.restricted  # the next claim plans first


def test_a_lease_that_finds_nothing_plans(engine: Engine, triggers: TriggerSet) -> None:
    with engine.begin() as connection:
        force_job(HELD, "open", "operator", T0)(connection)
    store(engine, triggers, "held", 5, T0)
    found, _ = claim(engine, triggers, plan_first=False)
    assert found.executions == []
    assert found.restricted


def test_an_idle_claim_that_skips_the_plan_runs_no_more_statements_than_one_that_plans(
    engine: Engine, triggers: TriggerSet
) -> None:
    """Nothing queued, nothing restricted: the lease finds nothing and the plan nothing, and the free range is not
    read a second time (the poll of an idle worker)."""
    planned, planned_statements = claim(engine, triggers, plan_first=True)
    unplanned, unplanned_statements = claim(engine, triggers, plan_first=False)
    assert planned.executions == unplanned.executions == []
    assert not unplanned.restricted
    assert unplanned_statements == planned_statements
