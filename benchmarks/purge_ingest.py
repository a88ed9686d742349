"""Ingest latency while retention purges a million rows: a figure, not a test.

``uv run python benchmarks/purge_ingest.py [--rows 1000000] [--seconds 5] [--url URL]``

Seeds ``--rows`` succeeded executions that finished 30 days ago (past the 7-day default) on a fresh SQLite file, or
on ``--url`` (an empty PostgreSQL database; it is migrated). Then, in one process with the group-commit writer as
``redrive up`` runs it, it stores events one after another exactly as ``POST /hooks`` does (``store_event`` through
the writer, committed before the next) and times each: for ``--seconds`` with nothing else going on (the baseline),
then for as long as retention takes to purge every seeded row in its batches. It prints both latency
distributions and their p99 ratio: a purge that blocked ingest would show as one write waiting for the whole purge.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

from redrive.db.database import Database
from redrive.db.migrate import upgrade
from redrive.ingest.prepare import prepare
from redrive.ingest.store import store_event
from redrive.node import retention
from redrive.observe.redaction import Redactor
from redrive.triggers.config import parse_config
from redrive.triggers.runtime import sync_triggers

CONFIG = parse_config(
    "triggers: [{name: bench, source: {idempotency_key: ['body:messageId']}, action: {kind: command, argv: ['true']}}]"
)


def seed(url: str, trigger_id: int, rows: int, finished: datetime) -> float:
    """Insert ``rows`` old succeeded executions of one old event in one statement; return the seconds it took."""
    started = time.perf_counter()
    engine = create_engine(url)
    with engine.begin() as connection:
        event_id = connection.execute(
            text(
                "INSERT INTO events (trigger_id, body_sha256, headers, payload, filtered, received_at, replay_count) "
                "VALUES (:trigger, :sha, '{}', '{}', false, :t, 0) RETURNING id"
            ),
            {"trigger": trigger_id, "sha": "0" * 64, "t": finished},
        ).scalar_one()
        insert = (
            "INSERT INTO executions (event_id, trigger_id, action_kind, status, attempts, run_at, created_at, "
            "updated_at, finished_at) SELECT :event, :trigger, 'command', 'succeeded', 1, f, f, f, f"
        )
        params = {"event": event_id, "trigger": trigger_id, "last": rows - 1}
        if engine.dialect.name == "postgresql":
            f = "CAST(:at AS timestamptz) - i * interval '1 millisecond'"
            series = f"(SELECT i, {f} AS f FROM generate_series(0, :last) i)"
            connection.execute(text(f"{insert} FROM {series} AS n"), {**params, "at": finished})
        else:
            at = finished.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S")
            rows_cte = f"n(i, f) AS (SELECT 0, '{at}.000000' UNION ALL SELECT i + 1, f FROM n WHERE i < :last)"
            connection.execute(text(f"WITH RECURSIVE {rows_cte} {insert} FROM n"), params)
    if engine.dialect.name == "postgresql":  # as autovacuum would have, on a table that grew over weeks
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE executions"))
    engine.dispose()
    return time.perf_counter() - started


async def ingest_until(db: Database, trigger_id: int, first: int, done: asyncio.Event | float) -> list[float]:
    """Store events one after another until ``done`` is set (or for that many seconds); each write's seconds."""
    trigger, redactor = CONFIG.triggers[0], Redactor()
    latencies: list[float] = []
    deadline = time.perf_counter() + done if isinstance(done, float) else None
    n = first
    while not (done.is_set() if isinstance(done, asyncio.Event) else time.perf_counter() >= (deadline or 0)):
        body = b'{"messageId":"m-%d"}' % n
        event = prepare(trigger, trigger_id, body=body, headers={}, received_at=datetime.now(UTC), redactor=redactor)
        started = time.perf_counter()
        await db.write(store_event(event))
        latencies.append(time.perf_counter() - started)
        n += 1
    return latencies


def summary(name: str, latencies: list[float]) -> float:
    """Print the distribution; return its p99 in ms."""
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"{name:26} {len(ms):7} writes  p50 {statistics.median(ms):7.2f} ms  p99 {p99:7.2f} ms  max {ms[-1]:8.2f} ms")
    return p99


async def main(url: str, rows: int, seconds: float) -> None:
    now = datetime.now(UTC)
    setup = Database(url)
    trigger_id = setup.write_sync(lambda c: sync_triggers(c, CONFIG, now))[CONFIG.triggers[0].name]
    setup.close()
    took = seed(url, trigger_id, rows, now - timedelta(days=30))
    print(f"seeded {rows} succeeded executions, finished 30 days ago, in {took:.1f} s")
    db = Database(url)
    db.start()
    try:
        quiet = await ingest_until(db, trigger_id, 0, seconds)
        purge_plan = retention.plan({trigger_id: CONFIG.triggers[0].retention}, datetime.now(UTC))
        done = asyncio.Event()
        started = time.perf_counter()

        async def purging() -> retention.Purged:
            try:
                return await retention.purge(db.write, purge_plan)
            finally:
                done.set()

        purged, during = await asyncio.gather(purging(), ingest_until(db, trigger_id, len(quiet), done))
        elapsed = time.perf_counter() - started
    finally:
        db.close()
    print(
        f"purge: {purged.executions} executions and {purged.events} event(s) in {elapsed:.1f} s "
        f"({purged.executions / elapsed:,.0f} rows/s, batches of {retention.BATCH})"
    )
    base = summary("ingest, nothing else", quiet)
    busy = summary("ingest during the purge", during)
    print(
        f"p99 during the purge / p99 alone: {busy / base:.1f}x; longest single wait {max(during) * 1000:.1f} ms "
        f"against a purge of {elapsed * 1000:,.0f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="how long the baseline runs")
    parser.add_argument("--url", help="an empty PostgreSQL database (default: a fresh SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        target = args.url or f"sqlite:///{Path(workdir) / 'redrive.db'}"
        upgrade(target)
        asyncio.run(main(target, args.rows, args.seconds))
