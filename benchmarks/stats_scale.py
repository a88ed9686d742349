"""Every stats and dashboard endpoint over a big history: a figure, not a test.

``uv run python benchmarks/stats_scale.py [--rows 10000000] [--calls 200] [--only sqlite|postgresql] [--pg DSN]
[--sqlite-file PATH] [--pg-database NAME] [--load-only]``

For each database: a fresh one (an SQLite file in a temporary folder; a new PostgreSQL database on ``--pg``) is
migrated, then loaded the way databases like a bulk load (indexes dropped, one ``INSERT ... SELECT`` per table from
``generate_series`` or a recursive CTE, indexes rebuilt): ``--rows`` executions of eight triggers spread evenly over
30 days, each with its event and one attempt (every fifth a second one, a retry), a tenth of them failing with one
of 20 error groups, the newest few still pending. The rollups are then built by the backfill, as after migration
0009, and trimmed as the leader's retention pass would have done long before (``observe.rollup_retention``: the
fine buckets older than a week and a day go), so the timing sees a steady state rather than the first pass.
``redrive up`` (no worker, retention kept out of the way) serves it, and each endpoint below, as the API and
the dashboard call it, is timed over ``--calls`` sequential requests on one keep-alive connection after a warm-up:
p50 and p99 in milliseconds, printed as a Markdown table.

Loading 10,000,000 rows takes tens of minutes, so ``--sqlite-file`` and ``--pg-database`` name a database that is
kept: the first run loads it (and ``--load-only`` stops there), later runs migrate it to the code's head and time it
as it is. Its history ends when it was loaded: the newest hours of a kept database are empty, the 30 days are not.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx2
import psycopg
from benchkit import Procs, free_port, fresh_database, wait_healthy
from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

from redrive.db.engine import make_engine
from redrive.db.migrate import upgrade
from redrive.db.schema import attempts, events, executions
from redrive.observe import backfill, rollup_retention, rollups
from redrive.tokens import create_token
from redrive.triggers.config import parse_config
from redrive.triggers.runtime import sync_triggers

REDRIVE = [sys.executable, "-c", "from redrive.cli import main; main()"]
TRIGGERS = 8
GROUPS = 20
SPAN = timedelta(days=30)
CONFIG = "triggers:\n" + "".join(
    f"  - name: t{n}\n    action: {{kind: command, argv: ['true']}}\n"
    "    retention: {succeeded: 60d, dead_letter: 60d, keys: 60d}\n"
    for n in range(TRIGGERS)
)
ENDPOINTS = [
    ("/api/v1/me", {}),  # the floor: authentication and the HTTP stack, no figure
    ("/api/v1/stats", {}),  # the dashboard's overview, every few seconds
    ("/api/v1/stats", {"days": 7}),
    ("/api/v1/stats", {"days": 30}),
    ("/api/v1/executions/stats", {"since": "1h"}),
    ("/api/v1/executions/stats", {"since": "7d", "success": "false"}),
    ("/api/v1/stats/timeseries", {"since": "24h", "bucket": "1h"}),  # the overview's chart
    ("/api/v1/stats/timeseries", {"since": "24h", "bucket": "5m", "by": "trigger"}),
    ("/api/v1/stats/timeseries", {"since": "7d", "bucket": "1h", "by": "kind"}),
    ("/api/v1/stats/timeseries", {"since": "24h", "bucket": "1h", "fingerprint": "fp3"}),  # a group's trend
    ("/api/v1/error-groups", {"since": "24h", "limit": 5}),  # the overview's top groups
    ("/api/v1/error-groups", {"since": "7d", "limit": 20}),  # the error groups page
    ("/api/v1/error-groups/fp3", {"since": "24h"}),
    ("/api/v1/triggers", {}),  # the triggers page's counters
    ("/api/v1/system", {}),  # the System page: the queue's shape, dead letters, replays
]
# Row i (0 = newest) of the load: trigger i % 8; status by i % 20 (0-16 succeeded, 17 failed_retryable, 18 failed,
# 19 replayed), pending for the newest 50; failed ones carry group 'fp' || i % 20.
STATUS = (
    "CASE WHEN i < 50 THEN 'pending' WHEN i % 20 = 17 THEN 'failed_retryable' WHEN i % 20 = 18 THEN 'failed' "
    "WHEN i % 20 = 19 THEN 'replayed' ELSE 'succeeded' END"
)
FAILED = "(i >= 50 AND i % 20 >= 17)"


def load(engine: Engine, rows: int, base: datetime) -> None:
    """Triggers, then ``rows`` events, executions and their attempts, and the error groups, in bulk."""
    ids = _triggers(engine, base)
    step = SPAN.total_seconds() / rows
    trigger = "CASE i % 8 " + " ".join(f"WHEN {n} THEN {ids[f't{n}']}" for n in range(TRIGGERS)) + " END"
    finished = "CASE WHEN i < 50 THEN NULL ELSE f END"
    fingerprint = f"CASE WHEN {FAILED} THEN 'fp' || (i % {GROUPS}) END"
    statements = [
        "INSERT INTO events (id, trigger_id, body_sha256, headers, payload, filtered, received_at, replay_count) "
        f"SELECT i + 1, {trigger}, 'x', '{{}}', '{{}}', false, f, 0",
        "INSERT INTO executions (id, event_id, trigger_id, action_kind, status, attempts, run_at, created_at, "
        f"updated_at, finished_at, fingerprint) SELECT i + 1, i + 1, {trigger}, 'command', {STATUS}, 1, f, f, f, "
        f"{finished}, {fingerprint}",
        "INSERT INTO attempts (execution_id, number, started_at, finished_at, duration_ms, outcome, detail, "
        f"fingerprint) SELECT i + 1, 1, f, f, 1.0, CASE WHEN {FAILED} OR i % 5 = 0 THEN 'transient' ELSE "
        f"'succeeded' END, '{{}}', CASE WHEN {FAILED} OR i % 5 = 0 THEN 'fp' || (i % {GROUPS}) END FROM n "
        "WHERE i >= 50",
        "INSERT INTO attempts (execution_id, number, started_at, finished_at, duration_ms, outcome, detail, "
        f"fingerprint) SELECT i + 1, 2, f, f, 1.0, CASE WHEN {FAILED} THEN 'transient' ELSE 'succeeded' END, "
        f"'{{}}', CASE WHEN {FAILED} THEN 'fp' || (i % {GROUPS}) END FROM n WHERE i >= 50 AND i % 5 = 0",
    ]
    with engine.begin() as connection:
        for table in (events, executions, attempts):
            for index in table.indexes:
                index.drop(connection)
        if engine.dialect.name == "postgresql":
            connection.execute(text("SET LOCAL session_replication_role = replica"))  # no per-row FK triggers
            connection.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
            source = (
                "(SELECT i, CAST(:base AS timestamptz) - i * make_interval(secs => :step) AS f "
                "FROM generate_series(0, :last) AS i) AS n"
            )
            for statement in statements:
                head, _, tail = statement.partition(" FROM n")
                connection.execute(text(f"{head} FROM {source}{tail}"), {"base": base, "step": step, "last": rows - 1})
            for table in ("events", "executions", "attempts"):
                connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), :n)"), {"n": rows * 2})
        else:
            stamp = base.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
            source = (
                "WITH RECURSIVE n(i, f) AS (SELECT 0, :base UNION ALL SELECT i + 1, "
                "strftime('%Y-%m-%d %H:%M:%f', :base, '-' || ((i + 1) * :step) || ' seconds') || '000' "
                "FROM n WHERE i < :last) "
            )
            for statement in statements:
                head, _, tail = statement.partition(" FROM n")
                connection.execute(
                    text(f"{source}{head} FROM n{tail}"), {"base": stamp, "step": step, "last": rows - 1}
                )
        for table in (events, executions, attempts):
            for index in table.indexes:
                index.create(connection)
        connection.execute(
            text(
                "INSERT INTO error_groups (fingerprint, trigger_id, action_kind, code, category, title, status, total, "
                "first_seen, last_seen) VALUES (:fp, :trigger, 'command', 'exit_1', 'transient', 'boom', 'open', 1, "
                ":first, :last)"
            ),
            [
                {"fp": f"fp{n}", "trigger": ids[f"t{n % TRIGGERS}"], "first": base - SPAN, "last": base}
                for n in range(GROUPS)
            ],
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))


def _triggers(engine: Engine, now: datetime) -> dict[str, int]:
    with engine.begin() as connection:
        return sync_triggers(connection, parse_config(CONFIG), now)


def _token(engine: Engine) -> str:
    """A viewer token of its own for this run (a kept database holds the earlier runs')."""
    with engine.begin() as connection:
        return create_token(f"bench-{os.getpid()}-{time.time_ns()}", "viewer", datetime.now(UTC), actor="bench")(
            connection
        )


def time_endpoints(url: str, token: str, calls: int) -> dict[str, tuple[float, float]]:
    """p50 and p99 (ms) of each endpoint over ``calls`` sequential requests on one connection."""
    figures: dict[str, tuple[float, float]] = {}
    with httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        for path, params in ENDPOINTS:
            for _ in range(5):
                client.get(path, params=params).raise_for_status()
            took = []
            for _ in range(calls):
                started = time.perf_counter()
                client.get(path, params=params).raise_for_status()
                took.append((time.perf_counter() - started) * 1000)
            took.sort()
            name = path + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")
            figures[name] = (statistics.median(took), took[min(len(took) - 1, int(len(took) * 0.99))])
    return figures


def _database(kind: str, args: argparse.Namespace, procs: Procs) -> tuple[str, Callable[[], None] | None]:
    """The database's URL, and what drops it after the run (None for a kept one)."""
    if kind == "sqlite":
        return f"sqlite:///{Path(args.sqlite_file).resolve() if args.sqlite_file else procs.workdir / 'stats.db'}", None
    if args.pg_database is None:
        _, dsn, drop = fresh_database(args.pg, "redrive_stats")
        return dsn.replace("postgresql://", "postgresql+psycopg://", 1), drop
    with psycopg.connect(args.pg, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [args.pg_database]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{args.pg_database}"')  # the operator's own name
    dsn = args.pg.rsplit("/", 1)[0] + f"/{args.pg_database}"
    return dsn.replace("postgresql://", "postgresql+psycopg://", 1), None


async def _write(engine: Engine, job: Callable[[Connection], Any]) -> Any:
    with engine.begin() as connection:
        return job(connection)


def _loaded(engine: Engine, rows: int) -> bool:
    """True when a kept database holds the ``rows`` executions and their rollups are built; an empty one is False,
    and one left half-built by an interrupted load is an error (drop it and start again)."""
    with engine.connect() as connection:
        newest = connection.execute(text("SELECT max(id) FROM executions")).scalar_one()
        if newest is None:
            return False
        if newest != rows or not rollups.ready(connection):
            raise SystemExit(f"{engine.url} holds {newest} executions, not {rows:,} with their rollups: drop it first")
    return True


def run(kind: str, args: argparse.Namespace, procs: Procs) -> dict[str, tuple[float, float]] | None:
    """Load and backfill one database (unless kept and loaded already), then serve and time it."""
    url, drop = _database(kind, args, procs)
    try:
        upgrade(url)
        engine = make_engine(url, writer=True)
        if _loaded(engine, args.rows):
            print(f"{kind}: {args.rows:,} executions kept in {engine.url.database}", flush=True)
        else:
            started = time.perf_counter()
            load(engine, args.rows, datetime.now(UTC))
            loaded = time.perf_counter() - started
            backfill.recount(engine, limit=50_000)
            counted = time.perf_counter() - started - loaded
            print(
                f"{kind}: loaded {args.rows:,} executions in {loaded:.0f} s, rollups built in {counted:.0f} s",
                flush=True,
            )
        started = time.perf_counter()
        jobs = asyncio.run(rollup_retention.trim(partial(_write, engine), datetime.now(UTC)))
        print(f"{kind}: rollups trimmed ({jobs} jobs) in {time.perf_counter() - started:.0f} s", flush=True)
        if args.load_only:
            engine.dispose()
            return None
        token = _token(engine)
        engine.dispose()
        config = procs.workdir / "redrive.yaml"
        config.write_text(CONFIG)
        port = free_port()
        env = {
            **os.environ,
            "REDRIVE_DATABASE_URL": url,
            "REDRIVE_WORKER_CONCURRENCY": "0",
            "REDRIVE_LOG_LEVEL": "warning",
        }
        argv = [*REDRIVE, "up", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
        proc = procs.start(f"redrive-{kind}", argv, env)
        try:
            wait_healthy(proc, f"http://127.0.0.1:{port}/healthz", procs.workdir / f"redrive-{kind}.log", timeout=120)
            return time_endpoints(f"http://127.0.0.1:{port}", token, args.calls)
        finally:
            procs.stop(proc)
    finally:
        if drop is not None:
            drop()


def table(results: dict[str, dict[str, tuple[float, float]]], rows: int) -> str:
    """The Markdown table of every endpoint's p50/p99 per database."""
    kinds = list(results)
    lines = [
        f"| endpoint ({rows:,} executions) | " + " | ".join(f"{k} p50 / p99 (ms)" for k in kinds) + " |",
        "| --- | " + " | ".join("---" for _ in kinds) + " |",
    ]
    for name in next(iter(results.values())):
        cells = [f"{results[k][name][0]:.1f} / {results[k][name][1]:.1f}" for k in kinds]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="executions to load")
    parser.add_argument("--calls", type=int, default=200, help="timed requests per endpoint")
    parser.add_argument("--only", choices=["sqlite", "postgresql"], help="one database only")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres", help="PostgreSQL admin DSN")
    parser.add_argument("--sqlite-file", help="an SQLite file to keep: loaded when empty, reused after")
    parser.add_argument("--pg-database", help="a PostgreSQL database (on --pg's server) to keep: loaded when empty")
    parser.add_argument("--load-only", action="store_true", help="load (kept) databases, time nothing")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="redrive-stats-") as folder:
        procs = Procs(Path(folder))
        try:
            for kind in [args.only] if args.only else ["sqlite", "postgresql"]:
                figures = run(kind, args, procs)
                if figures is not None:
                    results[kind] = figures
        finally:
            procs.stop_all()
    if results:
        print(table(results, args.rows))


if __name__ == "__main__":
    main()
