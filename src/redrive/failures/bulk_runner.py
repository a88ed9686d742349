"""Running a bulk replay: an asyncio task per job in the process that accepted it, paced on an absolute schedule.

Item ``i`` is issued at ``start + i / rate``, so the rate does not drift: a runner that falls behind catches up.
Items are issued without waiting for the previous commit (at most ``MAX_IN_FLIGHT`` outstanding) and the writer
commits them in batches, so the rate holds even when one commit takes longer than ``1 / rate``. While waiting for
its turn the runner re-reads the job's status at least every ``STATUS_POLL`` seconds, so a cancel from another node
stops it; every item's transaction checks the status too (``bulk.step``). ``BulkRuns.aclose`` (called by the app's
lifespan) cancels the runners, which mark their jobs ``failed`` with "runner stopped".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog
from sqlalchemy.engine import Connection

from redrive.clock import Clock
from redrive.db.database import Database
from redrive.destinations.policy import Seed
from redrive.failures.bulk import Plan, finish, page, status_of, step
from redrive.failures.replay import ReplayRequest, ReplayResult
from redrive.queue.notify import Wakeup

log = structlog.get_logger("redrive.bulk")
STATUS_POLL = 0.5
MAX_IN_FLIGHT = 100  # replays issued but not yet committed


class BulkRuns:
    """The runner tasks of this process, by job id; ``aclose`` stops them (the app's lifespan calls it)."""

    def __init__(self) -> None:
        self._tasks: dict[int, asyncio.Task[None]] = {}

    @property
    def local(self) -> frozenset[int]:
        """Ids of the jobs this process runs."""
        return frozenset(self._tasks)

    def start(
        self,
        db: Database,
        plan: Plan,
        *,
        runnable: frozenset[int],
        clock: Clock,
        wakeup: Wakeup,
        blocking: frozenset[int] = frozenset(),
        seeds: Mapping[int, Seed] | None = None,
    ) -> None:
        """Run ``plan`` in a background task (``blocking`` and ``seeds``: as ``ReplayRequest`` takes them)."""
        context = _Context(runnable, blocking, seeds or {})
        task = asyncio.create_task(_run(db, plan, context, clock, wakeup), name=f"redrive-bulk-{plan.id}")
        self._tasks[plan.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(plan.id, None))

    async def aclose(self) -> None:
        """Cancel every runner and wait for each to record that it stopped."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _InFlight:
    """Replays issued on schedule and not yet committed; the writer commits them in batches.

    Issuing without waiting for each commit is what keeps the rate when one commit takes longer than ``1 / rate``.
    """

    def __init__(self, db: Database, wakeup: Wakeup) -> None:
        self._db = db
        self._wakeup = wakeup
        self._tasks: set[asyncio.Task[ReplayResult | None]] = set()
        self.stopped = False  # a step found the job no longer running (cancelled)
        self.error: BaseException | None = None

    async def issue(self, job: Callable[[Connection], ReplayResult | None]) -> None:
        while len(self._tasks) >= MAX_IN_FLIGHT:
            await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.create_task(self._db.write(job))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[ReplayResult | None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        if (error := task.exception()) is not None:
            self.error = self.error or error
        elif (result := task.result()) is None:
            self.stopped = True
        elif result.outcome == "ok":
            self._wakeup.work_due()

    def check(self) -> bool:
        """True while the job goes on; re-raises a step's exception."""
        if self.error is not None:
            raise self.error
        return not self.stopped

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks)

    async def abandon(self) -> None:
        for task in self._tasks:
            task.cancel()  # the writer still commits a queued step; nobody waits for its answer
        await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class _Context:
    """What each replay of a run needs from the declared triggers (``ReplayRequest``'s fields of the same names)."""

    runnable: frozenset[int]
    blocking: frozenset[int]
    seeds: Mapping[int, Seed]


async def _run(db: Database, plan: Plan, context: _Context, clock: Clock, wakeup: Wakeup) -> None:
    loop = asyncio.get_running_loop()
    start, index, after = loop.time(), 0, 0
    steps = _InFlight(db, wakeup)
    fields = {"bulk_replay_id": plan.id, "matched": plan.matched, "rate": plan.rate}
    log.info("bulk_replay_started", **fields)
    try:
        while plan.max_id is not None and steps.check():
            ids = await db.read(page(plan.filter, after, plan.max_id))
            if not ids:
                break
            for execution_id in ids:
                if not steps.check() or not await _wait_turn(db, plan.id, start + index / plan.rate):
                    steps.stopped = True
                    break
                request = ReplayRequest(
                    execution_id,
                    plan.actor,
                    clock(),
                    context.runnable,
                    force=plan.filter.status == "failed",
                    may_force=True,  # only an admin may start a bulk replay of failed executions
                    bulk_replay_id=plan.id,
                    blocking=context.blocking,
                    seeds=context.seeds,
                )
                await steps.issue(step(plan.id, request))
                index += 1
            after = ids[-1]
        await steps.drain()
        if steps.check():
            await db.write(finish(plan.id, "done", clock()))
            log.info("bulk_replay_done", **fields)
        else:
            log.info("bulk_replay_stopped", **fields, at=index)
    except asyncio.CancelledError:
        await steps.abandon()
        with contextlib.suppress(Exception):
            await db.write(finish(plan.id, "failed", clock(), "runner stopped: the service shut down"))
        raise
    except Exception as exc:
        log.exception("bulk_replay_failed", **fields)
        await steps.abandon()
        await db.write(finish(plan.id, "failed", clock(), f"{type(exc).__name__}: {exc}"))


async def _wait_turn(db: Database, bulk_id: int, due: float) -> bool:
    """Sleep until ``due`` (loop time), re-reading the job's status meanwhile; False once it is not running."""
    loop = asyncio.get_running_loop()
    while (left := due - loop.time()) > 0:
        await asyncio.sleep(min(left, STATUS_POLL))
        if due - loop.time() > 0 and await db.read(status_of(bulk_id)) != "running":
            return False
    return True
