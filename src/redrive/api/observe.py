"""``GET /metrics`` (Prometheus, unauthenticated, per node) and ``GET /api/v1/system`` (viewer): the cluster's
nodes and heartbeats, the queue's shape, this process's resources, the database's size, versions.

``IngestMetrics`` is a plain ASGI middleware (no per-request task or body copy): it times ingest requests and
counts refused deliveries by trigger and status.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from redrive.api.auth import AUTH_RESPONSES, ViewerDep
from redrive.api.deps import StateDep
from redrive.api.state import ServiceState
from redrive.api.stats import WINDOW_RESPONSES, Since, window_start
from redrive.node.heartbeats import list_nodes
from redrive.observe.history import HISTORY_RETENTION, TICK, read_history
from redrive.observe.metrics import UNKNOWN
from redrive.observe.system import database_size, process_resources, queue_snapshot, server_version, versions

router = APIRouter(tags=["observability"])
HOOKS = "/hooks/"


@router.get("/metrics", response_class=Response)
async def metrics(state: StateDep) -> Response:
    """This node's metrics in the Prometheus text format (cluster gauges read from the database)."""
    snapshot = await state.db.read(queue_snapshot(state.now()))
    return Response(state.metrics.render(snapshot), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/system", responses=AUTH_RESPONSES)
async def system(state: StateDep, caller: ViewerDep) -> dict[str, Any]:
    """Nodes with their heartbeats, queue depth and oldest pending age, lease expiries, resources, versions."""
    now = state.now()

    def read(connection: Any) -> tuple[Any, ...]:
        return (
            list_nodes(now, state.settings.heartbeat_interval)(connection),
            queue_snapshot(now)(connection),
            database_size(connection),
            server_version(connection),
        )

    nodes, snapshot, size, server = await state.db.read(read)
    node = state.node
    return {
        "node": {
            "id": node.info.id if node else None,
            "role": node.role if node else None,
            "leader": node.leadership.is_leader if node else False,
            "in_flight": state.worker.in_flight if state.worker else 0,
            "process": await asyncio.to_thread(process_resources),
        },
        "nodes": nodes,
        "queue": {
            "pending": snapshot.pending,
            "depth": snapshot.due,
            "running": snapshot.running,
            "oldest_pending_age_seconds": round(snapshot.oldest_due_age_seconds, 3),
            "dlq_size": snapshot.dlq,
            "expired_leases": snapshot.expired_leases,
        },
        "database": {"size_bytes": size},
        "versions": versions("sqlite" if state.db.is_sqlite else "postgresql", server),
    }


@router.get("/api/v1/system/history", responses=WINDOW_RESPONSES)
async def system_history(state: StateDep, caller: ViewerDep, since: Since = "6h") -> dict[str, Any]:
    """The leader's per-minute samples in the window, oldest first: queue depth (due pending executions), oldest
    pending age, dead-letter size, and the attempts that finished in the minute before each sample with how many
    failed (``failure_rate``: failed / attempts, null when none finished). Kept 7 days."""
    start = window_start(state, since)
    samples = await state.db.read(read_history(start))
    return {
        "since": start.isoformat(),
        "interval_seconds": int(TICK.total_seconds()),
        "kept_days": HISTORY_RETENTION.days,
        "samples": samples,
    }


class IngestMetrics:
    """Times ``POST /hooks/*`` and ``POST /api/v1/events``; counts refused ``/hooks`` deliveries by trigger."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "POST" or not _is_ingest(path):
            await self.app(scope, receive, send)
            return
        status = 500
        started = perf_counter()

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            record_ingest(scope["app"].state.service, path, status, perf_counter() - started)


def record_ingest(state: ServiceState, path: str, status: int, seconds: float) -> None:
    """Time one ingest request; count it by trigger and status if ``/hooks`` refused it."""
    state.metrics.ingest_duration.observe(seconds)
    if status >= 400 and path.startswith(HOOKS):
        name = path[len(HOOKS) :]
        label = name if state.triggers.by_name(name) is not None else UNKNOWN  # bounded label values
        state.metrics.events_rejected.labels(label, str(status)).inc()


def _is_ingest(path: str) -> bool:
    return path.startswith(HOOKS) or path == "/api/v1/events"
