"""``/api/v1/destinations``: each destination's breaker, limits, held and running work; an operator forces a
breaker open (maintenance) or closed, or resets it. Names hold ``/`` (``https://host:443``): send them as they are
or percent-encoded."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Query

from redrive.api.auth import AUTH_RESPONSES, OperatorDep, ViewerDep
from redrive.api.deps import StateDep
from redrive.destinations.paging import CURSOR_MAX_LENGTH, PageQuery, Position, decode
from redrive.destinations.report import report
from redrive.destinations.store import force_job
from redrive.destinations.views import get_destination, list_destinations
from redrive.errors import InvalidRequest, UnknownDestination
from redrive.states import BreakerState

log = structlog.get_logger("redrive.destinations")
router = APIRouter(prefix="/api/v1/destinations", tags=["destinations"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "unknown_destination: no destination has that name (none declared, none seen)."}
}
RESPONSES = {**AUTH_RESPONSES, **NOT_FOUND}
LIST_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    422: {"description": "invalid_request: `limit`, `state` or `cursor` (not a `next_cursor` of this list)."},
}
PageCursor = Annotated[
    str | None, Query(max_length=CURSOR_MAX_LENGTH, description="`next_cursor` from the previous page (opaque).")
]
StateFilter = Annotated[
    BreakerState | None, Query(alias="state", description="Only the destinations in this breaker state.")
]


def _after(cursor: str | None) -> Position | None:
    """Where the page starts, or a 422 ``invalid_request`` naming the parameter, as a validation error does."""
    if cursor is None:
        return None
    try:
        return decode(cursor)
    except ValueError as exc:
        raise InvalidRequest(
            "query.cursor: not a next_cursor of GET /api/v1/destinations; leave it out for the first page"
        ) from exc


@router.get("", responses=LIST_RESPONSES)
async def destinations_list(
    state: StateDep,
    caller: ViewerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: PageCursor = None,
    breaker: StateFilter = None,
) -> dict[str, Any]:
    """Destinations declared in the trigger file or seen since, a page at a time: open (or forced open) first,
    then half-open, forced closed, closed, by name within each; pass ``next_cursor`` back as ``cursor`` for the next
    page (null: the last). ``summary`` counts every destination by state, whatever ``state`` keeps (``forced``:
    the overrides of either kind, counted in their state too); it is the current state, counted over the table in
    one statement, not a figure of history."""
    query = PageQuery(limit, _after(cursor), breaker)
    result: dict[str, Any] = await state.db.read(list_destinations(state.now(), query))
    return result


@router.get("/{name:path}/transitions", responses=RESPONSES)
async def destination_transitions(name: str, state: StateDep, caller: ViewerDep) -> dict[str, Any]:
    """The destination's latest breaker transitions, newest first."""
    return {"items": (await destination_show(name, state, caller))["transitions"]}


@router.get("/{name:path}", responses=RESPONSES)
async def destination_show(name: str, state: StateDep, caller: ViewerDep) -> dict[str, Any]:
    """One destination with its latest transitions."""
    found = await state.db.read(get_destination(name, state.now()))
    if found is None:
        raise UnknownDestination(f"no destination is called {name!r}; see GET /api/v1/destinations")
    return found


async def _force(state: StateDep, caller: OperatorDep, name: str, action: Literal["open", "close", "reset"]) -> Any:
    await destination_show(name, state, caller)  # a 404 for a name nobody declared or reached
    _, transition = await state.db.write(force_job(name, action, caller.name, state.now()))
    report([transition], metrics=state.metrics, stream=state.stream, lifecycle=state.lifecycle)
    state.wakeup.work_due()  # held work may go now
    return await destination_show(name, state, caller)


@router.post("/{name:path}/open", responses=RESPONSES)
async def destination_open(name: str, state: StateDep, caller: OperatorDep) -> dict[str, Any]:
    """Force the breaker open (maintenance): everything due for it is held, spending no attempt, until reset."""
    result: dict[str, Any] = await _force(state, caller, name, "open")
    return result


@router.post("/{name:path}/close", responses=RESPONSES)
async def destination_close(name: str, state: StateDep, caller: OperatorDep) -> dict[str, Any]:
    """Force the breaker closed: everything goes (limits still apply) and it does not open again until reset."""
    result: dict[str, Any] = await _force(state, caller, name, "close")
    return result


@router.post("/{name:path}/reset", responses=RESPONSES)
async def destination_reset(name: str, state: StateDep, caller: OperatorDep) -> dict[str, Any]:
    """Clear any override and the counters: the breaker is closed (the held work drains ramped) and decides again."""
    result: dict[str, Any] = await _force(state, caller, name, "reset")
    return result
