"""What an operator asks of a running cluster: the queue's shape, this process's resources, the database's size."""

from __future__ import annotations

import platform
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psutil
import sqlalchemy
from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from redrive import __version__
from redrive.db.schema import executions, stat_rollups
from redrive.observe import rollup_reads as reads
from redrive.observe import rollups
from redrive.observe.metrics import QueueSnapshot
from redrive.queue import parking
from redrive.states import ExecutionStatus


def queue_snapshot(now: datetime) -> Callable[[Connection], QueueSnapshot]:
    """Counts from the status indexes (the queue: pending, due, running, expiries) and the rollups (dead letters and
    replays, which grow with history)."""

    def job(connection: Connection) -> QueueSnapshot:
        def count(*where: Any) -> int:
            return int(connection.execute(select(func.count()).select_from(executions).where(*where)).scalar_one())

        pending = executions.c.status == ExecutionStatus.PENDING
        running = executions.c.status == ExecutionStatus.RUNNING
        oldest = connection.execute(parking.oldest_due(now)).scalar_one_or_none()
        return QueueSnapshot(
            pending=count(pending),
            due=count(pending, parking.EITHER, executions.c.run_at <= now),  # parked rows count as due
            running=count(running),
            oldest_due_age_seconds=max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0,
            **(
                _dead(connection)
                if rollups.ready(connection)
                else {
                    "dlq": count(executions.c.status == ExecutionStatus.FAILED_RETRYABLE),
                    "replayed": count(executions.c.status == ExecutionStatus.REPLAYED),
                }
            ),
            expired_leases=count(and_(running, executions.c.lease_expires_at < now)),
        )

    return job


def _dead(connection: Connection) -> dict[str, int]:
    """Dead letters and replayed executions from the rollups: they pile up with history, unlike the queue's rows."""
    dlq = reads.total_of(connection, "failing", reads.ALL, stat_rollups.c.status == ExecutionStatus.FAILED_RETRYABLE)
    every_day = reads.since_day(reads.at(0))
    replayed = reads.total_of(connection, "created", every_day, stat_rollups.c.status == ExecutionStatus.REPLAYED)
    return {"dlq": dlq, "replayed": replayed}


def database_size(connection: Connection) -> int | None:
    """The database's size in bytes (PostgreSQL: pg_database_size; SQLite: pages times page size)."""
    if connection.dialect.name == "postgresql":
        return int(connection.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one())
    pages = connection.exec_driver_sql("PRAGMA page_count").scalar_one()
    size = connection.exec_driver_sql("PRAGMA page_size").scalar_one()
    return int(pages) * int(size)


def process_resources() -> dict[str, Any]:
    """This process's memory and CPU (psutil)."""
    process = psutil.Process()
    with process.oneshot():
        times = process.cpu_times()
        return {
            "pid": process.pid,
            "rss_bytes": process.memory_info().rss,
            "cpu_seconds": round(times.user + times.system, 3),
            "cpu_percent": process.cpu_percent(interval=None),
            "threads": process.num_threads(),
        }


def resident_bytes() -> int:
    """This process's resident memory (one read of /proc on Linux: cheap enough for every heartbeat)."""
    return int(psutil.Process().memory_info().rss)


def versions(dialect: str, server_version: str | None) -> dict[str, str | None]:
    """Versions that matter when reporting a problem."""
    return {
        "redrive": __version__,
        "python": platform.python_version(),
        "sqlalchemy": sqlalchemy.__version__,
        "database": dialect,
        "database_server": server_version,
    }


def server_version(connection: Connection) -> str | None:
    """The database server's version string."""
    info = connection.dialect.server_version_info
    return ".".join(str(part) for part in info) if info else None
