"""Rollup tests' shared parts: a database with two triggers and a simulated clock, every rollup-served figure, and
the same figures counted from the raw tables (the property test and the migration test compare the two)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Engine, delete, insert, update
from sqlalchemy.engine import Connection

from redrive.alerts import measures
from redrive.alerts.conditions import DeadLetterGrowth, DeadLetters, FailureRate, Scope
from redrive.db.schema import bulk_replays, executions, rollup_backfill
from redrive.failures import bulk
from redrive.failures import error_groups as groups
from redrive.failures.replay import ReplayRequest, replay
from redrive.ingest.prepare import prepare
from redrive.ingest.store import StoreEvent
from redrive.node import retention
from redrive.node.heartbeats import NodeInfo, beat, reap
from redrive.observe import backfill, rollup_retention, rollups, stats, system
from redrive.observe.redaction import Redactor
from redrive.queue import statements as queue
from redrive.states import ExecutionStatus
from redrive.triggers import admin
from redrive.triggers.config import parse_config
from redrive.triggers.runtime import TriggerSet

T = TypeVar("T")
START = datetime(2026, 3, 1, 23, 58, 30, 250000, tzinfo=UTC)  # near midnight: days, hours and minutes all turn over
CONFIG = parse_config(
    """
triggers:
  - name: a
    action: {kind: command, argv: ["true"]}
  - name: b
    action: {kind: http, url: "http://127.0.0.1:9/hook", allow: [127.0.0.1]}
"""
)
LEASE = 30.0
HEARTBEAT = 5.0
FINGERPRINTS = ("fp_timeout", "fp_refused", "fp_500")
STEPS = (0.4, 1, 29, 59, 61, 600, 3599, 3601, 86399, 86401, 3 * 86400, 20 * 86400)  # 20 days: rollups trimmed
WINDOWS = (
    timedelta(seconds=20),
    timedelta(seconds=90),
    timedelta(minutes=61, seconds=7),
    timedelta(hours=26),
    timedelta(days=3, minutes=5),
    timedelta(days=7),
)
SERIES = (("1m", 60), ("5m", 300), ("1h", 3600), ("1d", 86400), ("30s", 30))


@dataclass
class History:
    """One database, the triggers, the simulated clock and what the workers hold."""

    engine: Engine
    triggers: TriggerSet
    ids: dict[str, int]
    now: datetime = START
    held: list[queue.Claimed] = field(default_factory=list)
    node: NodeInfo = field(default_factory=lambda: NodeInfo("deadbeef0001", "all", "h", 1, START))
    keys: Iterator[int] = field(default_factory=itertools.count)

    def write(self, job: Callable[[Connection], T]) -> T:
        with self.engine.begin() as connection:
            return job(connection)

    def read(self, job: Callable[[Connection], T]) -> T:
        with self.engine.connect() as connection:
            return job(connection)


def _ingest(h: History, trigger: str, count: int, repeat: bool) -> None:
    config = next(t for t in CONFIG.triggers if t.name == trigger)
    batch = []
    for n in range(count):
        key = f"k{next(h.keys)}" if not (repeat and n % 2) else "k-repeated"
        body = b'{"n": 1}' if n % 3 else b'{"n": 2}'  # the same key with another body: a conflict
        event = prepare(config, h.ids[trigger], body=body, headers={}, received_at=h.now, redactor=Redactor(), key=key)
        batch.append(StoreEvent(event))
    h.write(lambda c: StoreEvent.run_batch(c, batch))


def _claim(h: History, limit: int, by_node: bool) -> None:
    owner = h.node.id if by_node else ""
    if by_node:
        h.write(beat(h.node, 0, h.now))
    claim = h.write(queue.claim(list(h.ids.values()), limit, LEASE, h.now, owner=owner))
    h.held.extend(claim.executions)


def _complete(h: History, outcomes: list[str], fingerprint: int) -> None:
    results = []
    for claimed, outcome in zip(h.held, outcomes, strict=False):
        failed = outcome != "succeeded"
        status = {
            "succeeded": "succeeded",
            "retry": "pending",
            "held": "pending",
            "dead": "failed_retryable",
            "permanent": "failed",
        }[outcome]
        kind = "http" if claimed.trigger_id == h.ids["b"] else "command"
        completion = queue.Completion(
            execution_id=claimed.id,
            lease_token=claimed.lease_token,
            status=status,
            run_at=h.now if outcome == "retry" else None,
            started_at=h.now,
            finished_at=h.now,
            outcome="permanent" if outcome == "permanent" else ("transient" if failed else "succeeded"),
            error_category=None if not failed else "transient",
            error_code=None if not failed else "boom",
            message=None if not failed else "boom",
            detail={},
            excerpt=None,
            trigger_id=claimed.trigger_id,
            action_kind=kind,
            fingerprint=FINGERPRINTS[fingerprint] if failed else None,
            title="boom" if failed else None,
        )
        # "held": completed into an open breaker, as record_outcomes hands it back (destinations.holding)
        results.append(queue.held_by_breaker(completion) if outcome == "held" else completion)
    h.held = h.held[len(results) :]
    h.write(lambda c: queue.Complete.run_batch(c, [queue.complete(r) for r in results]))


def _replay(h: History, pick: int, force: bool) -> None:
    status = ExecutionStatus.FAILED if force else ExecutionStatus.FAILED_RETRYABLE
    ids = h.read(lambda c: list(c.execute(executions.select().where(executions.c.status == status)).scalars()))
    if ids:
        request = ReplayRequest(
            ids[pick % len(ids)], "tester", h.now, frozenset(h.ids.values()), force=force, may_force=True
        )
        h.write(replay(request))


def _bulk(h: History, trigger: str) -> None:
    f = bulk.BulkFilter(h.ids[trigger])
    plan = h.write(bulk.create(f, rate=100.0, actor="tester", now=h.now, shown_filter={}))
    if not isinstance(plan, bulk.Plan) or plan.max_id is None:
        return
    runnable = frozenset(h.ids.values())
    for execution_id in h.read(bulk.page(f, 0, plan.max_id)):
        h.write(bulk.step(plan.id, ReplayRequest(execution_id, "tester", h.now, runnable, bulk_replay_id=plan.id)))
    h.write(lambda c: c.execute(update(bulk_replays).values(status="done")))


def _purge(h: History, older_than: float) -> None:
    async def write(job: Callable[[Connection], T]) -> T:
        return h.write(job)

    async def both() -> None:
        retentions = {t.id: t.config.retention for t in h.triggers}
        await retention.purge(write, retention.plan(retentions, h.now, older_than))
        await rollup_retention.trim(write, h.now)  # as the leader's retention pass does

    asyncio.run(both())


def run(h: History, operation: tuple[Any, ...]) -> None:
    name, *args = operation
    if name == "ingest":
        if args[1]:
            _ingest(h, *args)
    elif name == "claim":
        _claim(h, *args)
    elif name == "complete":
        _complete(h, *args)
    elif name == "advance":
        h.now += timedelta(seconds=args[0])
    elif name == "sweep":
        h.write(queue.sweep(h.now))
    elif name == "reap":
        h.write(reap(h.now, HEARTBEAT))
    elif name == "replay":
        _replay(h, *args)
    elif name == "bulk":
        _bulk(h, *args)
    elif name == "purge":
        _purge(h, *args)
    elif name == "restart":
        h.write(backfill.restart())
    else:
        h.write(backfill.step(args[0]))


def figures(h: History) -> dict[str, Any]:
    """Every rollup-served figure at ``h.now``."""
    figures: dict[str, Any] = {}
    declared = list(h.triggers)
    for days in (1, 2, 30):
        figures[f"summary {days}d"] = h.read(stats.summary(declared, stats.Window(days, h.now)))
    for window, success, kind in itertools.product(WINDOWS, (None, True, False), (None, "http")):
        figures[f"count {window} {success} {kind}"] = h.read(
            stats.count_executions(stats.statuses_for(success), h.now - window, kind)
        )
    for window, (name, seconds), by in itertools.product(WINDOWS[:5], SERIES, ("status", "kind", "trigger")):
        if window / timedelta(seconds=seconds) < 2000:
            series = h.read(stats.timeseries(h.now - window, h.now, seconds, by))
            figures[f"series {window} {name} {by}"] = nonzero(series)
    for window, fingerprint in itertools.product(WINDOWS, FINGERPRINTS):
        series = h.read(stats.timeseries(h.now - window, h.now, 3600, "status", fingerprint))
        figures[f"series {window} {fingerprint}"] = nonzero(series)
        figures[f"group {window} {fingerprint}"] = h.read(groups.get_group(fingerprint, h.now - window))
    for window in WINDOWS:
        figures[f"groups {window}"] = h.read(groups.list_groups(groups.GroupFilter(h.now - window)))
    figures["triggers"] = h.read(admin.trigger_rows(list(h.ids.values()), stats.day_start(h.now)))
    # The alert rules' measures, for one trigger (the narrowing) and for every trigger, over every other window:
    # each figure here is read twice per example, and the windows' edges are covered by the counts above.
    scopes = [[next(iter(h.ids.values()))], list(h.ids.values())]
    for scope in scopes:
        names = tuple(str(trigger_id) for trigger_id in scope)
        figures[f"alert dlq_size {names}"] = h.read(
            partial(measures.dlq_size, DeadLetters(dlq_size=1), scope=Scope(tuple(scope), names), now=h.now)
        )
        for window in WINDOWS[1::2]:
            condition = DeadLetterGrowth(dlq_growth=1, window=window.total_seconds())
            measured = partial(measures.dlq_growth, condition, scope=Scope(tuple(scope), names), now=h.now)
            figures[f"alert dlq_growth {window} {names}"] = h.read(measured)
            condition = FailureRate(failure_rate=0.5, window=window.total_seconds())
            measured = partial(measures.failure_rate, condition, scope=Scope(tuple(scope), names), now=h.now)
            figures[f"alert failure_rate {window} {names}"] = h.read(measured)
    figures["queue"] = h.read(system.queue_snapshot(h.now))  # dead letters and replayed ones: all-time sums
    return figures


def nonzero(series: dict[int, dict[str, int]]) -> dict[int, dict[str, int]]:
    kept = {bucket: {k: n for k, n in counts.items() if n} for bucket, counts in series.items()}
    return {bucket: counts for bucket, counts in kept.items() if counts}


def brute_force(h: History) -> dict[str, Any]:
    """The same figures with the rollups declared unfinished, so every one is scanned from the raw tables."""
    rollups.forget()
    h.write(lambda c: c.execute(insert(rollup_backfill).values(source="brute", watermark=1, next_id=0)))
    try:
        return figures(h)
    finally:
        h.write(lambda c: c.execute(delete(rollup_backfill).where(rollup_backfill.c.source == "brute")))
        rollups.forget()
