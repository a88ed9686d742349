"""``GET /api/v1/stream`` (viewer): server-sent events of execution state changes, warnings, alert transitions
and stats ticks.

A client that reconnects with ``Last-Event-ID`` gets the events it missed from this node's backlog (fed from every
node through NOTIFY on PostgreSQL), or one ``reset`` event when its id is older than the backlog. ``stats`` ticks
carry no id, so they never move the client's resume point.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from redrive.api.auth import AUTH_RESPONSES, ViewerDep
from redrive.api.deps import StateDep
from redrive.api.state import ServiceState
from redrive.errors import Starting
from redrive.observe.stream import StreamEvent, StreamHub
from redrive.observe.system import queue_snapshot

router = APIRouter(prefix="/api/v1", tags=["stream"])


def _frame(kind: str, data: object) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (kind.encode(), orjson.dumps(data))


async def _stats(state: ServiceState) -> bytes:
    snapshot = await state.db.read(queue_snapshot(state.now()))
    return _frame("stats", dataclasses.asdict(snapshot))


async def _events(state: ServiceState, hub: StreamHub, last_event_id: str | None, tick: float) -> AsyncIterator[bytes]:
    queue = hub.subscribe()  # before reading the backlog, so nothing falls between the two
    try:
        resent: set[str] = set()
        if last_event_id:
            missed = hub.since(last_event_id)
            if missed is None:
                yield _frame("reset", {"reason": "the events after Last-Event-ID are no longer kept; reload"})
            else:
                for event in missed:
                    resent.add(event.id)
                    yield event.encode()
        yield await _stats(state)
        while True:
            try:
                item: StreamEvent | None = await asyncio.wait_for(queue.get(), tick)
            except TimeoutError:
                yield await _stats(state)
                continue
            if item is None:
                return  # this node is stopping, or the client fell too far behind: it reconnects and resumes
            if item.id not in resent:
                yield item.encode()
    finally:
        hub.unsubscribe(queue)


@router.get("/stream", responses={**AUTH_RESPONSES, 200: {"content": {"text/event-stream": {}}}})
async def stream(
    state: StateDep,
    caller: ViewerDep,
    last_event_id: Annotated[str | None, Header(description="Resume after this event id.")] = None,
    tick: Annotated[float, Query(ge=0.2, le=60, description="Seconds between stats events.")] = 5.0,
) -> StreamingResponse:
    """Execution changes, warnings and stats ticks as server-sent events."""
    if state.node is None:
        raise Starting("the service is starting")
    return StreamingResponse(
        _events(state, state.node.stream, last_event_id, tick),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
