"""The worker on its own, on both databases: a scripted action kind and a clock the test moves; no HTTP, no uvicorn.

Each test builds a ``Worker`` against a fresh migrated database, registers the ``scripted`` action kind through the
plugin API and says what each attempt does (succeed, fail transient or permanent, raise with a ``retry_after``,
answer 410-style, block until released). Time is the injected ``TestClock``: a retry is due when the test moves the
clock past its ``run_at`` and wakes the worker, never because real time passed.

What must not happen is shown without sleeping: the test ingests a *sentinel* execution on another trigger and
waits until the worker ran it. The claim that took the sentinel ran at the clock's current time, after the thing
that must not happen became possible; had the execution under test been due (or runnable), that claim would have
taken it too (claims take the oldest ``run_at`` first, and it is older).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
import pytest
from sqlalchemy import select

import redrive
from redrive.actions import Outcome
from redrive.db.database import Database
from redrive.db.schema import attempts, executions, triggers
from redrive.failures.classify import MAX_RETRY_AFTER, Failure, permanent, transient
from redrive.ingest.prepare import prepare
from redrive.ingest.store import store_event
from redrive.observe.redaction import Redactor
from redrive.plugins import load_plugins
from redrive.queue import statements as queue
from redrive.queue.worker import Worker
from redrive.settings import Settings
from redrive.triggers.config import RedriveConfig, parse_config
from redrive.triggers.fields import StrictModel
from redrive.triggers.runtime import build_trigger_set, sync_triggers
from support import wait_until

START = datetime(2031, 5, 4, 12, 0, tzinfo=UTC)  # not today: a worker reading the real time would claim nothing
BASE = 30.0  # the retry policy's first delay (jitter none), far from anything real time could reach in a test
MAX_DELAY = 600.0
LEASE = 30.0
CONFIG = f"""
triggers:
  - name: orders
    action: {{kind: scripted}}
    retry: {{max_attempts: 3, base: {BASE:g}s, factor: 2, max_delay: {MAX_DELAY:g}s, jitter: none}}
  - name: sentinel
    action: {{kind: scripted}}
"""


class TestClock:
    """The injected clock: it stands still until the test moves it."""

    __test__ = False

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        """Move the clock on by ``seconds``; returns the new time."""
        self.now += timedelta(seconds=seconds)
        return self.now


Step = Callable[[], Awaitable[Outcome]]


class ScriptedConfig(StrictModel):
    kind: Literal["scripted"]


@dataclass
class Script:
    """What the scripted action does, per trigger, attempt after attempt (succeed once the steps run out)."""

    steps: dict[str, deque[Step]] = field(default_factory=lambda: defaultdict(deque))
    calls: list[str] = field(default_factory=list)

    def then(self, trigger: str, *steps: Step) -> None:
        """Queue ``steps`` for the next attempts of ``trigger``."""
        self.steps[trigger].extend(steps)

    def count(self, trigger: str) -> int:
        """How many attempts of ``trigger`` the action ran."""
        return self.calls.count(trigger)


class Scripted:
    """The action: renders the trigger's name, then runs that trigger's next scripted step."""

    def __init__(self, script: Script) -> None:
        self._script = script

    def render(self, context: Mapping[str, Any]) -> dict[str, Any]:
        return {"trigger": context["trigger"]["name"], "event": context["event"]["id"]}

    async def execute(self, rendered: Mapping[str, Any], resources: Mapping[str, Any]) -> Outcome:
        trigger = rendered["trigger"]
        self._script.calls.append(trigger)
        steps = self._script.steps[trigger]
        return await (steps.popleft() if steps else succeed())()


class ScriptedPlugin:
    """Registers the ``scripted`` action kind, as a third-party plugin would."""

    name = "scripted"

    def __init__(self, script: Script) -> None:
        self.script = script

    @redrive.hookimpl
    def redrive_action_kinds(self) -> list[redrive.ActionKind]:
        return [
            redrive.ActionKind(
                name="scripted",
                config=ScriptedConfig,
                build=lambda config: Scripted(self.script),
                summary=lambda rendered: f"scripted {rendered['trigger']}",
            )
        ]


def succeed(clock: TestClock | None = None, takes: float = 0.0) -> Step:
    """An attempt that succeeds, moving ``clock`` on by ``takes`` seconds while it runs."""

    async def step() -> Outcome:
        if clock is not None:
            clock.advance(takes)
        return Outcome(None, {"ok": True}, "done")

    return step


def fail(failure: Failure) -> Step:
    """An attempt that returns ``failure``."""

    async def step() -> Outcome:
        return Outcome(failure, {"failed": failure.code})

    return step


def busy(retry_after: float) -> Step:
    """An attempt that raises ``redrive.TransientError`` with a ``retry_after``, as a plugin's action may."""

    async def step() -> Outcome:
        raise redrive.TransientError("busy, come back later", code="busy", retry_after=retry_after)

    return step


@dataclass
class Gate:
    """A step that blocks until released; ``started`` is set when the attempt begins, ``cancelled`` if it was."""

    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: bool = False

    async def __call__(self) -> Outcome:
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return Outcome(None, {"ok": True}, "released")


@dataclass
class Harness:
    """A started worker, its database, clock and script, and the trigger file it runs."""

    db: Database
    worker: Worker
    clock: TestClock
    script: Script
    config: RedriveConfig
    ids: dict[str, int]

    async def ingest(self, trigger: str, payload: dict[str, Any] | None = None) -> int:
        """Store an event for ``trigger`` received now (by the clock), and wake the worker as ingest does."""
        config = self.config.trigger(trigger)
        assert config is not None
        body = orjson.dumps(payload or {})
        event = prepare(config, self.ids[trigger], body=body, headers={}, received_at=self.clock(), redactor=Redactor())
        stored = await self.db.write(store_event(event))
        assert stored.execution_id is not None
        self.worker.wakeup.set()
        return stored.execution_id

    def execution(self, execution_id: int) -> Any:
        """The execution's row, read now (blocking: call it from a thread, or outside the loop's hot path)."""
        query = select(executions).where(executions.c.id == execution_id)
        return self.db.read_sync(lambda connection: connection.execute(query).one())

    def attempts(self, execution_id: int) -> list[Any]:
        """The execution's attempt rows, in order."""
        query = select(attempts).where(attempts.c.execution_id == execution_id).order_by(attempts.c.number)
        return self.db.read_sync(lambda connection: list(connection.execute(query)))

    async def until(self, predicate: Callable[[], Any], what: str) -> Any:
        """Poll ``predicate`` (it may read the database) in a thread until it holds, while the worker runs."""
        return await asyncio.to_thread(wait_until, predicate, what=what)

    async def settled(self, execution_id: int, status: str, attempts: int) -> Any:
        """Wait until the execution is ``status`` after ``attempts`` attempts; returns its row."""

        def check() -> Any:
            row = self.execution(execution_id)
            return row if (row.status, row.attempts) == (status, attempts) else None

        return await self.until(check, f"execution {execution_id} {status} after {attempts} attempt(s)")

    async def claimed_after_now(self) -> None:
        """Prove that a claim ran at the clock's current time: run a sentinel execution through the worker."""
        sentinel = await self.ingest("sentinel")
        await self.settled(sentinel, "succeeded", 1)


class HeldRecords(Database):
    """The real database, except that attempts' records wait at ``gate`` before they go to the writer: a record
    that takes its time to commit (a busy writer, a destination's row locked elsewhere), on demand."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.gate = asyncio.Event()
        self.waiting = 0

    async def write(self, job: Any) -> Any:
        if isinstance(job, queue.Complete) and not self.gate.is_set():
            self.waiting += 1
            await self.gate.wait()
            self.waiting -= 1
        return await super().write(job)


@asynccontextmanager
async def running(db_url: str, database: type[Database] = Database, **settings: Any) -> AsyncIterator[Harness]:
    """A started worker on ``db_url`` running ``CONFIG`` with the scripted kind; stopped (no grace) at the end."""
    options: dict[str, Any] = {"database_url": db_url, "poll_interval": 60.0, "lease_seconds": LEASE}
    options.update(settings)
    worker_settings = Settings(**options)
    script = Script()
    plugins = load_plugins("", [ScriptedPlugin(script)])
    config = parse_config(CONFIG, registry=plugins.registry)
    clock = TestClock(START)
    db = database(db_url)
    db.start()
    try:
        ids = db.write_sync(lambda connection: sync_triggers(connection, config, clock()))
        trigger_set = build_trigger_set(config, ids, plugins.registry)
        worker = Worker(db, trigger_set, worker_settings, redactor=Redactor(), clock=clock, node_id="unit")
        await worker.start()
        try:
            yield Harness(db, worker, clock, script, config, ids)
        finally:
            await worker.stop(grace=0)
    finally:
        db.close()


def at(seconds: float) -> datetime:
    """``START`` plus ``seconds``."""
    return START + timedelta(seconds=seconds)


def test_success_is_one_attempt_timed_by_the_injected_clock(db_url: str) -> None:
    async def scenario() -> None:
        async with running(db_url) as h:
            h.script.then("orders", succeed(h.clock, takes=2.5))  # the attempt "takes" 2.5 s of the clock
            execution_id = await h.ingest("orders", {"order": "A-1"})
            row = await h.settled(execution_id, "succeeded", 1)
            assert (row.finished_at, row.updated_at, row.error_code) == (at(2.5), at(2.5), None)
            assert row.lease_token is None
            assert row.lease_expires_at is None
            [attempt] = h.attempts(execution_id)
            assert (attempt.number, attempt.outcome, attempt.started_at, attempt.finished_at) == (
                1,
                "succeeded",
                START,
                at(2.5),
            )
            assert attempt.duration_ms == pytest.approx(2500)
            assert (attempt.detail, attempt.excerpt) == ({"ok": True}, "done")
            assert attempt.request == {"trigger": "orders", "event": row.event_id}
            assert h.script.count("orders") == 1

    asyncio.run(scenario())


def test_a_transient_failure_is_retried_after_the_backoff_and_not_before(db_url: str) -> None:
    async def scenario() -> None:
        async with running(db_url) as h:
            h.script.then("orders", fail(transient("flaky", "try again")), succeed())
            execution_id = await h.ingest("orders")
            row = await h.settled(execution_id, "pending", 1)
            assert (row.run_at, row.error_code, row.finished_at) == (at(BASE), "flaky", None)
            [attempt] = h.attempts(execution_id)
            assert (attempt.outcome, attempt.error_category, attempt.error_code) == ("transient", "transient", "flaky")

            h.clock.advance(BASE - 0.001)  # a millisecond early
            await h.claimed_after_now()
            assert (h.execution(execution_id).status, h.script.count("orders")) == ("pending", 1)

            h.clock.advance(0.001)  # due now: moving the clock and waking the worker is all it takes
            h.worker.wakeup.set()
            await h.settled(execution_id, "succeeded", 2)
            second = h.attempts(execution_id)[1]
            assert (second.number, second.outcome, second.started_at) == (2, "succeeded", at(BASE))

    asyncio.run(scenario())


def test_a_permanent_failure_fails_at_once_and_is_never_retried(db_url: str) -> None:
    async def scenario() -> None:
        async with running(db_url) as h:
            h.script.then("orders", fail(permanent("rejected", "the target refused it")))
            execution_id = await h.ingest("orders")
            row = await h.settled(execution_id, "failed", 1)
            assert (row.run_at, row.finished_at, row.error_category, row.error_code) == (
                START,
                START,
                "permanent",
                "rejected",
            )
            assert row.error_message == "the target refused it"

            h.clock.advance(10 * MAX_DELAY)  # past any delay the policy could have chosen
            await h.claimed_after_now()
            assert [a.outcome for a in h.attempts(execution_id)] == ["permanent"]
            assert (h.execution(execution_id).status, h.script.count("orders")) == ("failed", 1)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("retry_after", "delay"),
    [
        pytest.param(5.0, BASE, id="shorter-than-the-backoff"),
        pytest.param(900.0, 900.0, id="past-max-delay"),
        pytest.param(10 * MAX_RETRY_AFTER, MAX_RETRY_AFTER, id="capped"),
    ],
)
def test_retry_after_is_a_floor_on_the_delay_capped_at_a_day(db_url: str, retry_after: float, delay: float) -> None:
    """``decide``: the delay is the larger of the backoff and Retry-After (even past ``max_delay``); the classifier
    caps a raised ``retry_after`` at ``MAX_RETRY_AFTER``."""

    async def scenario() -> None:
        async with running(db_url) as h:
            h.script.then("orders", busy(retry_after))
            execution_id = await h.ingest("orders")
            row = await h.settled(execution_id, "pending", 1)
            assert (row.run_at, row.error_code) == (at(delay), "busy")

            h.clock.advance(delay - 0.001)
            await h.claimed_after_now()
            assert h.script.count("orders") == 1

            h.clock.advance(0.001)
            h.worker.wakeup.set()
            await h.settled(execution_id, "succeeded", 2)

    asyncio.run(scenario())


def test_a_410_style_failure_pauses_the_trigger_and_nothing_more_of_it_runs(db_url: str) -> None:
    gone = Failure("permanent", "http_410", "410 Gone from the target", pause_trigger=True)

    async def scenario() -> None:
        async with running(db_url) as h:
            h.script.then("orders", fail(gone))
            first = await h.ingest("orders", {"n": 1})
            await h.settled(first, "failed", 1)
            paused = h.db.read_sync(
                lambda c: c.execute(
                    select(triggers.c.paused, triggers.c.paused_reason, triggers.c.updated_at).where(
                        triggers.c.name == "orders"
                    )
                ).one()
            )
            assert tuple(paused) == (True, "410 Gone from the target", START)

            h.clock.advance(1)
            second = await h.ingest("orders", {"n": 2})
            h.clock.advance(10 * MAX_DELAY)
            await h.claimed_after_now()
            row = h.execution(second)
            assert (row.status, row.attempts, row.lease_token) == ("pending", 0, None)
            assert h.script.count("orders") == 1

    asyncio.run(scenario())


def test_leases_are_renewed_while_an_action_runs_and_a_stale_completion_changes_nothing(db_url: str) -> None:
    """The renewal runs every lease/3 seconds of the event loop's own (monotonic) time, as every sleep does; the
    clock says what it writes. A lease of 1.5 s makes that a half-second wait for what must happen."""
    lease = 1.5

    async def scenario() -> None:
        async with running(db_url, lease_seconds=lease) as h:
            gate = Gate()
            h.script.then("orders", gate)
            execution_id = await h.ingest("orders")
            await asyncio.wait_for(gate.started.wait(), 10)
            claimed = h.execution(execution_id)
            assert (claimed.status, claimed.lease_expires_at) == ("running", at(lease))

            renewed_at = h.clock.advance(60)  # well past lease/3 of the clock
            await h.until(
                lambda: h.execution(execution_id).lease_expires_at == renewed_at + timedelta(seconds=lease),
                "the renewal to extend the lease from the clock's time",
            )
            assert h.execution(execution_id).lease_token == claimed.lease_token

            # The lease is lost all the same (as if this node had stalled): swept, then claimed by another node.
            later = h.clock() + timedelta(seconds=lease + 1)
            assert await h.db.write(queue.sweep(later)) == [execution_id]
            taken = await h.db.write(queue.claim([h.ids["orders"]], 1, LEASE, later, owner="other"))
            assert [c.id for c in taken.executions] == [execution_id]

            gate.release.set()  # the stale attempt finishes: its completion is fenced out
            await h.until(lambda: h.worker.in_flight == 0, "the stale attempt to end")
            row = h.execution(execution_id)
            assert (row.status, row.attempts, row.lease_token) == ("running", 0, taken.executions[0].lease_token)
            assert h.attempts(execution_id) == []

    asyncio.run(scenario())


def test_stop_records_work_done_within_grace_and_releases_the_rest_uncharged(db_url: str) -> None:
    async def scenario() -> None:
        async with running(db_url) as h:
            quick, slow = Gate(), Gate()
            h.script.then("orders", quick, slow)
            finishing = await h.ingest("orders", {"n": 1})
            await asyncio.wait_for(quick.started.wait(), 10)
            stuck = await h.ingest("orders", {"n": 2})
            await asyncio.wait_for(slow.started.wait(), 10)
            h.clock.advance(5)

            stopping = asyncio.create_task(h.worker.stop(grace=1.0))
            await asyncio.sleep(0)  # let stop begin: it stops claiming, then waits for in-flight work
            quick.release.set()  # finishes within the grace period
            await asyncio.wait_for(stopping, 10)

            done = h.execution(finishing)
            assert (done.status, done.attempts, done.finished_at) == ("succeeded", 1, at(5))
            released = h.execution(stuck)
            assert (released.status, released.attempts, released.lease_token, released.run_at) == (
                "pending",
                0,
                None,
                at(5),
            )
            assert released.lease_expires_at is None
            assert h.attempts(stuck) == []
            assert slow.cancelled
            assert h.worker.in_flight == 0

    asyncio.run(scenario())


def test_a_slot_frees_when_its_action_ends_while_its_record_waits(db_url: str) -> None:
    """``worker_concurrency`` counts actions running, not successes waiting to be recorded: with one slot, the
    second execution's action runs while the first one's success still waits to commit, and both are recorded
    once it goes through. (A failure keeps its slot until recorded: ``test_destination_breaker``'s bound on the
    requests an outage sees fails otherwise.)"""

    async def scenario() -> None:
        async with running(db_url, database=HeldRecords, worker_concurrency=1) as h:
            assert isinstance(h.db, HeldRecords)
            second = Gate()
            second.release.set()  # it only says when it started
            h.script.then("orders", succeed(), second)
            first_id = await h.ingest("orders", {"n": 1})
            second_id = await h.ingest("orders", {"n": 2})
            await asyncio.wait_for(second.started.wait(), 10)
            assert h.script.count("orders") == 2
            assert h.db.waiting >= 1  # the first record is still held back
            assert h.execution(first_id).status == "running"  # so its lease is held, and renewed
            assert h.worker.in_flight == 2
            h.db.gate.set()
            await h.settled(first_id, "succeeded", 1)
            await h.settled(second_id, "succeeded", 1)

    asyncio.run(scenario())
