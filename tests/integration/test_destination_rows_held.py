"""A writer transaction reads each destination's row once and writes it once (``destinations.store``'s ``_Held``).

Under load most writer transactions carry a claim and a batch of completions at the same restricted destination.
Each used to lock and read the row and write it back; now the first job's read is held for the rest of the
transaction, and what every job changed is written when all have run. These tests run several jobs in one writer
transaction (a gate job holds the writer while they queue) and look at the statements and at the row it leaves.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest
from queue_support import HELD, HELD_AND_HEALTHY, T0, destination_statements, store, succeeded, trigger_set
from sqlalchemy import Connection, Engine, event, select

from redrive.db.schema import destinations
from redrive.db.writer import Writer
from redrive.destinations.breaker import Observed, Policy
from redrive.destinations.policy import Seed
from redrive.destinations.store import Outcome, force_job, record_outcomes, seed_rows, sync_limits
from redrive.queue import statements as queue
from redrive.triggers.config import BreakerConfig
from redrive.triggers.runtime import TriggerSet

LIMITED = """
triggers:
  - name: limited
    action: {kind: http, url: "https://limited.example/hook"}
    limits: {rate: 100/s, concurrency: 10}
"""
DESTINATION = "https://limited.example:443"
NOW = T0 + timedelta(minutes=1)


def in_one_transaction(engine: Engine, jobs: Sequence[Callable[[Connection], Any]]) -> list[Any]:
    """Run ``jobs`` through a writer, all in one transaction: they queue while a gate job holds the writer."""
    writer = Writer(engine)
    writer.start()
    started, gate = threading.Event(), threading.Event()
    commits = [0]

    def gate_job(connection: Connection) -> None:
        started.set()
        assert gate.wait(30)

    def committed(*_: Any) -> None:
        commits[0] += 1

    async def submit() -> list[Any]:
        gated = asyncio.ensure_future(writer.run(gate_job))
        assert await asyncio.to_thread(started.wait, 30)
        queued = [asyncio.ensure_future(writer.run(job)) for job in jobs]
        await asyncio.sleep(0)  # each task puts its job in the writer's queue
        event.listen(engine, "commit", committed)
        gate.set()
        await gated
        return list(await asyncio.gather(*queued))

    try:
        results = asyncio.run(submit())
    finally:
        writer.close()
        event.remove(engine, "commit", committed)
    assert commits[0] == 2  # the gate's transaction, then one for every job
    return results


def claim(triggers: TriggerSet, limit: int, *, plan_first: bool = True) -> Callable[[Connection], queue.Claim]:
    return queue.claim(triggers.ids, limit, 30, NOW, policy_of=triggers.policies.of, plan_first=plan_first)


def completed(claimed: queue.Claimed, triggers: TriggerSet) -> queue.Complete:
    """The job recording a successful attempt at ``claimed``, counted at its destination."""
    counted = {"destination": claimed.destination, "observed": Observed("succeeded", 0.05)}
    policy = triggers.policies.of(DESTINATION)
    return queue.complete(
        succeeded(claimed, NOW, trigger_id=claimed.trigger_id, action_kind="http", policy=policy, **counted)
    )


def row(engine: Engine, name: str) -> Any:
    with engine.connect() as connection:
        return connection.execute(select(destinations).where(destinations.c.name == name)).one()


def test_a_claim_and_a_completion_in_one_transaction_read_and_write_the_row_once(engine: Engine) -> None:
    triggers = trigger_set(engine, LIMITED, T0)
    with engine.begin() as connection:
        sync_limits(triggers.policies.limited(), T0)(connection)  # as the service does at start
    store(engine, triggers, "limited", 6, T0)
    with engine.begin() as connection:
        first = claim(triggers, 2)(connection)
    assert len(first.executions) == 2
    tokens = row(engine, DESTINATION).tokens
    with destination_statements(engine) as seen:
        second, *applied = in_one_transaction(
            engine, [claim(triggers, 3)] + [completed(c, triggers) for c in first.executions]
        )
    assert applied == [True, True]
    assert len(second.executions) == 3
    # Were: the claim's read, count and save, then the completions' read and save. SQLite counts in the read; on
    # PostgreSQL the count waits for the read's locks (``plan_claim``).
    assert seen == (["select", "update"] if engine.dialect.name == "sqlite" else ["select", "count", "update"])
    after = row(engine, DESTINATION)
    assert after.window_total == 2  # the completions counted...
    assert after.tokens == pytest.approx(tokens - 3)  # ...on the row the claim spent its tokens on (same moment)
    assert after.restricted is True


def test_a_claim_that_leases_before_planning_sees_a_force_made_earlier_in_its_transaction(engine: Engine) -> None:
    """The lease that skips the plan reads which destinations are restricted from their rows: an operator's force,
    held by the transaction, is written before it."""
    triggers = trigger_set(engine, HELD_AND_HEALTHY, T0)
    store(engine, triggers, "held", 3, T0)
    store(engine, triggers, "healthy", 3, T0)
    _, found = in_one_transaction(
        engine, [force_job(HELD, "open", "operator", NOW), claim(triggers, 10, plan_first=False)]
    )
    assert {triggers.by_id(c.trigger_id).name for c in found.executions} == {"healthy"}  # type: ignore[union-attr]
    assert row(engine, HELD).state == "open"


def test_a_statement_that_updates_rows_the_transaction_holds_is_not_undone_by_their_write(engine: Engine) -> None:
    """``sync_limits`` marks a row restricted in the table; what the transaction counted on that row before is
    written before it, not over it at the end."""
    name = "https://crm.example:443"

    def counted(connection: Connection) -> None:
        record_outcomes(connection, [Outcome(name, Observed("succeeded", 0.01), Policy(BreakerConfig()))], NOW)

    in_one_transaction(engine, [counted, sync_limits({name: Policy(None, rate=5.0)}, NOW)])
    after = row(engine, name)
    assert after.window_total == 1  # counted, and written first
    assert after.restricted is True  # then marked, and kept


def test_a_templated_destination_adopted_after_the_transaction_counted_on_it_keeps_its_trigger(
    engine: Engine,
) -> None:
    """Ingest shapes a templated destination's row for its trigger (``_adopt``); the transaction counted an outcome
    on that row first: the count is written before the adoption, and the adoption is not written over."""
    name = "https://tenant-1.example:443"
    limited = Policy(BreakerConfig(), rate=5.0)

    def counted(connection: Connection) -> None:
        record_outcomes(connection, [Outcome(name, Observed("succeeded", 0.01), Policy(BreakerConfig()))], NOW)

    def seeded(connection: Connection) -> None:
        seed_rows(connection, {name: Seed("tenants", limited)}, NOW)

    in_one_transaction(engine, [counted, seeded])
    after = row(engine, name)
    assert after.window_total == 1
    assert (after.trigger, after.rate, after.restricted) == ("tenants", 5.0, True)
