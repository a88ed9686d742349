"""Hysteresis, on both databases, on a clock the test moves: a failure rate oscillating around the firing threshold
for two minutes of simulated time fires once and does not flap; the same series without a lower resolve threshold
flaps (so the first test could fail); a quiet period holds a resolution back; repeat re-notifies while firing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from redrive.alerts.engine import AlertEngine, AlertSetup
from redrive.alerts.message import Voice
from redrive.alerts.service import rule_scope
from redrive.db.database import Database
from redrive.db.schema import alert_transitions
from redrive.destinations.breaker import Observed, Policy
from redrive.destinations.store import Outcome, force_job, plan_claim, record_outcomes
from redrive.extensions import AlertChannel, AlertNotification
from redrive.failures.error_groups import Attend, attend, record_failure
from redrive.failures.hints import hint_for
from redrive.ingest.prepare import prepare
from redrive.ingest.store import StoreEvent, store_event
from redrive.observe.redaction import Redactor
from redrive.plugins import builtin_registry
from redrive.queue import statements as queue
from redrive.triggers.config import BreakerConfig, parse_config
from redrive.triggers.runtime import build_trigger_set, sync_triggers

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STEP = 5  # seconds of simulated time between evaluations


class Collected(AlertChannel):
    """A channel that keeps what it is sent."""

    def __init__(self) -> None:
        self.sent: list[AlertNotification] = []

    async def send(self, notification: AlertNotification) -> None:
        self.sent.append(notification)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    database.start()
    yield database
    database.close()


def engine_for(
    db: Database, when: str, clock: list[datetime], *, extra: str = "", published: list[Any] | None = None
) -> tuple[AlertEngine, Collected, int]:
    """An engine for one rule on trigger ``t`` with a collecting channel, and the id of an execution to hang
    attempts on."""
    config = parse_config(
        f"""
triggers: [{{name: t, action: {{kind: command, argv: ["true"]}}}}]
alerts: [{{name: r, when: {when}, notify: [c]{extra}}}]
channels: [{{name: c, kind: trigger, trigger: t}}]
"""
    )
    ids = db.write_sync(lambda c: sync_triggers(c, config, T0))
    triggers = build_trigger_set(config, ids, builtin_registry())
    event = prepare(config.triggers[0], ids["t"], body=b"{}", headers={}, received_at=T0, redactor=Redactor(), key="k")
    stored = db.write_sync(store_event(event))
    assert stored.execution_id is not None
    channel = Collected()
    setup = AlertSetup(config.alerts, {"c": channel}, rule_scope(triggers), Voice(hint_for))
    stream = published if published is not None else []
    engine = AlertEngine(
        db,
        setup,
        clock=lambda: clock[0],
        is_leader=lambda: True,
        interval=3600,
        publish=lambda kind, data: stream.append((kind, data)),
    )
    return engine, channel, stored.execution_id


def add_attempts(db: Database, at: datetime, total: int, failed: int) -> None:
    """``total`` attempts of trigger ``t`` finishing at ``at``, the first ``failed`` of them transient failures (dead
    letters), through the live path (events stored, claimed, completed), so the rollups count them as they would."""
    trigger_id = db.read_sync(lambda c: c.exec_driver_sql("SELECT id FROM triggers WHERE name = 't'").scalar_one())
    trigger = parse_config('triggers: [{name: t, action: {kind: command, argv: ["true"]}}]').triggers[0]
    redactor = Redactor()
    batch = [
        StoreEvent(prepare(trigger, trigger_id, body=b"{}", headers={}, received_at=at, redactor=redactor, key=None))
        for _ in range(total)
    ]
    db.write_sync(lambda c: StoreEvent.run_batch(c, batch))
    claimed = db.write_sync(queue.claim([trigger_id], total, 60, at)).executions
    assert len(claimed) == total
    results = [
        queue.Completion(
            execution_id=one.id,
            lease_token=one.lease_token,
            status="failed_retryable" if n < failed else "succeeded",
            run_at=None,
            started_at=at,
            finished_at=at,
            outcome="transient" if n < failed else "succeeded",
            error_category="transient" if n < failed else None,
            error_code="exit_code" if n < failed else None,
            message="exit 1" if n < failed else None,
            detail={},
            excerpt=None,
            trigger_id=trigger_id,
            action_kind="command",
            fingerprint="f" * 16 if n < failed else None,
            title="exit 1" if n < failed else None,
        )
        for n, one in enumerate(claimed)
    ]
    assert db.write_sync(lambda c: queue.Complete.run_batch(c, [queue.complete(r) for r in results])) == [True] * total


def oscillate(db: Database, when: str) -> list[str]:
    """Two minutes of simulated time: every 5 s, 100 attempts failing at 4 % then 6 % in turn; evaluate and
    deliver after each step. The kinds of the notifications sent."""
    clock = [T0]
    engine, channel, _ = engine_for(db, when, clock)

    async def scenario() -> None:
        for step in range(120 // STEP):
            clock[0] = T0 + timedelta(seconds=STEP * step)
            add_attempts(db, clock[0], 100, 6 if step % 2 else 4)
            await engine.evaluate_once()
            await engine.deliver_once()

    asyncio.run(scenario())
    return [n.kind for n in channel.sent]


def test_a_rate_hovering_at_the_threshold_fires_at_most_once_and_never_flaps(db: Database) -> None:
    sent = oscillate(db, '{failure_rate: ">= 5%", window: 10s, min_attempts: 20, resolve_below: 2%}')
    assert sent.count("firing") <= 1
    assert sent.count("resolved") <= 1
    assert sent == ["firing"]  # it did hover above the threshold: one firing, and no resolution while it hovers


def test_without_a_lower_resolve_threshold_the_same_series_flaps(db: Database) -> None:
    sent = oscillate(db, '{failure_rate: ">= 5%", window: 4s, min_attempts: 20}')  # each pass sees one step
    assert sent.count("firing") > 1  # what hysteresis prevents


def test_a_quiet_period_holds_the_resolution_and_repeat_renotifies(db: Database) -> None:
    clock = [T0]
    when = '{failure_rate: ">= 50%", window: 10s, min_attempts: 5}'
    published: list[Any] = []
    engine, channel, _ = engine_for(db, when, clock, extra=", quiet: 30s, repeat: 1m", published=published)

    async def at(seconds: int, failed: int | None = None) -> list[str]:
        clock[0] = T0 + timedelta(seconds=seconds)
        if failed is not None:
            add_attempts(db, clock[0], 10, failed)
        keys = await engine.evaluate_once()
        await engine.deliver_once()
        return keys

    async def scenario() -> None:
        assert await at(0, failed=10) == ["r:1:firing"]
        assert await at(15) == []  # cleared (the window is empty) but quiet for 0 s of 30
        assert await at(40) == []  # 25 s of 30
        assert await at(45) == ["r:2:resolved"]
        assert await at(50, failed=10) == ["r:3:firing"]
        assert await at(55, failed=10) == []
        assert await at(109, failed=10) == []
        assert await at(110, failed=10) == ["r:4:repeat"]  # 60 s after the firing notification
        assert await at(115, failed=10) == []

    asyncio.run(scenario())
    kinds = [n.kind for n in channel.sent]
    assert kinds == ["firing", "resolved", "firing", "repeat"]
    assert [(kind, data["key"]) for kind, data in published] == [
        ("alert", "r:1:firing"),
        ("alert", "r:2:resolved"),
        ("alert", "r:3:firing"),
        ("alert", "r:4:repeat"),
    ]  # each transition goes on the live stream
    rows = db.read_sync(lambda c: c.execute(alert_transitions.select().order_by(alert_transitions.c.id)).all())
    assert [r.key for r in rows] == ["r:1:firing", "r:2:resolved", "r:3:firing", "r:4:repeat"]


def test_an_acknowledged_cause_silences_the_repeats_until_it_is_unacknowledged(db: Database) -> None:
    clock = [T0]
    when = '{failure_rate: ">= 50%", window: 10s, min_attempts: 5}'
    engine, channel, execution_id = engine_for(db, when, clock, extra=", repeat: 1m")
    trigger_id = db.read_sync(lambda c: c.exec_driver_sql("SELECT id FROM triggers WHERE name = 't'").scalar_one())

    def fail(seconds: int) -> None:
        clock[0] = T0 + timedelta(seconds=seconds)
        add_attempts(db, clock[0], 10, 10)
        for _ in range(10):
            db.write_sync(
                lambda c: record_failure(
                    c,
                    fingerprint="f" * 16,
                    trigger_id=trigger_id,
                    kind="command",
                    code="exit_code",
                    category="transient",
                    title="exit 1",
                    execution_id=execution_id,
                    at=clock[0],
                )
            )

    async def at(seconds: int) -> list[str]:
        fail(seconds)
        keys = await engine.evaluate_once()
        await engine.deliver_once()
        return keys

    async def scenario() -> None:
        assert await at(0) == ["r:1:firing"]
        acknowledged = Attend("acknowledge", "alice", clock[0], note="on it")
        assert db.write_sync(attend("f" * 16, acknowledged))
        assert await at(60) == []  # a reminder was due; the cause is acknowledged
        assert await at(120) == []
        assert db.write_sync(attend("f" * 16, Attend("unacknowledge", "alice", clock[0])))
        assert await at(125) == ["r:2:repeat"]  # still firing all along: the reminders resume

    asyncio.run(scenario())
    assert [n.kind for n in channel.sent] == ["firing", "repeat"]


def test_a_breaker_held_open_fires_after_its_duration_and_resolves_when_it_closes(db: Database) -> None:
    clock = [T0]
    engine, channel, _ = engine_for(db, "{breaker_open: 30s}", clock)
    policy = Policy(BreakerConfig(consecutive=3, cooldown=10, max_cooldown=60))
    down = "https://down.example:443"

    def attempts_at(seconds: int, outcome: str, times: int = 1) -> None:
        clock[0] = T0 + timedelta(seconds=seconds)
        observed = [Outcome(down, Observed(outcome, 0.1), policy)] * times  # type: ignore[arg-type]
        db.write_sync(lambda c: record_outcomes(c, observed, clock[0]))

    def claim_at(seconds: int) -> None:  # what a worker's claim does: past the cool-down, a probe goes half-open
        clock[0] = T0 + timedelta(seconds=seconds)

        def job(connection: Any) -> None:
            planned = plan_claim(connection, lambda name, trigger: policy, clock[0])
            planned.commit(connection, {down: planned.allowances.get(down, 0)}, clock[0])

        db.write_sync(job)

    async def at(seconds: int) -> list[str]:
        clock[0] = T0 + timedelta(seconds=seconds)
        keys = await engine.evaluate_once()
        await engine.deliver_once()
        return keys

    async def scenario() -> None:
        attempts_at(0, "transient", times=3)  # three in a row: the breaker opens, 10 s of cool-down
        claim_at(12)  # half-open: one probe
        attempts_at(13, "transient")  # the probe fails: open again, 20 s; the outage still counts from 0 s
        assert await at(29) == []  # held for 29 s of 30
        assert await at(31) == ["r:1:firing"]
        # A breaker an operator forces open (maintenance) is not an outage.
        db.write_sync(force_job("https://maintenance.example:443", "open", "alice", clock[0]))
        claim_at(34)
        attempts_at(35, "succeeded")  # the probe gets through: closed
        assert await at(36) == ["r:2:resolved"]
        assert await at(500) == []  # the forced one stays open, quietly

    asyncio.run(scenario())
    assert [n.kind for n in channel.sent] == ["firing", "resolved"]
    assert "https://down.example:443" in channel.sent[0].text


def test_the_leader_purges_history_older_than_30_days(db: Database) -> None:
    clock = [T0]
    engine, channel, _ = engine_for(db, '{failure_rate: ">= 50%", window: 10s, min_attempts: 5}', clock)

    async def scenario() -> None:
        add_attempts(db, T0, 10, 10)
        assert await engine.evaluate_once() == ["r:1:firing"]
        await engine.deliver_once()
        clock[0] = T0 + timedelta(days=31)
        assert await engine.evaluate_once() == ["r:2:resolved"]  # recorded, then the month-old firing purged

    asyncio.run(scenario())
    assert [n.kind for n in channel.sent] == ["firing"]
    rows = db.read_sync(lambda c: c.execute(alert_transitions.select()).all())
    assert [r.key for r in rows] == ["r:2:resolved"]  # pending delivery: kept
