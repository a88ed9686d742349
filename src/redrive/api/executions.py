"""``/api/v1/executions``: list and inspect executions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from redrive.api.auth import ViewerDep
from redrive.api.deps import Cursor, RowId, StateDep, known_kind
from redrive.errors import NotFound
from redrive.queue.executions import ExecutionFilter, error_context, get_execution, list_executions
from redrive.states import ExecutionStatus

router = APIRouter(prefix="/api/v1/executions", tags=["executions"])
Fingerprint = Annotated[
    str | None,
    Query(pattern="^[0-9a-f]{16}$", description="An error group's fingerprint (16 lower-case hex digits)."),
]


@router.get("")
async def executions_list(
    state: StateDep,
    caller: ViewerDep,
    trigger: str | None = None,
    status: ExecutionStatus | None = None,
    kind: Annotated[str | None, Query(description="An action kind (http, command, email, python, a plugin's).")] = None,
    code: str | None = None,
    fingerprint: Fingerprint = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Executions, newest first; pass ``next_cursor`` back as ``cursor`` for the next page; ``fingerprint`` keeps
    those whose last failure counts in that error group."""
    filters = ExecutionFilter(trigger, status, known_kind(state, kind), code, since, until, cursor, limit, fingerprint)
    rows = await state.db.read(list_executions(filters))
    return {"items": rows, "next_cursor": rows[-1]["id"] if len(rows) == limit else None}


@router.get("/{execution_id}", responses={404: {"description": "not_found"}})
async def execution_show(execution_id: RowId, state: StateDep, caller: ViewerDep) -> dict[str, Any]:
    """One execution with every attempt (what it sent, redacted, as stored then), its event (secrets masked) and,
    when its trigger orders deliveries, its ordering key, policy and what it waits on."""
    found = await state.db.read(get_execution(execution_id, state.triggers.ordering_policies))
    if found is None:
        raise NotFound(f"no execution has id {execution_id}")
    found["error"] = error_context(found)
    # The stored payload is kept verbatim for replays; what is shown has its secret fields masked.
    found["event"]["payload"] = state.redactor.tree(found["event"]["payload"])
    return found
