"""Writer-thread cost per job, in process: how many ingest, claim and complete jobs the writer runs per second.

A figure, not a test. ``uv run python benchmarks/writer_jobs.py [--events 5000] [--concurrency 64] [--url URL]``
stores ``--events`` events through ``Database.write`` from ``--concurrency`` coroutines, then claims and completes
them all, on a fresh SQLite file (or ``--url``, e.g. a PostgreSQL database migrated to head). It prints the wall
time per job and the CPU time the writer's threads used per job (the writer is the serial part of the pipeline).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from redrive.db.database import Database
from redrive.db.migrate import upgrade
from redrive.ingest.prepare import prepare
from redrive.ingest.store import store_event
from redrive.observe.redaction import Redactor
from redrive.queue import statements as queue
from redrive.triggers.config import parse_config
from redrive.triggers.runtime import sync_triggers

CONFIG = parse_config(
    "triggers: [{name: bench, source: {idempotency_key: ['body:messageId']}, action: {kind: command, argv: ['true']}}]"
)


def writer_cpu(db: Database) -> float:
    """CPU seconds used so far by the writer's threads (Linux; one on SQLite, several on PostgreSQL)."""
    total = 0
    for thread in db.writer._threads:  # a benchmark may look inside
        native = thread.native_id
        assert native is not None
        fields = Path(f"/proc/self/task/{native}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def line(name: str, count: int, wall: float, cpu: float, unit: str) -> None:
    """One result line: rate, wall time and writer CPU time per unit."""
    print(
        f"{name + ':':10}{count / wall:8.0f} {unit}s/s  wall {wall * 1e6 / count:6.0f} us/{unit}  "
        f"writer cpu {cpu * 1e6 / count:6.0f} us/{unit}",
        flush=True,
    )


async def run(db: Database, events: int, concurrency: int) -> None:
    now = datetime.now(UTC)
    ids = db.write_sync(lambda c: sync_triggers(c, CONFIG, now))
    trigger = CONFIG.triggers[0]
    redactor = Redactor()
    numbers = iter(range(events))

    async def sender() -> None:
        for n in numbers:
            body = b'{"messageId":"m-%d","text":"hello"}' % n
            event = prepare(
                trigger,
                ids["bench"],
                body=body,
                headers={"content-type": "application/json"},
                received_at=datetime.now(UTC),
                redactor=redactor,
            )
            stored = await db.write(store_event(event))
            assert stored.outcome == "created", stored

    cpu0, t0 = writer_cpu(db), time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - t0, writer_cpu(db) - cpu0
    line("ingest", events, wall, cpu, "job")

    claimed: list[queue.Claimed] = []
    cpu0, t0 = writer_cpu(db), time.perf_counter()
    while True:
        found = await db.write(queue.claim([ids["bench"]], 50, 30, datetime.now(UTC)))
        if not found.executions:
            break
        claimed.extend(found.executions)
    wall, cpu = time.perf_counter() - t0, writer_cpu(db) - cpu0
    n = max(1, len(claimed))
    line("claim", n, wall, cpu, "row")

    pending = iter(claimed)

    async def completer() -> None:
        for c in pending:
            at = datetime.now(UTC)
            done = queue.Completion(
                c.id,
                c.lease_token,
                "succeeded",
                None,
                at,
                at,
                "succeeded",
                None,
                None,
                None,
                {"status": 200},
                None,
                trigger_id=c.trigger_id,
                action_kind="command",
            )
            assert await db.write(queue.complete(done))

    cpu0, t0 = writer_cpu(db), time.perf_counter()
    await asyncio.gather(*(completer() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - t0, writer_cpu(db) - cpu0
    line("complete", n, wall, cpu, "job")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--url", default=None, help="a migrated database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="redrive-writer-") as tmp:
        url = args.url or f"sqlite:///{tmp}/redrive.db"
        if args.url is None:
            upgrade(url)
        db = Database(url)
        db.start()
        try:
            asyncio.run(run(db, args.events, args.concurrency))
        finally:
            db.close()


if __name__ == "__main__":
    main()
