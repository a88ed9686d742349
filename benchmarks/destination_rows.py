"""What a row per destination costs every claim: a figure, not a test.

``uv run python benchmarks/destination_rows.py [--destinations 0,10000,100000] [--claims 50] [--only ...]``

The ``destinations`` table keeps a row for every destination that ever counted an outcome: one per customer's
endpoint when a trigger's URL is templated. Every claim reads the few restricted ones (an open breaker, limits, a
ramp, a ``Retry-After``): its plan locks them, and a claim that skips the plan leaves them out of its lease.

For each database and each ``--destinations`` count: a fresh database is migrated, two http triggers are declared,
that many closed destinations are inserted, and an operator forces one destination open. Each of ``--claims`` claims
(the worker's job, a batch of 50, planning first) then finds nothing to lease: its time is what a worker pays per
poll. It is measured twice in the same database: with ``ix_destinations_restricted`` (migration 0016), and with that
index dropped, as before it. Printed: ms per claim (median and range) each way, and each median over the median with
no other destination, with the index, in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from datetime import UTC, datetime

from benchkit import fresh_url, timed_claims
from claim_setup import HELD, database_options, databases, held_and_healthy
from sqlalchemy import Engine, text

from redrive.db.engine import make_engine
from redrive.db.migrate import upgrade
from redrive.destinations.store import force_job
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


def run(kind: str, destinations: int, args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """ms per claim with the index, then with it dropped."""
    with tempfile.TemporaryDirectory() as folder, fresh_url(kind, args.pg, "redrive_destrows", folder) as url:
        upgrade(url)
        engine = make_engine(url, writer=True)
        triggers = seed(engine, destinations)
        indexed = measure(engine, triggers, args.claims)
        with engine.begin() as connection:
            connection.execute(text("DROP INDEX ix_destinations_restricted"))
        unindexed = measure(engine, triggers, args.claims)
        engine.dispose()
    return indexed, unindexed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--destinations", default="0,10000,100000", help="destination rows, comma-separated")
    parser.add_argument("--claims", type=int, default=50)
    database_options(parser)
    args = parser.parse_args()
    counts = [int(n) for n in args.destinations.split(",")]
    for kind in databases(args):
        baseline = None
        for count in counts:
            indexed, unindexed = run(kind, count, args)
            with_index, without = statistics.median(indexed), statistics.median(unindexed)
            baseline = baseline if baseline is not None else with_index
            print(
                f"{kind:10} destinations={count:>7}: with the index {with_index:.2f} ms "
                f"({min(indexed):.2f}-{max(indexed):.2f}), x{with_index / baseline:.1f}; without it {without:.2f} ms "
                f"({min(unindexed):.2f}-{max(unindexed):.2f}), x{without / baseline:.1f}  (of destinations={counts[0]} "
                "with the index)",
                flush=True,
            )


if __name__ == "__main__":
    main()
