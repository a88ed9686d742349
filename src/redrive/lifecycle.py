"""Lifecycle notifications: tell plugins what was committed, off the worker's path, bounded and isolated.

The worker and the ingest path call ``Lifecycle.notify`` after the commit of what they report; it returns at once.
Each report runs in a background task of its own, which calls every implementation of the hook (one after the
other for the hooks of one report, so ``attempt_recorded`` comes before ``execution_dead_lettered``; the
implementations of one hook concurrently). The rules, and why:

- **Time-bounded.** Each implementation gets ``plugin_hook_timeout`` seconds. An ``async`` one is cancelled when
  its time is up. A plain ``def`` runs in a daemon thread (a slow or blocking plugin must not block the event loop),
  at most ``SYNC_THREADS`` at once: a thread cannot be cancelled, so a hung one keeps its slot until it returns, and
  once every slot is held the next sync calls time out waiting for one. Daemon, so a hung plugin never keeps the
  process from exiting.
- **Isolated.** Whatever an implementation raises, or a timeout, is logged (``evt=plugin_hook_failed`` with the
  plugin, the hook and the error) and counted (``redrive_plugin_hook_failures_total``); nothing reaches the caller,
  so an outcome never depends on a plugin.
- **Bounded in memory.** At most ``plugin_hook_backlog`` reports are in flight. When the bound is reached a new
  report is dropped, not queued and not awaited: the worker must never wait on a plugin. Each drop is logged
  (``evt=plugin_hook_dropped``) and counted (``redrive_plugin_hook_dropped_total``).
- **Drained on shutdown.** ``aclose`` waits up to the grace period for the reports in flight, then cancels the rest
  (logged with their count).

Which hooks have implementations is read once, when the runner is built: a hook nobody implements costs the hot
path one set lookup and builds no report.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pluggy
import structlog

from redrive.extensions import (
    AttemptRecorded,
    BreakerTransition,
    EventAccepted,
    ExecutionDeadLettered,
    ExecutionRecovered,
)
from redrive.failures.classify import Failure
from redrive.observe.metrics import Metrics

log = structlog.get_logger("redrive.plugins")

EVENT_ACCEPTED = "redrive_event_accepted"
BREAKER_TRANSITION = "redrive_breaker_transition"
LIFECYCLE_HOOKS = (
    EVENT_ACCEPTED,
    "redrive_attempt_recorded",
    "redrive_execution_dead_lettered",
    "redrive_execution_recovered",
    BREAKER_TRANSITION,
)
SYNC_THREADS = 8
"""Plain ``def`` implementations running at once (each in its own daemon thread)."""


@dataclass(frozen=True, slots=True)
class Report:
    """One lifecycle hook to call and its one keyword argument (``event``, ``attempt``, ``execution`` or
    ``transition``)."""

    hook: str
    argument: str
    value: object


def accepted(
    trigger: str, event_id: int, execution_id: int | None, idempotency_key: str | None, received_at: datetime
) -> list[Report]:
    """The report of a new event, committed."""
    event = EventAccepted(trigger, event_id, execution_id, idempotency_key, received_at)
    return [Report(EVENT_ACCEPTED, "event", event)]


def completed(
    trigger: str,
    kind: str,
    execution_id: int,
    attempt: int,
    status: str,
    failure: Failure | None,
    retry_at: datetime | None,
    duration: float,
) -> list[Report]:
    """The reports of one committed attempt: always ``attempt_recorded``, then ``execution_dead_lettered`` when it
    moved to ``failed_retryable`` or ``failed``, or ``execution_recovered`` when it succeeded after a failed attempt
    (an execution's attempts before a success are failures: a success ends it)."""
    recorded = AttemptRecorded(trigger, kind, execution_id, attempt, status, failure, retry_at, duration)
    reports = [Report("redrive_attempt_recorded", "attempt", recorded)]
    if failure is not None and status in {"failed_retryable", "failed"}:
        ended = ExecutionDeadLettered(trigger, kind, execution_id, status, attempt, failure)
        reports.append(Report("redrive_execution_dead_lettered", "execution", ended))
    elif failure is None and status == "succeeded" and attempt > 1:
        reports.append(
            Report("redrive_execution_recovered", "execution", ExecutionRecovered(trigger, kind, execution_id, attempt))
        )
    return reports


def breaker_transition(transition: BreakerTransition) -> list[Report]:
    """The report of a committed breaker transition."""
    return [Report(BREAKER_TRANSITION, "transition", transition)]


class Lifecycle:
    """Calls the lifecycle hooks of a plugin manager in bounded background tasks."""

    def __init__(
        self,
        plugins: pluggy.PluginManager | None = None,
        *,
        timeout: float = 5.0,
        backlog: int = 1000,
        metrics: Metrics | None = None,
    ) -> None:
        self._plugins = plugins
        self._timeout = timeout
        self._backlog = backlog
        self._metrics = metrics  # None: logged only (a runner without plugins never fails)
        self._implemented = frozenset(
            name for name in LIFECYCLE_HOOKS if plugins is not None and _implementations(plugins, name)
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._threads = asyncio.Semaphore(SYNC_THREADS)  # released by the thread itself, when it ends
        self._closed = False

    @property
    def active(self) -> bool:
        """True when some plugin implements a lifecycle hook."""
        return bool(self._implemented)

    def wants(self, hook: str) -> bool:
        """True when some plugin implements ``hook`` (callers skip building reports nobody reads)."""
        return hook in self._implemented

    @property
    def in_flight(self) -> int:
        """Reports whose hooks are still running."""
        return len(self._tasks)

    def notify(self, reports: Sequence[Report]) -> None:
        """Run the hooks of ``reports`` (in order) in one background task; return at once, never raise."""
        wanted = [report for report in reports if report.hook in self._implemented]
        if not wanted or self._closed:
            return
        if len(self._tasks) >= self._backlog:
            for report in wanted:
                if self._metrics is not None:
                    self._metrics.plugin_hook_dropped(report.hook)
                log.warning("plugin_hook_dropped", hook=report.hook, in_flight=len(self._tasks))
            return
        task = asyncio.get_running_loop().create_task(self._deliver(wanted), name="redrive-plugin-hooks")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self, grace: float) -> None:
        """Stop taking reports; give those in flight ``grace`` seconds, then cancel the rest."""
        self._closed = True
        pending = set(self._tasks)
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            if late:
                log.warning("plugin_hooks_abandoned", count=len(late), grace_s=grace)
                for task in late:
                    task.cancel()
                await asyncio.wait(late, timeout=1.0)  # an implementation that swallows cancellation is left

    async def _deliver(self, reports: Sequence[Report]) -> None:
        assert self._plugins is not None
        for report in reports:
            impls = _implementations(self._plugins, report.hook)
            await asyncio.gather(*(self._call(impl, report) for impl in impls))

    async def _call(self, impl: pluggy.HookImpl, report: Report) -> None:
        args = [report.value if name == report.argument else None for name in impl.argnames]
        try:
            if inspect.iscoroutinefunction(impl.function):
                async with asyncio.timeout(self._timeout):
                    await impl.function(*args)
            else:
                deadline = time.monotonic() + self._timeout
                result = await self._in_thread(impl.function, args)
                if inspect.isawaitable(result):  # a plain def may hand back a coroutine
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        await result
        except TimeoutError:
            self._failed(impl, report, "timeout", f"did not return within {self._timeout:g}s")
        except Exception as exc:
            self._failed(impl, report, "error", f"{type(exc).__name__}: {exc}")

    async def _in_thread(self, function: Callable[..., Any], args: list[Any]) -> Any:
        """``function(*args)`` in a daemon thread, within the timeout (the wait for a free slot included)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def settle(outcome: Callable[[Any], None], value: Any) -> None:
            if not future.done():  # the awaiting task may have timed out and gone
                outcome(value)

        def run() -> None:
            try:
                result = function(*args)
            except Exception as exc:  # handed to the awaiting task, which logs it
                _post(loop, settle, future.set_exception, exc)
            else:
                _post(loop, settle, future.set_result, result)
            finally:
                _post(loop, self._threads.release)

        async with asyncio.timeout(self._timeout):
            await self._threads.acquire()
            threading.Thread(target=run, name="redrive-plugin-hook", daemon=True).start()
            return await future

    def _failed(self, impl: pluggy.HookImpl, report: Report, reason: str, error: str) -> None:
        if self._metrics is not None:
            self._metrics.plugin_hook_failed(impl.plugin_name, report.hook, reason)
        log.warning("plugin_hook_failed", plugin=impl.plugin_name, hook=report.hook, reason=reason, error=error)


def _implementations(plugins: pluggy.PluginManager, hook: str) -> list[pluggy.HookImpl]:
    # Wrappers wrap a call of every implementation at once; each implementation is called on its own here.
    caller = getattr(plugins.hook, hook, None)
    if caller is None:
        return []
    return [impl for impl in caller.get_hookimpls() if not (impl.hookwrapper or impl.wrapper)]


def _post(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    # A hung implementation may return after its loop has closed (the process is stopping): nothing to tell then.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)
