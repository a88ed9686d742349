"""The ordered claim with a backlog behind busy keys: a figure, not a test.

``uv run python benchmarks/ordered_backlog.py [--waiting 20000] [--keys 20] [--claims 50] [--only sqlite|postgresql]``

For each database: a fresh one is migrated, one ordered trigger (``ordering.key`` per customer) is declared, and
``--waiting`` + ``--keys`` events of ``--keys`` customers are stored through the ingest's own writer job (so a
build that parks rows parks them as the service would); one claim then leases each key's head, and they stay
running. Each of ``--claims`` claims (the worker's job, ``ordered=True``, a batch of 50) finds nothing to lease:
its time is what a worker pays per poll while the backlog waits. Printed per database: ms per claim (median and
range) and, on PostgreSQL, the index rows the claims read per claim (``pg_stat_user_indexes.idx_tup_read`` over
the executions indexes). The script uses only interfaces both before and after parking have, so one run per
commit, interleaved, compares them (``PYTHONPATH=<other checkout>/src`` runs the other one).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime

from benchkit import fresh_url, timed_claims
from sqlalchemy import Engine, text

from redrive.db.engine import make_engine
from redrive.db.migrate import upgrade
from redrive.ingest.prepare import prepare
from redrive.ingest.store import store_events
from redrive.observe.redaction import Redactor
from redrive.queue import statements as queue
from redrive.triggers.config import parse_config
from redrive.triggers.runtime import sync_triggers

CONFIG = """
triggers:
  - name: ordered
    action: {kind: command, argv: ['true']}
    ordering: {key: "{{ payload.customer.id }}"}
"""
T0 = datetime(2026, 1, 1, tzinfo=UTC)
BATCH = 500


def seed(engine: Engine, waiting: int, keys: int) -> list[int]:
    """Store the events (heads first), lease the heads; the trigger ids."""
    config = parse_config(CONFIG)
    with engine.begin() as connection:
        ids = sync_triggers(connection, config, T0)
    trigger = config.trigger("ordered")
    assert trigger is not None
    events = [
        prepare(
            trigger,
            ids["ordered"],
            body=f'{{"customer": {{"id": "c{n % keys}"}}}}'.encode(),
            headers={},
            received_at=T0,
            redactor=Redactor(),
        )
        for n in range(waiting + keys)
    ]
    for start in range(0, len(events), BATCH):
        with engine.begin() as connection:
            store_events(connection, events[start : start + BATCH])
    with engine.begin() as connection:
        heads = queue.claim(list(ids.values()), 100, 3600, T0, ordered=True)(connection).executions
    assert len(heads) == keys, len(heads)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE executions"))
    return list(ids.values())


def index_rows_read(engine: Engine) -> int:
    with engine.connect() as connection:
        query = "SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes WHERE relname = 'executions'"
        return int(connection.execute(text(query)).scalar_one())


def measure(engine: Engine, trigger_ids: list[int], claims: int) -> tuple[list[float], float | None]:
    job = queue.claim(trigger_ids, 50, 30, T0, ordered=True)
    pg = engine.dialect.name == "postgresql"
    before = index_rows_read(engine) if pg else 0
    with engine.connect() as connection:
        times = timed_claims(connection, job, claims, "every head runs: nothing is due")
        if pg:
            connection.execute(text("SELECT pg_stat_force_next_flush()"))
            connection.commit()
    if not pg:
        return times, None
    time.sleep(0.5)
    return times, (index_rows_read(engine) - before) / claims


def run(kind: str, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder, fresh_url(kind, args.pg, "redrive_backlog", folder) as url:
        upgrade(url)
        engine = make_engine(url, writer=True)
        trigger_ids = seed(engine, args.waiting, args.keys)
        measure(engine, trigger_ids, 5)  # warm-up
        times, rows = measure(engine, trigger_ids, args.claims)
        engine.dispose()
    shown = f"{rows:.0f}" if rows is not None else "-"
    print(
        f"{kind:10} waiting={args.waiting} keys={args.keys}: claim median {statistics.median(times):.2f} ms "
        f"(min {min(times):.2f}, max {max(times):.2f}); index rows read per claim: {shown}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--claims", type=int, default=50)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument(
        "--pg", default=os.environ.get("REDRIVE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    args = parser.parse_args()
    for kind in ["sqlite", "postgresql"]:
        if args.only in (None, kind):
            run(kind, args)


if __name__ == "__main__":
    main()
