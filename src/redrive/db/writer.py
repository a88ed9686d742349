"""Group commit: one thread owns the write connection and commits many jobs per transaction.

A job is a function of a ``Connection`` that runs statements and returns a value; it reports business outcomes
(a duplicate, a lost lease) as values, and raises only when something is really wrong. The writer takes every job
waiting, runs them in one transaction and commits once, so the price of an fsync is shared. If the batch fails, it
is rolled back and each job is run again in a transaction of its own, so one bad job fails alone.

A ``BatchJob`` goes further: the jobs of one ``BatchJob`` class in a batch run together through its ``run_batch``,
one multi-row statement per table instead of a few statements per job. Jobs waiting together were submitted
concurrently (none awaited another), so running them grouped rather than in arrival order is a valid serial order.
The writer thread is the serial part of the service and shares the GIL with the event loop, so every Python
operation it saves per job is throughput; results go back to each event loop in one call per batch.

On SQLite one thread is what keeps one writer per process (WAL allows one). Several processes take turns at the
file (``db.engine``); the jobs that arrive while a process waits for its turn join the batch that waited
(``Writer._top_up``), so each turn, serial across the processes, carries all the process has to write.

On PostgreSQL the writer can run several threads (``Settings.writer_connections``; one by default, see
``Database``), each with its own connection, taking turns to collect a batch: while one waits on its round trips and
its commit's WAL flush, the next collects and runs the jobs that arrived meanwhile, and commits that land together
share PostgreSQL's own flush (group commit). A batch still commits or fails as a whole, and a job submitted after
another job's result came back runs in a later transaction than that one, as with one thread. Concurrent
transactions can deadlock or hit a serialization failure, as two processes can; such a batch is run again
(``_CONFLICT_RETRIES``) before its jobs are run alone. Each thread keeps its PostgreSQL connection from one batch to
the next (``_Link``): checking it out of the pool for every batch cost a ping round trip each time.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from redrive.db.engine import conflicted, storage_unavailable

T = TypeVar("T")
D = TypeVar("D")
WRITER_THREAD_INFO = "redrive_writer_thread"
"""The ``Connection.info`` key naming the writer thread (0, 1, ...) whose transaction runs on the connection: what
spreads the rollups' hot rows over the threads (``redrive.observe.rollups``) so they never queue on each other."""
Job = Callable[[Connection], T]
BatchObserver = Callable[[int, float, float], None]
"""Told of each batch the writer has run, committed or not: its jobs, the seconds it took and the CPU seconds its
thread spent on it (``Writer.observer``)."""
log = structlog.get_logger("redrive.writer")
_CONFLICT_RETRIES = 3  # a batch that deadlocked with another writer's is run again this many times
_BEFORE_COMMIT = "redrive_before_commit"  # Connection.info: what the open writer transaction writes last
_IDLE_PING = 1.0  # seconds: a kept connection idle longer than this goes back through the pool's ping


class BatchJob(ABC, Generic[T]):
    """A job that runs together with the other jobs of its class in a batch, through ``run_batch``."""

    __slots__ = ()

    def __call__(self, connection: Connection) -> T:
        """Run this job alone."""
        [result] = self.run_batch(connection, [self])
        return result

    @classmethod
    @abstractmethod
    def run_batch(cls, connection: Connection, jobs: Sequence[Any]) -> list[T]:
        """Run ``jobs`` (all of this class) in the open transaction; one result per job, in order."""


@dataclass(slots=True)
class _Pending:
    job: Job[Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in outcomes:
        if future.done():  # the caller went away (client disconnected); the work is committed all the same
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


LAST_WRITES = ("destinations", "ordering keys", "rollups")
"""What a writer transaction writes after all its jobs have run, in this order (``before_commit``).

This is the writer's lock order. Every job locks what it updates first (executions' rows, then their destinations'
rows, which the transaction reads once and writes back first at its end: ``redrive.destinations.store``); then
every ordering key the transaction parks or frees is locked at once, in key order (``redrive.queue.parking``);
then the stats rollups' hot rows, in key order (``redrive.observe.rollups``). Two writer transactions (of this
process's threads or of other processes) then never each hold a lock the other waits for: a key's advisory lock
taken by one job and a destination's row by the next had done that.
"""


def before_commit(
    connection: Connection, name: str, make: Callable[[], D], write: Callable[[Connection, D], None]
) -> D | None:
    """In a writer transaction, the value kept under ``name`` (one of ``LAST_WRITES``; ``make()`` the first time),
    which ``write(connection, value)`` writes once every job of the transaction has run, just before it commits;
    None outside a writer transaction (the caller then writes at once).
    """
    deferred = connection.info.get(_BEFORE_COMMIT)
    if deferred is None:
        return None
    if name not in deferred:
        deferred[name] = (make(), write)
    value: D = deferred[name][0]
    return value


def _run_jobs(connection: Connection, batch: list[_Pending]) -> list[Any]:
    results: list[Any] = [None] * len(batch)
    grouped: dict[type[BatchJob[Any]], list[int]] = {}
    deferred: dict[str, tuple[Any, Callable[[Connection, Any], None]]] = {}
    info = connection.info  # read once: a connection the database dropped meanwhile raises on every later read
    info[_BEFORE_COMMIT] = deferred
    try:
        for index, pending in enumerate(batch):
            job = pending.job
            if isinstance(job, BatchJob):
                grouped.setdefault(type(job), []).append(index)
            else:
                results[index] = job(connection)
        for kind, indexes in grouped.items():
            outcomes = kind.run_batch(connection, [batch[i].job for i in indexes])
            for index, result in zip(indexes, outcomes, strict=True):
                results[index] = result
        for name in LAST_WRITES:
            if name in deferred:
                value, write = deferred[name]
                write(connection, value)
    finally:
        del info[_BEFORE_COMMIT]
    return results


class _Link:
    """A writer thread's way to a transaction: on PostgreSQL its connection, kept between batches.

    The pool pings a connection on every checkout (so a server restart costs no failed write); a thread that
    commits batch after batch pays that round trip only after ``_IDLE_PING`` seconds without a batch, or after a
    failure that lost the connection. A kept connection can still have died unseen (the server restarted within
    that second): then its batch fails before committing, which ``stale`` reports, so the writer runs the batch again
    on a fresh connection instead of failing it. On SQLite every batch checks the one connection out and back (no
    ping there): ``Database.write_sync`` shares it.
    """

    def __init__(self, engine: Engine, thread: int = 0) -> None:
        self._engine = engine
        self._thread = thread
        self._keep = engine.dialect.name != "sqlite"
        self._connection: Connection | None = None
        self._used = 0.0
        self.stale = False  # the last transaction failed before its commit, on a connection kept without a ping

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection in a transaction that commits when the block ends and rolls back if it raises."""
        self.stale = False
        if not self._keep:
            with self._engine.begin() as connection:
                connection.info[WRITER_THREAD_INFO] = self._thread
                yield connection
            return
        kept = self._connection
        if kept is not None and (kept.invalidated or time.monotonic() - self._used > _IDLE_PING):
            self.close()
            kept = None
        unchecked = kept is not None
        if kept is None:
            kept = self._connection = self._engine.connect()
            kept.info[WRITER_THREAD_INFO] = self._thread
        committing = False
        try:
            with kept.begin():
                yield kept
                committing = True
        except BaseException:
            self.stale = unchecked and not committing  # nothing committed: safe to run again
            self.close()  # whatever failed, the next batch starts from a checked connection
            raise
        finally:
            self._used = time.monotonic()

    def close(self) -> None:
        """Give the kept connection back to the pool."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class Writer:
    """The writer threads; ``await writer.run(job)`` returns once the job's transaction has committed.

    ``threads`` writers share the queue (1 on SQLite: WAL allows one writer); one of them collects at a time.
    """

    def __init__(self, engine: Engine, *, max_batch: int = 256, threads: int = 1) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._collecting = threading.Lock()  # held by the thread forming the next batch
        self._stopping = False
        self._threads = [
            threading.Thread(
                target=self._loop, args=(n,), name=f"redrive-writer-{n}" if n else "redrive-writer", daemon=True
            )
            for n in range(threads)
        ]
        self._started = False
        self.observer: BatchObserver | None = None
        """Told of each batch once it has run (``BatchObserver``), on the writer's thread: the service counts its
        writer's work (``redrive_writer_*`` in ``/metrics``). It must be quick; one that raises is dropped (logged as
        ``writer_observer_dropped``) and the writer goes on."""

    def start(self) -> None:
        """Start the threads (idempotent)."""
        if not self._started:
            self._started = True
            for thread in self._threads:
                thread.start()

    @property
    def queued(self) -> int:
        """Jobs waiting to be collected into a batch."""
        return self._queue.qsize()

    async def run(self, job: Job[T]) -> T:
        """Queue a job and wait until it has committed; re-raises the job's own exception."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Pending(job, loop, future))
        return await future

    def close(self) -> None:
        """Finish the jobs already queued, then stop the threads."""
        if self._started:
            self._queue.put(None)  # the thread that takes it stops collecting; the others see _stopping
            for thread in self._threads:
                thread.join()
            self._started = False

    def _loop(self, thread: int) -> None:
        link = _Link(self._engine, thread)
        try:
            while batch := self._collect():
                started, cpu = time.perf_counter(), time.thread_time()
                self._commit(link, batch)
                observer = self.observer
                if observer is not None:  # the CPU interval inside the wall one: cpu <= seconds
                    spent = time.thread_time() - cpu
                    try:
                        observer(len(batch), time.perf_counter() - started, spent)
                    except Exception:  # a count must never stop the writes: the observer goes, the writer stays
                        self.observer = None
                        log.exception("writer_observer_dropped")
        finally:
            link.close()

    def _collect(self) -> list[_Pending]:
        """The next batch: every job waiting, up to ``max_batch``; empty once the writer is closing."""
        with self._collecting:
            if self._stopping:
                return []
            first = self._queue.get()
            if first is None:
                self._stopping = True
                return []
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._stopping = True
                    break
                batch.append(item)
            return batch

    def _top_up(self, batch: list[_Pending]) -> None:
        """Add to ``batch`` the jobs queued since it was collected, up to ``max_batch``.

        Called once the transaction has begun, which on SQLite means once this process has its turn at the file
        (``db.engine``): the jobs that came in while another process held it join this transaction instead of
        waiting for the next turn. Each turn is serial across the processes, so the fewer turns the same jobs take,
        the more the processes together write. The jobs added were submitted before this transaction commits, so
        none of them waited for another job of it.
        """
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is None:  # closing: left for the collector, which stops the threads
                self._queue.put(None)
                return
            batch.append(item)

    def _commit(
        self, link: _Link, batch: list[_Pending], retries: int = _CONFLICT_RETRIES, *, top_up: bool = True
    ) -> None:
        try:
            with link.transaction() as connection:
                if top_up:
                    self._top_up(batch)
                results = _run_jobs(connection, batch)
        except Exception as exc:
            if retries and conflicted(exc):  # another writer's transaction won a lock race: the batch is innocent
                self._commit(link, batch, retries - 1, top_up=False)
                return
            if link.stale and storage_unavailable(exc):  # the kept connection had died unseen; nothing committed
                # Run again on a fresh, pinged connection: a second failure is real.
                self._commit(link, batch, retries, top_up=False)
                return
            if len(batch) > 1 and not storage_unavailable(exc):
                for pending in batch:  # one bad job must not fail its neighbours
                    self._commit(link, [pending], top_up=False)
                return
            # One job's own failure, or the database is away: then no job is to blame, and retrying each alone
            # would wait out a connect timeout per job while the writer holds everyone behind it.
            self._deliver([(pending, None, exc) for pending in batch])
            return
        self._deliver([(pending, result, None) for pending, result in zip(batch, results, strict=True)])

    @staticmethod
    def _deliver(outcomes: list[tuple[_Pending, Any, BaseException | None]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
        for pending, result, error in outcomes:
            by_loop.setdefault(pending.loop, []).append((pending.future, result, error))
        for loop, settled in by_loop.items():  # one wake-up per loop and batch, not one per job
            try:
                loop.call_soon_threadsafe(_settle, settled)
            except RuntimeError:  # the loop has closed: nobody is waiting any more
                log.warning("writer_result_dropped", reason="event loop closed", jobs=len(settled))
