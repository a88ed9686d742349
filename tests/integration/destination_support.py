"""A worker with an injected clock and a ``target`` action kind whose health the test scripts, for the destination
tests (breaker, drain, pacing, limits). No HTTP: each attempt asks the ``Target`` what to answer, by the clock.

What must not happen is shown without sleeping (as in test_worker_unit.py): ``claimed_after_now`` runs a sentinel
execution of another destination through the worker; the claim that took it ran at the clock's current time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from sqlalchemy import func, select

import redrive
from redrive.actions import Outcome
from redrive.db.database import Database
from redrive.db.schema import attempts, breaker_transitions, executions
from redrive.failures.classify import Failure, transient
from redrive.ingest.prepare import prepare
from redrive.ingest.store import store_event
from redrive.observe.redaction import Redactor
from redrive.plugins import load_plugins
from redrive.queue.worker import Worker
from redrive.settings import Settings
from redrive.triggers.config import RedriveConfig, parse_config
from redrive.triggers.fields import StrictModel
from redrive.triggers.runtime import build_trigger_set, sync_triggers
from support import wait_until

START = datetime(2031, 5, 4, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """``START`` plus ``seconds``."""
    return START + timedelta(seconds=seconds)


class Clock:
    """The injected clock: it stands still until the test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass
class Target:
    """What the ``target`` kind answers: a transient failure while ``down_until`` is ahead of the clock, any
    ``answers`` queued for a trigger first, success otherwise. ``arrivals`` records (trigger, clock time)."""

    clock: Clock
    down_until: datetime | None = None
    answers: dict[str, list[Failure]] = field(default_factory=dict)
    arrivals: list[tuple[str, datetime]] = field(default_factory=list)

    def answer(self, trigger: str) -> Failure | None:
        now = self.clock()
        self.arrivals.append((trigger, now))
        queued = self.answers.get(trigger)
        if queued:
            return queued.pop(0)
        if trigger != "sentinel" and self.down_until is not None and now < self.down_until:
            return transient("connection_refused", "the target is down")
        return None


class TargetConfig(StrictModel):
    kind: Literal["target"]


class TargetAction:
    def __init__(self, target: Target) -> None:
        self._target = target

    def render(self, context: Mapping[str, Any]) -> dict[str, Any]:
        return {"trigger": context["trigger"]["name"]}

    async def execute(self, rendered: Mapping[str, Any], resources: Mapping[str, Any]) -> Outcome:
        return Outcome(self._target.answer(rendered["trigger"]), {})


class TargetPlugin:
    name = "target"

    def __init__(self, target: Target) -> None:
        self.target = target

    @redrive.hookimpl
    def redrive_action_kinds(self) -> list[redrive.ActionKind]:
        return [
            redrive.ActionKind(
                name="target",
                config=TargetConfig,
                build=lambda config: TargetAction(self.target),
                summary=lambda rendered: "target",
            )
        ]


SENTINEL = """
  - name: sentinel
    action: {kind: target}
"""


@dataclass
class Harness:
    db: Database
    worker: Worker
    clock: Clock
    target: Target
    config: RedriveConfig
    ids: dict[str, int]
    triggers: Any

    async def ingest(self, trigger: str, payload: dict[str, Any] | None = None) -> int:
        """Store an event for ``trigger`` received now (by the clock), and wake the worker as ingest does."""
        config = self.config.trigger(trigger)
        runtime = self.triggers.by_name(trigger)
        assert config is not None
        event = prepare(
            config,
            self.ids[trigger],
            body=orjson.dumps(payload or {}),
            headers={},
            received_at=self.clock(),
            redactor=Redactor(),
            destination=runtime.destination,
        )
        stored = await self.db.write(store_event(event))
        assert stored.execution_id is not None
        self.worker.wakeup.set()
        return stored.execution_id

    def count(self, *where: Any) -> int:
        query = select(func.count()).select_from(executions).where(*where)
        return int(self.db.read_sync(lambda connection: connection.execute(query).scalar_one()))

    def attempt_count(self, *where: Any) -> int:
        query = select(func.count()).select_from(attempts).where(*where)
        return int(self.db.read_sync(lambda connection: connection.execute(query).scalar_one()))

    def transitions(self) -> list[Any]:
        query = select(breaker_transitions).order_by(breaker_transitions.c.id)
        return self.db.read_sync(lambda connection: list(connection.execute(query)))

    async def until(self, predicate: Callable[[], Any], what: str) -> Any:
        return await asyncio.to_thread(wait_until, predicate, what=what, timeout=20.0)

    async def claimed_after_now(self) -> None:
        """Prove that a claim ran at the clock's current time: run a sentinel execution through the worker."""
        sentinel = await self.ingest("sentinel")

        def done() -> bool:
            return self.count(executions.c.id == sentinel, executions.c.status == "succeeded") == 1

        await self.until(done, f"sentinel {sentinel} succeeded")

    async def advance_to(self, seconds: float, step: float) -> None:
        """Move the clock to ``at(seconds)`` in steps, letting the worker claim at each."""
        while self.clock() < at(seconds) - timedelta(microseconds=1):
            self.clock.advance(step)
            self.worker.wakeup.set()
            await self.claimed_after_now()


@asynccontextmanager
async def running(db_url: str, triggers_yaml: str, **settings: Any) -> AsyncIterator[Harness]:
    """A started worker on ``db_url`` running ``triggers_yaml`` (plus the sentinel) with the target kind."""
    options: dict[str, Any] = {"database_url": db_url, "poll_interval": 60.0, "lease_seconds": 300.0}
    options.update(settings)
    clock = Clock(START)
    target = Target(clock)
    plugins = load_plugins("", [TargetPlugin(target)])
    config = parse_config(triggers_yaml + SENTINEL, registry=plugins.registry)
    db = Database(db_url)
    db.start()
    try:
        ids = db.write_sync(lambda connection: sync_triggers(connection, config, clock()))
        trigger_set = build_trigger_set(config, ids, plugins.registry)
        worker = Worker(db, trigger_set, Settings(**options), redactor=Redactor(), clock=clock, node_id="dest")
        await worker.start()
        try:
            yield Harness(db, worker, clock, target, config, ids, trigger_set)
        finally:
            await worker.stop(grace=0)
    finally:
        db.close()
