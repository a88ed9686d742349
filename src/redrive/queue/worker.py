"""The worker: claim due executions in batches, run their actions concurrently, record fenced results.

Lease sweeping is maintenance (``maintenance.py``, on the leader only). A finished result is kept and its write
retried until the database takes it, so an outage does not lose work already done.

It sleeps until woken (the same process ingested something), until the next retry falls due, or until the poll
interval passes; it never spins. Leases are renewed while actions run. On stop it lets in-flight work finish within
the grace period and gives the rest back to the queue without charging an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import stamina
import structlog

from redrive.action_errors import ActionFailed
from redrive.actions import Outcome
from redrive.clock import Clock, utcnow
from redrive.db.database import Database
from redrive.db.engine import storage_unavailable
from redrive.db.writer import Job
from redrive.destinations.breaker import Observed, Policy
from redrive.destinations.holding import NOT_CHARGED
from redrive.destinations.report import report
from redrive.destinations.store import adopt_queued, sync_limits
from redrive.extensions import BreakerTransition, ResourceContext
from redrive.failures.classify import Failure, permanent
from redrive.failures.fingerprint import fingerprint, normalise
from redrive.lifecycle import Lifecycle, completed
from redrive.node.periodic import Periodic
from redrive.observe.logs import log_failure
from redrive.observe.metrics import Metrics
from redrive.observe.redaction import Redactor
from redrive.observe.stream import StreamHub
from redrive.observe.telemetry import Tracing
from redrive.queue import statements as queue
from redrive.queue.retry import decide
from redrive.queue.statements import Claimed, Completion
from redrive.settings import Settings
from redrive.states import TERMINAL, ExecutionStatus
from redrive.triggers.runtime import Trigger, TriggerSet
from redrive.triggers.templating import RenderError

log = structlog.get_logger("redrive.worker")
EXCERPT_LIMIT = 64 * 1024
MIN_WAIT = 0.01
T = TypeVar("T")
_STATUS_AFTER = {
    "succeeded": ExecutionStatus.SUCCEEDED,
    "retry": ExecutionStatus.PENDING,
    "dead_letter": ExecutionStatus.FAILED_RETRYABLE,
    "failed": ExecutionStatus.FAILED,
}


async def write_until_stored(db: Database, job: Job[T]) -> T:
    """Write ``job``, retrying (capped exponential backoff) for as long as the database is unreachable.

    The first try runs outside stamina: entering its retry context for every completion cost more than the write's
    own share of the writer, and nearly every write succeeds the first time.
    """
    try:
        return await db.write(job)
    except Exception as exc:
        if not storage_unavailable(exc):
            raise
    async for attempt in stamina.retry_context(on=storage_unavailable, attempts=None, timeout=None, wait_max=5.0):
        with attempt:
            return await db.write(job)
    raise AssertionError("unreachable: the retry loop only ends by returning or raising")


class Worker:
    """Runs executions from the queue until stopped."""

    def __init__(
        self,
        db: Database,
        triggers: TriggerSet,
        settings: Settings,
        *,
        redactor: Redactor,
        wakeup: asyncio.Event | None = None,
        clock: Clock = utcnow,
        node_id: str = "",
        metrics: Metrics | None = None,
        stream: StreamHub | None = None,
        tracing: Tracing | None = None,
        lifecycle: Lifecycle | None = None,
    ) -> None:
        self._db = db
        self._triggers = triggers
        self._settings = settings
        self._redactor = redactor
        self.wakeup = wakeup or asyncio.Event()
        self._clock = clock
        self._node_id = node_id
        self._metrics = metrics
        self._stream = stream
        self._tracing = tracing
        self._lifecycle = lifecycle if lifecycle is not None else Lifecycle()
        self._inflight: dict[int, tuple[str, asyncio.Task[None]]] = {}  # every lease held: acting or recording
        self._acting: set[int] = set()  # the executions whose action runs: what takes a slot
        self._slot_freed = asyncio.Event()
        self._plan_first = True  # plan restricted destinations before leasing (until a claim finds none)
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._resources: dict[str, Any] | None = None
        self._opened = contextlib.AsyncExitStack()
        self._renewal = Periodic(
            "renew", self._renew, settings.lease_seconds / 3, failed_evt="lease_renew_failed", delay_first=True
        )

    async def start(self) -> None:
        """Open the resources of the action kinds in use (HTTP sessions...), start the claim and lease loops."""
        tracing = self._tracing
        context = ResourceContext(
            concurrency=self._settings.worker_concurrency,
            trace_configs=(tracing.aiohttp_trace_config(),) if tracing is not None else (),
            outbound_headers=tracing.current_headers if tracing is not None else None,
            clock=self._clock,
        )
        kinds = {trigger.kind.name: trigger.kind for trigger in self._triggers}
        self._resources = {}
        for name, kind in kinds.items():
            if kind.resources is not None:
                self._resources[name] = await self._opened.enter_async_context(kind.resources(context))
        limited = self._triggers.policies.limited()
        if limited:  # their rows must say "restricted" before the first claim takes them freely
            await write_until_stored(self._db, sync_limits(limited, self._clock()))
        if self._triggers.seeds:  # templated destinations: rows their queued executions go to that name no trigger
            adopted = await write_until_stored(self._db, adopt_queued(self._triggers.seeds, self._clock()))
            if adopted:
                log.info("destinations_adopted", count=adopted)
        self._tasks = [asyncio.create_task(self._claim_loop(), name="redrive-claim")]
        self._renewal.start()

    @property
    def in_flight(self) -> int:
        """Executions running now."""
        return len(self._inflight)

    async def stop(self, grace: float | None = None) -> None:
        """Stop claiming, give in-flight work ``grace`` seconds, release the rest uncharged."""
        self._stopping.set()
        self.wakeup.set()
        grace = self._settings.shutdown_grace if grace is None else grace
        running = [task for _, task in self._inflight.values()]
        if running:
            await asyncio.wait(running, timeout=grace)
        held = [(execution_id, token) for execution_id, (token, _) in self._inflight.items()]
        for _, task in list(self._inflight.values()):
            task.cancel()
        if held:
            released = await self._db.write(queue.release(held, self._clock()))
            log.info("executions_released", count=released)
        await self._renewal.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, *(t for _, t in self._inflight.values()), return_exceptions=True)
        await self._opened.aclose()

    async def _claim_loop(self) -> None:
        settings = self._settings
        while not self._stopping.is_set():
            free = settings.worker_concurrency - len(self._acting)
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            self.wakeup.clear()
            now = self._clock()
            try:
                found = await self._db.write(
                    queue.claim(
                        self._triggers.ids,
                        min(free, settings.claim_batch),
                        settings.lease_seconds,
                        now,
                        owner=self._node_id,
                        ordered=self._triggers.ordered,
                        blocking=self._triggers.blocking,
                        policy_of=self._triggers.policies.of,
                        plan_first=self._plan_first,
                    )
                )
            except Exception as exc:
                log_failure(log, "claim_failed", exc)
                await self._sleep(settings.poll_interval)
                continue
            self._plan_first = found.restricted
            self._report(found.transitions)
            for claimed in found.executions:
                self._publish(claimed, ExecutionStatus.RUNNING, claimed.attempts)
                task = asyncio.create_task(self._execute(claimed))
                self._inflight[claimed.id] = (claimed.lease_token, task)
                self._acting.add(claimed.id)
            if found.next_run_at is None and found.executions:
                continue  # a full batch: there may be more waiting
            timeout = settings.poll_interval
            if found.next_run_at is not None:
                # Rows another worker holds look due too; a floor keeps that from becoming a spin.
                wait = (found.next_run_at - self._clock()).total_seconds()
                timeout = min(timeout, max(MIN_WAIT, wait))
            await self._sleep(timeout)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wakeup.wait(), seconds)

    async def _execute(self, claimed: Claimed) -> None:
        try:
            trigger = self._triggers.by_id(claimed.trigger_id)
            assert trigger is not None, "claims only select declared triggers"
            await self._run(trigger, claimed)
        finally:
            self._inflight.pop(claimed.id, None)
            self._free_slot(claimed.id)

    def _free_slot(self, execution_id: int) -> None:
        """The execution's slot goes to the next claim (idempotent).

        A success frees it as soon as its action returns, while its record is still being written (its lease
        stays in ``_inflight``, renewed, until the record commits): a slot held through the record's commit spent
        the writer's round trips and commit as slot time, with no action running in it. A failure keeps its slot
        until its record commits, because the record is where it takes effect: a breaker opens, a ``Retry-After``
        paces the destination, a 410 pauses the trigger. The next claim must see that, or the worker would go on
        sending to a destination that is already known to be down."""
        if execution_id in self._acting:
            self._acting.discard(execution_id)
            self._slot_freed.set()

    async def _run(self, trigger: Trigger, claimed: Claimed) -> None:
        assert self._resources is not None
        attempt = claimed.attempts + 1
        # At debug: the outcome's line (one per attempt) names the trigger, execution and attempt, and its duration
        # dates the start; a third JSON line per event was a visible share of the hot path's CPU.
        log.debug("execution_started", trigger=trigger.name, execution_id=claimed.id, attempt=attempt)
        started = self._clock()
        sent: dict[str, Any] | None = None
        try:
            rendering = trigger.render(claimed)
            sent = rendering.sent
            if self._tracing is None:
                outcome = await trigger.action.execute(rendering.action, self._resources)
            else:
                outcome = await self._traced(trigger, claimed, attempt, rendering.action)
        except RenderError as exc:
            outcome = Outcome(permanent("template_error", str(exc)), {})
        except Exception as exc:  # a plugin's action may raise: its kind's rules (and plugins) classify it
            expected = isinstance(exc, ActionFailed)  # raised on purpose: no traceback needed
            log.warning("action_raised", trigger=trigger.name, execution_id=claimed.id, exc_info=not expected)
            outcome = Outcome(trigger.classify(exc), {}, error=exc)
        else:
            if outcome.error is not None and trigger.overridden:  # a plugin may classify this failure differently
                outcome = replace(outcome, failure=trigger.classify(outcome.error))
        if outcome.failure is None:
            self._free_slot(claimed.id)
        await self._record(trigger, claimed, attempt, started, outcome, sent)

    async def _record(
        self,
        trigger: Trigger,
        claimed: Claimed,
        attempt: int,
        started: datetime,
        outcome: Outcome,
        sent: dict[str, Any] | None,
    ) -> None:
        finished = self._clock()
        failure = outcome.failure
        decision = decide(trigger.policy, attempt=attempt, failure=failure, rand=random.random())
        status = _STATUS_AFTER[decision.verdict]
        run_at = None
        if decision.delay is not None:
            run_at = finished + timedelta(seconds=decision.delay)
        redact = self._redactor
        message = redact.text(failure.message) if failure else None
        seconds = (finished - started).total_seconds()
        observed, policy = self._observed(trigger, claimed.destination, failure, seconds)
        completion = Completion(
            execution_id=claimed.id,
            lease_token=claimed.lease_token,
            status=status,
            run_at=run_at,
            started_at=started,
            finished_at=finished,
            outcome="succeeded" if failure is None else failure.category,
            error_category=failure.category if failure else None,
            error_code=failure.code if failure else None,
            message=message,
            detail=redact.tree(outcome.detail),
            excerpt=redact.excerpt(outcome.excerpt[:EXCERPT_LIMIT]) if outcome.excerpt else None,
            request=sent,
            pause_trigger_id=trigger.id if failure is not None and failure.pause_trigger else None,
            trigger_id=trigger.id,
            ordering_blocks=trigger.config.ordering is not None and trigger.config.ordering.on_dead_letter == "block",
            action_kind=trigger.config.action.kind,
            fingerprint=fingerprint(trigger.name, trigger.config.action.kind, failure.code, message or "")
            if failure
            else None,
            title=normalise(message or "") if failure else None,
            destination=claimed.destination if observed is not None else None,
            observed=observed,
            policy=policy,
            probe=claimed.probe,
        )
        job = queue.complete(completion)
        applied = await write_until_stored(self._db, job)
        if job.transitions:
            self._report(job.transitions)
            self.wakeup.set()  # a probe closed or reopened the breaker: the held work's fate changed
        if job.held:  # it completed into an open breaker: back in the queue, uncharged (destinations.holding)
            status, run_at = ExecutionStatus.PENDING, None
        if applied:
            kind, code = trigger.config.action.kind, completion.error_code
            if self._metrics is not None:
                self._metrics.attempt(kind=kind, status=status, category=completion.outcome, code=code, seconds=seconds)
            self._publish(claimed, status, attempt, code)
            if self._lifecycle.active:
                reported = replace(failure, message=message or "") if failure is not None else None
                reports = completed(trigger.name, kind, claimed.id, attempt, status, reported, run_at, seconds)
                self._lifecycle.notify(reports)
        fields = {"trigger": trigger.name, "execution_id": claimed.id, "attempt": attempt}
        duration_ms = round(seconds * 1000, 2)
        if applied and trigger.config.ordering is not None and status in TERMINAL:
            self.wakeup.set()  # its key's next execution is due now (other nodes find it on their next poll)
        if not applied:
            log.warning("execution_lease_lost", **fields, status=status)
        elif job.held:
            assert failure is not None
            log.info("execution_held", **fields, code=failure.code, message=message, note=NOT_CHARGED)
        elif failure is None:
            log.info("execution_succeeded", **fields, duration_ms=duration_ms)
        elif decision.verdict == "retry":
            self.wakeup.set()  # the claim loop may be asleep past this retry's run_at
            log.info(
                "execution_retry_scheduled",
                **fields,
                code=failure.code,
                delay_s=round(decision.delay or 0, 3),
                run_at=run_at.isoformat() if run_at else None,
                message=message,
            )
        else:
            evt = "execution_dead_lettered" if decision.verdict == "dead_letter" else "execution_failed"
            log.warning(evt, **fields, code=failure.code, category=failure.category, message=message)
            if completion.pause_trigger_id is not None:
                log.warning("trigger_paused", trigger=trigger.name, reason=message)
                if self._stream is not None:
                    self._stream.publish(
                        "warning", {"code": "trigger_paused", "trigger": trigger.name, "reason": message}
                    )

    def _observed(
        self, trigger: Trigger, destination: str | None, failure: Failure | None, seconds: float
    ) -> tuple[Observed | None, Policy | None]:
        """What the attempt's destination's breaker and limits count of it, and their policy; (None, None) when
        nothing does.

        A transient failure that names its wait (429/503 ``Retry-After``) paces the whole destination, whatever
        its policy: every execution going there waits, not only this one."""
        if destination is None:
            return None, None
        retry_after = failure.retry_after if failure is not None and failure.category == "transient" else None
        policy = self._triggers.policies.of(destination, trigger.name)  # resolved once per attempt
        if retry_after is None and not policy.tracked:
            return None, None
        observed = Observed(failure.category if failure is not None else "succeeded", seconds, retry_after)
        return observed, policy

    def _report(self, transitions: list[BreakerTransition]) -> None:
        if transitions:
            report(transitions, metrics=self._metrics, stream=self._stream, lifecycle=self._lifecycle)

    async def _traced(self, trigger: Trigger, claimed: Claimed, attempt: int, rendered: dict[str, Any]) -> Outcome:
        assert self._tracing is not None
        assert self._resources is not None
        attributes = {"redrive.trigger": trigger.name, "redrive.execution_id": claimed.id, "redrive.attempt": attempt}
        with self._tracing.span("redrive attempt", claimed.headers, server=False, **attributes) as span:
            outcome = await trigger.action.execute(rendered, self._resources)
            span.set_attribute("redrive.outcome", outcome.failure.category if outcome.failure else "succeeded")
            return outcome

    def _publish(self, claimed: Claimed, status: str, attempts: int, code: str | None = None) -> None:
        if self._stream is not None:
            trigger = self._triggers.by_id(claimed.trigger_id)
            self._stream.publish(
                "execution",
                {
                    "execution_id": claimed.id,
                    "trigger": trigger.name if trigger else None,
                    "status": status,
                    "attempts": attempts,
                    "error_code": code,
                },
            )

    async def _renew(self) -> None:
        tokens = sorted({token for token, _ in self._inflight.values()})
        if tokens:
            await self._db.write(queue.renew(tokens, self._settings.lease_seconds, self._clock()))
