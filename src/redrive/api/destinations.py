"""``/api/v1/destinations``: each destination's breaker, limits, held and running work; an operator forces a
breaker open (maintenance) or closed, or resets it. Names hold ``/`` (``https://host:443``): send them as they are
or percent-encoded."""

from __future__ import annotations

from typing import Any, Literal

import structlog
from fastapi import APIRouter

from redrive.api.auth import AUTH_RESPONSES, OperatorDep, ViewerDep
from redrive.api.deps import StateDep
from redrive.destinations.report import report
from redrive.destinations.store import force_job
from redrive.destinations.views import get_destination, list_destinations
from redrive.errors import UnknownDestination

log = structlog.get_logger("redrive.destinations")
router = APIRouter(prefix="/api/v1/destinations", tags=["destinations"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "unknown_destination: no destination has that name (none declared, none seen)."}
}
RESPONSES = {**AUTH_RESPONSES, **NOT_FOUND}


@router.get("", responses=AUTH_RESPONSES)
async def destinations_list(state: StateDep, caller: ViewerDep) -> dict[str, Any]:
    """Every destination declared in the trigger file or seen since, by name."""
    items = await state.db.read(list_destinations(state.triggers.policies.names, state.now()))
    return {"items": items}


@router.get("/{name:path}/transitions", responses=RESPONSES)
async def destination_transitions(name: str, state: StateDep, caller: ViewerDep) -> dict[str, Any]:
    """The destination's latest breaker transitions, newest first."""
    return {"items": (await destination_show(name, state, caller))["transitions"]}


@router.get("/{name:path}", responses=RESPONSES)
async def destination_show(name: str, state: StateDep, caller: ViewerDep) -> dict[str, Any]:
    """One destination with its latest transitions."""
    found = await state.db.read(get_destination(name, name in state.triggers.policies.names, state.now()))
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
