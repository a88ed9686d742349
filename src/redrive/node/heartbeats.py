"""Node heartbeats: every redrive process has a row in ``nodes`` that it refreshes every beat.

A node that missed three beats is dead: the maintenance leader marks it so and returns its leases to the queue
(a worker's lease tokens start with its node id). Deciding who is dead is pure (``dead_since``); the rest are
writer jobs.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from redrive import __version__
from redrive.db.engine import dialect_insert
from redrive.db.schema import executions, nodes
from redrive.queue.statements import back_to_pending

MISSED_BEATS = 3
FORGET_AFTER = timedelta(days=1)  # a dead node's row is shown this long, then removed


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """Who this process is."""

    id: str
    role: str
    host: str
    pid: int
    started_at: datetime


def new_node_id() -> str:
    """A fresh node id: 12 hex characters, the prefix of the node's lease tokens."""
    return uuid.uuid4().hex[:12]


def this_node(role: str, started_at: datetime, node_id: str | None = None) -> NodeInfo:
    """This process's identity: ``node_id`` when its supervisor chose one, else a fresh one."""
    return NodeInfo(node_id or new_node_id(), role, socket.gethostname()[:255], os.getpid(), started_at)


def dead_since(now: datetime, interval: float) -> datetime:
    """Nodes whose last beat is older than this are dead."""
    return now - timedelta(seconds=interval * MISSED_BEATS)


def beat(
    node: NodeInfo, in_flight: int, now: datetime, *, leader: bool = False, rss_bytes: int | None = None
) -> Callable[[Connection], None]:
    """Insert or refresh this node's row (a node wrongly declared dead comes back alive)."""

    def job(connection: Connection) -> None:
        insert = dialect_insert(connection)(nodes).values(
            id=node.id,
            role=node.role,
            host=node.host,
            pid=node.pid,
            version=__version__,
            started_at=node.started_at,
            last_beat_at=now,
            in_flight=in_flight,
            leader=leader,
            rss_bytes=rss_bytes,
        )
        fresh = {"last_beat_at": now, "in_flight": in_flight, "dead_at": None, "leader": leader, "rss_bytes": rss_bytes}
        connection.execute(insert.on_conflict_do_update(index_elements=["id"], set_=fresh))

    return job


def leave(node_id: str) -> Callable[[Connection], None]:
    """Remove this node's row on a graceful stop."""

    def job(connection: Connection) -> None:
        connection.execute(delete(nodes).where(nodes.c.id == node_id))

    return job


@dataclass(frozen=True, slots=True)
class Reaped:
    """Nodes found dead by one pass, each with the executions returned to the queue from its leases."""

    swept: dict[str, list[int]]

    @property
    def executions(self) -> list[int]:
        """Every execution returned to the queue, whichever node held it."""
        return [execution_id for ids in self.swept.values() for execution_id in ids]


def reap(now: datetime, interval: float) -> Callable[[Connection], Reaped]:
    """Mark nodes that missed their beats dead, return their leases to pending (uncharged), forget old dead rows."""

    def job(connection: Connection) -> Reaped:
        dead = list(
            connection.execute(
                update(nodes)
                .where(nodes.c.dead_at.is_(None), nodes.c.last_beat_at < dead_since(now, interval))
                .values(dead_at=now)
                .returning(nodes.c.id)
            ).scalars()
        )
        swept = {node_id: _return_leases(connection, node_id, now) for node_id in dead}
        connection.execute(delete(nodes).where(nodes.c.dead_at < now - FORGET_AFTER))
        return Reaped(swept)

    return job


def bury(node_id: str, now: datetime) -> Callable[[Connection], list[int]]:
    """Mark a node dead whose process is known to have exited (its supervisor saw it) and return its leases to
    pending at once, uncharged, without waiting for its beats to be missed; the executions returned."""

    def job(connection: Connection) -> list[int]:
        connection.execute(update(nodes).where(nodes.c.id == node_id, nodes.c.dead_at.is_(None)).values(dead_at=now))
        return _return_leases(connection, node_id, now)

    return job


def _return_leases(connection: Connection, node_id: str, now: datetime) -> list[int]:
    expired = back_to_pending(now, executions.c.lease_token.startswith(node_id, autoescape=True))
    return list(connection.execute(expired).scalars())


def list_nodes(now: datetime, interval: float) -> Callable[[Connection], list[dict[str, Any]]]:
    """Every known node, alive or dead, newest first."""

    def job(connection: Connection) -> list[dict[str, Any]]:
        rows = connection.execute(select(nodes).order_by(nodes.c.started_at.desc())).mappings()
        limit = dead_since(now, interval)
        return [
            {
                "id": row["id"],
                "role": row["role"],
                "host": row["host"],
                "pid": row["pid"],
                "version": row["version"],
                "started_at": row["started_at"],
                "last_beat_at": row["last_beat_at"],
                "in_flight": row["in_flight"],
                "leader": row["leader"],
                "rss_bytes": row["rss_bytes"],
                "alive": row["dead_at"] is None and row["last_beat_at"] >= limit,
            }
            for row in rows
        ]

    return job
