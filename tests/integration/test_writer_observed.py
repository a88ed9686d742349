"""The writer tells its observer what each batch cost (``Writer.observer``): the service's ``redrive_writer_*``
counters. Every job is counted once, a failed batch's too, and the batch's time is told apart from its thread's
CPU time: a job that waits costs seconds, one that computes costs CPU. An observer that fails never stops the
writes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Connection
from writer_support import mark, marks, with_marks

from redrive.db.database import Database


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    with_marks(database)
    yield database
    database.close()


def observed(db: Database) -> list[tuple[int, float, float]]:
    batches: list[tuple[int, float, float]] = []
    db.writer.observer = lambda jobs, seconds, cpu: batches.append((jobs, seconds, cpu))
    db.start()
    return batches


def waits(connection: Connection) -> str:
    time.sleep(0.2)  # the job's own work: time on the clock, next to no CPU
    return mark("waited")(connection)


def computes(connection: Connection) -> str:
    until = time.thread_time() + 0.2
    while time.thread_time() < until:  # the job's own work: CPU
        pass
    return mark("computed")(connection)


def fails(connection: Connection) -> str:
    raise RuntimeError("this job fails")


def test_every_job_is_counted_once_in_the_batch_it_ran_in(db: Database) -> None:
    batches = observed(db)

    async def scenario() -> list[object]:
        jobs = [mark(f"m{n}") for n in range(5)] + [fails]
        return await asyncio.gather(*(db.write(job) for job in jobs), return_exceptions=True)

    results = asyncio.run(scenario())
    db.close()  # the writer's thread has told the observer of every batch once it has stopped
    assert [type(result) for result in results] == [str] * 5 + [RuntimeError]
    assert marks(db) == [f"m{n}" for n in range(5)]
    assert sum(jobs for jobs, _, _ in batches) == 6  # the failed batch's jobs, run again alone, counted once
    assert all(0 <= cpu <= seconds for _, seconds, cpu in batches)


def test_a_batch_that_waits_costs_seconds_and_one_that_computes_costs_cpu(db: Database) -> None:
    batches = observed(db)
    assert asyncio.run(db.write(waits)) == "waited"
    assert asyncio.run(db.write(computes)) == "computed"
    db.close()
    (_, waited, waited_cpu), (_, computed, computed_cpu) = batches
    assert waited >= 0.2
    assert waited_cpu < 0.1
    assert computed_cpu >= 0.2
    assert computed >= computed_cpu


def test_an_observer_that_raises_is_dropped_and_the_writes_go_on(db: Database) -> None:
    told: list[int] = []

    def broken(jobs: int, seconds: float, cpu: float) -> None:
        told.append(jobs)
        raise OSError("no space left for the metrics' files")

    db.writer.observer = broken
    db.start()

    async def scenario() -> list[str]:
        first = await db.write(mark("first"))
        second = await asyncio.wait_for(db.write(mark("second")), timeout=10)  # the writer's thread still runs
        return [first, second]

    assert asyncio.run(scenario()) == ["first", "second"]
    assert told == [1]  # told once, then dropped
    assert db.writer.observer is None
