"""What a row per destination costs every claim, and the destinations list: a figure, not a test.

``uv run python benchmarks/destination_rows.py [--destinations 0,10000,100000] [--claims 50] [--lists 20] [--only ...]``

The ``destinations`` table keeps a row for every destination that ever counted an outcome: one per customer's
endpoint when a trigger's URL is templated. Every claim reads the few restricted ones (an open breaker, limits, a
ramp, a ``Retry-After``): its plan locks them, and a claim that skips the plan leaves them out of its lease.

For each database and each ``--destinations`` count: a fresh database is migrated, two http triggers are declared,
that many closed destinations are inserted, and an operator forces one destination open. Each of ``--claims`` claims
(the worker's job, a batch of 50, planning first) then finds nothing to lease: its time is what a worker pays per
poll. It is measured twice in the same database: with ``ix_destinations_restricted`` (migration 0016), and with that
index dropped, as before it. Printed: ms per claim (median and range) each way, and each median over the median with
no other destination, with the index, in the same run.

The list (``GET /api/v1/destinations``'s read job, ``--lists`` times, with the index): its first page, and a page
from the middle of the closed destinations (the cursor a walk of the list would hand back there), each against every
destination read and built, as the list was answered before it paged (3 times), in the same database.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from benchkit import fresh_url, timed_claims
from claim_setup import HELD, database_options, databases, held_and_healthy
from sqlalchemy import Connection, Engine, select, text

from redrive.db.engine import make_engine
from redrive.db.migrate import upgrade
from redrive.db.schema import destinations as destinations_table
from redrive.destinations.paging import CLOSED_RANK, PageQuery, Position
from redrive.destinations.store import describe, force_job, load
from redrive.destinations.views import list_destinations
from redrive.queue import statements as queue
from redrive.triggers.runtime import TriggerSet

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def seed(engine: Engine, destinations: int) -> TriggerSet:
    """The triggers, ``destinations`` closed destinations, and the held one forced open; the trigger set."""
    triggers = held_and_healthy(engine, T0)
    with engine.begin() as connection:
        if destinations:
            connection.execute(
                text(
                    "INSERT INTO destinations (name, state, restricted, changed_at, window_start, updated_at) "
                    "VALUES (:name, 'closed', false, :at, :at, :at)"
                ),
                [{"name": f"https://customer-{n}.example:443", "at": T0} for n in range(destinations)],
            )
        force_job(HELD, "open", "bench", T0)(connection)
    if engine.dialect.name == "postgresql":  # as autovacuum would after that many new rows
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE destinations"))
    return triggers


def measure(engine: Engine, triggers: TriggerSet, claims: int) -> list[float]:
    job = queue.claim(triggers.ids, 50, 30, T0, policy_of=triggers.policies.of)
    with engine.connect() as connection:
        timed_claims(connection, job, 5, "nothing is queued")  # warm-up
        return timed_claims(connection, job, claims, "nothing is queued")


def timed(engine: Engine, read: Callable[[Connection], object], times: int) -> list[float]:
    """ms per ``read``, each on a connection of its own, as the API's read jobs run."""
    spent: list[float] = []
    for _ in range(times):
        with engine.connect() as connection:
            started = time.perf_counter()
            read(connection)
            spent.append((time.perf_counter() - started) * 1000)
            connection.rollback()
    return spent


def every_destination(connection: Connection) -> list[dict[str, Any]]:
    """Every destination read and built, as the list was answered before it paged (its queue counts left out)."""
    return [describe(load(row), T0) for row in connection.execute(select(destinations_table))]


def lists(engine: Engine, triggers: TriggerSet, destinations: int, times: int) -> dict[str, list[float]]:
    """ms per read: the list's first page, a page from the middle of the closed rank, and every destination."""
    middle = Position(CLOSED_RANK, f"https://customer-{destinations // 2}.example:443")
    return {
        "first page": timed(engine, list_destinations(T0, PageQuery()), times),
        "middle page": timed(engine, list_destinations(T0, PageQuery(after=middle)), times),
        "every destination": timed(engine, every_destination, 3),
    }


def run(
    kind: str, destinations: int, args: argparse.Namespace
) -> tuple[list[float], list[float], dict[str, list[float]]]:
    """ms per claim with the index, then with it dropped; ms per read of the list, with the index."""
    with tempfile.TemporaryDirectory() as folder, fresh_url(kind, args.pg, "redrive_destrows", folder) as url:
        upgrade(url)
        engine = make_engine(url, writer=True)
        triggers = seed(engine, destinations)
        indexed = measure(engine, triggers, args.claims)
        listed = lists(engine, triggers, destinations, args.lists)
        with engine.begin() as connection:
            connection.execute(text("DROP INDEX ix_destinations_restricted"))
        unindexed = measure(engine, triggers, args.claims)
        engine.dispose()
    return indexed, unindexed, listed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--destinations", default="0,10000,100000", help="destination rows, comma-separated")
    parser.add_argument("--claims", type=int, default=50)
    parser.add_argument("--lists", type=int, default=20, help="reads of each page of the list")
    database_options(parser)
    args = parser.parse_args()
    counts = [int(n) for n in args.destinations.split(",")]
    for kind in databases(args):
        baseline = None
        for count in counts:
            indexed, unindexed, listed = run(kind, count, args)
            with_index, without = statistics.median(indexed), statistics.median(unindexed)
            baseline = baseline if baseline is not None else with_index
            print(
                f"{kind:10} destinations={count:>7}: with the index {with_index:.2f} ms "
                f"({min(indexed):.2f}-{max(indexed):.2f}), x{with_index / baseline:.1f}; without it {without:.2f} ms "
                f"({min(unindexed):.2f}-{max(unindexed):.2f}), x{without / baseline:.1f}  (of destinations={counts[0]} "
                "with the index)",
                flush=True,
            )
            whole = statistics.median(listed["every destination"])
            pages = ", ".join(
                f"{what} {median:.2f} ms ({min(ms):.2f}-{max(ms):.2f}), x{median / whole:.3f}"
                for what, ms in listed.items()
                if what != "every destination" and (median := statistics.median(ms))
            )
            print(f"{'':10} the list: {pages}  (of every destination built: {whole:.1f} ms)", flush=True)


if __name__ == "__main__":
    main()
