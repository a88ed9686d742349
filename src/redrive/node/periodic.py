"""One way to run a background loop: a step every ``interval`` seconds, in a task the node starts and stops.

Heartbeats, maintenance (sweeper, dead nodes, retention), lease renewal and the watermark check all run on it, so
each loop starts, fails and stops the same way: a step that raises is logged with its ``evt`` (an unreachable
database as one warning line, anything else with its traceback: ``log_failure``) and the loop goes on; ``stop``
cancels the task and waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from redrive.observe.logs import log_failure

log = structlog.get_logger("redrive.node")


class Periodic:
    """Calls ``step`` every ``interval`` seconds (first right away, or after one interval with ``delay_first``)."""

    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[object]],
        interval: float,
        *,
        failed_evt: str,
        delay_first: bool = False,
    ) -> None:
        self.name = name
        self.interval = interval
        self._step = step
        self._failed_evt = failed_evt
        self._delay_first = delay_first
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """True between ``start`` and ``stop``."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the loop in a task of its own (inside the running event loop)."""
        self._task = asyncio.create_task(self._loop(), name=f"redrive-{self.name}")

    async def stop(self) -> None:
        """Cancel the loop (mid-step if need be) and wait until it has ended."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        if self._delay_first:
            await asyncio.sleep(self.interval)
        while True:
            try:
                await self._step()
            except Exception as exc:
                log_failure(log, self._failed_evt, exc)
            await asyncio.sleep(self.interval)
