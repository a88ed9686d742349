"""What a destination's held backlog costs every other claim: a figure, not a test.

``uv run python benchmarks/held_backlog.py [--held 0,2000,20000] [--claims 50] [--history 0] [--only ...]``

For each database and each ``--held`` count: a fresh database is migrated, two http triggers are declared (one per
destination), ``--history`` delivered executions of the second are stored (a table with history behind its queue),
``--held`` events for the first destination are stored through the ingest's own writer job, and an
operator forces that destination's breaker open, as a maintenance window would. Each of ``--claims`` claims (the
worker's job, with the trigger set's policies, a batch of 50) then finds nothing it may lease: its time is what a
worker pays per poll, for every other destination, while the outage's backlog waits. Printed per database and count:
the first claim's ms (it finds the backlog and lanes it, ``redrive.destinations.store.lane``), then ms per claim
(median and range) and the median over the median with nothing held, measured in the same run.

Issue 12's promise is that a failing destination does not clog the others; this measures the part of it that the
slot-based isolation test does not: the claim's walk over the rows it must skip.
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
from redrive.ingest.prepare import prepare
from redrive.ingest.store import store_events
from redrive.observe.redaction import Redactor
from redrive.queue import statements as queue
from redrive.triggers.runtime import TriggerSet

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BATCH = 500


def seed(engine: Engine, held: int, history: int = 0) -> TriggerSet:
    """Store ``history`` events for the healthy destination, delivered already, then ``held`` events for the held
    destination, and force its breaker open; the trigger set."""
    triggers = held_and_healthy(engine, T0)
    store(engine, triggers, "healthy", history)
    healthy = triggers.by_name("healthy")
    assert healthy is not None
    with engine.begin() as connection:
        done = "UPDATE executions SET status = 'succeeded', finished_at = run_at WHERE trigger_id = :t"
        connection.execute(text(done), {"t": healthy.id})
    store(engine, triggers, "held", held)
    with engine.begin() as connection:
        force_job(HELD, "open", "bench", T0)(connection)
    analyse(engine)
    return triggers


def store(engine: Engine, triggers: TriggerSet, name: str, count: int) -> None:
    """Store ``count`` events of the trigger ``name`` through the ingest's writer job, ``BATCH`` at a time."""
    trigger = triggers.by_name(name)
    assert trigger is not None
    events = [
        prepare(
            trigger.config,
            trigger.id,
            body=b"{}",
            headers={},
            received_at=T0,
            redactor=Redactor(),
            destination=trigger.destination,
        )
        for _ in range(count)
    ]
    for start in range(0, len(events), BATCH):
        with engine.begin() as connection:
            store_events(connection, events[start : start + BATCH])


def analyse(engine: Engine) -> None:
    """On PostgreSQL, what autovacuum does once enough rows changed: vacuum and gather statistics."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE executions"))


def measure(engine: Engine, triggers: TriggerSet, claims: int) -> list[float]:
    job = queue.claim(triggers.ids, 50, 30, T0, policy_of=triggers.policies.of)
    with engine.connect() as connection:
        return timed_claims(connection, job, claims, "the open breaker holds every row")


def run(kind: str, held: int, args: argparse.Namespace) -> tuple[float, float, float, float, float]:
    """The first claim's ms (it lanes the backlog); the median ms of the claims after it while PostgreSQL's
    statistics still predate the laning; and the median, min and max ms once they are gathered again, as autovacuum
    does after that many changed rows (SQLite has no statistics to go stale: the same claims, twice)."""
    with tempfile.TemporaryDirectory() as folder, fresh_url(kind, args.pg, "redrive_held", folder) as url:
        upgrade(url)
        engine = make_engine(url, writer=True)
        triggers = seed(engine, held, args.history)
        [first] = measure(engine, triggers, 1)
        stale = measure(engine, triggers, args.claims)
        analyse(engine)
        measure(engine, triggers, 5)  # warm-up
        times = measure(engine, triggers, args.claims)
        engine.dispose()
    return first, statistics.median(stale), statistics.median(times), min(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held", default="0,2000,20000", help="held backlogs to measure, comma-separated")
    parser.add_argument("--claims", type=int, default=50)
    parser.add_argument("--history", type=int, default=0, help="delivered executions stored before the held ones")
    database_options(parser)
    args = parser.parse_args()
    counts = [int(n) for n in args.held.split(",")]
    for kind in databases(args):
        baseline = None
        for held in counts:
            first, stale, median, low, high = run(kind, held, args)
            baseline = baseline if baseline is not None else median
            print(
                f"{kind:10} held={held:>7}: first claim {first:.2f} ms; then median {stale:.2f} ms; analysed, "
                f"median {median:.2f} ms (min {low:.2f}, max {high:.2f}); x{median / baseline:.1f} of held={counts[0]}",
                flush=True,
            )


if __name__ == "__main__":
    main()
