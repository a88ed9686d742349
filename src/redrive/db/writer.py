"""Group commit: one thread owns the write connection and commits many jobs per transaction.

A job is a function of a ``Connection`` that runs statements and returns a value; it reports business outcomes
(a duplicate, a lost lease) as values, and raises only when something is really wrong. The writer takes every job
waiting, runs them in one transaction and commits once, so the price of an fsync is shared. If the batch fails, it
is rolled back and each job is run again in a transaction of its own, so one bad job fails alone.

On SQLite this is also what keeps one writer per process (WAL allows one); on PostgreSQL it simply saves round
trips and commits.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from sqlalchemy import Engine
from sqlalchemy.engine import Connection

T = TypeVar("T")
Job = Callable[[Connection], T]
log = structlog.get_logger("redrive.writer")


@dataclass(slots=True)
class _Pending:
    job: Job[Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller went away (client disconnected); the work is committed all the same
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Writer:
    """The single writer thread; ``await writer.run(job)`` returns once the job's transaction has committed."""

    def __init__(self, engine: Engine, *, max_batch: int = 256) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="redrive-writer", daemon=True)
        self._started = False

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if not self._started:
            self._started = True
            self._thread.start()

    async def run(self, job: Job[T]) -> T:
        """Queue a job and wait until it has committed; re-raises the job's own exception."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Pending(job, loop, future))
        return await future

    def close(self) -> None:
        """Finish the jobs already queued, then stop the thread."""
        if self._started:
            self._queue.put(None)
            self._thread.join()
            self._started = False

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            with self._engine.begin() as connection:
                results = [pending.job(connection) for pending in batch]
        except Exception as exc:
            if len(batch) > 1:
                for pending in batch:  # one bad job must not fail its neighbours
                    self._commit([pending])
                return
            self._deliver(batch[0], None, exc)
            return
        for pending, result in zip(batch, results, strict=True):
            self._deliver(pending, result, None)

    @staticmethod
    def _deliver(pending: _Pending, result: Any, error: BaseException | None) -> None:
        try:
            pending.loop.call_soon_threadsafe(_settle, pending.future, result, error)
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            log.warning("writer_result_dropped", reason="event loop closed")
