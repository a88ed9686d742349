"""``/api/v1/executions``: list and inspect executions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from redrive.api.auth import ViewerDep
from redrive.api.deps import Cursor, RowId, StateDep, known_kind
from redrive.api.state import ServiceState
from redrive.errors import NotFound
from redrive.queue.executions import ExecutionFilter, error_context, get_execution, list_executions
from redrive.triggers.runtime import action_context
from redrive.triggers.templating import RenderError

router = APIRouter(prefix="/api/v1/executions", tags=["executions"])
Status = Literal["pending", "running", "succeeded", "failed_retryable", "failed", "replayed"]


@router.get("")
async def executions_list(
    state: StateDep,
    caller: ViewerDep,
    trigger: str | None = None,
    status: Status | None = None,
    kind: Annotated[str | None, Query(description="An action kind (http, command, email, python, a plugin's).")] = None,
    code: str | None = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Executions, newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
    filters = ExecutionFilter(trigger, status, known_kind(state, kind), code, since, until, cursor, limit)
    rows = await state.db.read(list_executions(filters))
    return {"items": rows, "next_cursor": rows[-1]["id"] if len(rows) == limit else None}


@router.get("/{execution_id}", responses={404: {"description": "not_found"}})
async def execution_show(execution_id: RowId, state: StateDep, caller: ViewerDep) -> dict[str, Any]:
    """One execution with every attempt and its event (secrets in the payload masked)."""
    found = await state.db.read(get_execution(execution_id))
    if found is None:
        raise NotFound(f"no execution has id {execution_id}")
    found["action"] = rendered_action(state, found["trigger"], found["event"])
    found["error"] = error_context(found)
    # The stored payload is kept verbatim for replays; what is shown has its secret fields masked.
    found["event"]["payload"] = state.redactor.tree(found["event"]["payload"])
    return found


def rendered_action(state: ServiceState, trigger_name: str, event: dict[str, Any]) -> dict[str, Any] | None:
    """What the trigger's action sends for this event, secrets masked; None when the trigger is gone."""
    trigger = state.triggers.by_name(trigger_name)
    if trigger is None:
        return None
    context = action_context(
        trigger.name,
        event_id=event["id"],
        payload=event["payload"],
        headers=event["headers"],
        idempotency_key=event["idempotency_key"],
        received_at=datetime.fromisoformat(event["received_at"]),
    )
    try:
        rendered = trigger.action.render(context)
    except RenderError as exc:
        return {"kind": trigger.config.action.kind, "error": state.redactor.text(str(exc))}
    return {"kind": trigger.config.action.kind, **state.redactor.tree(rendered)}
