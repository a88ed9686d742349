"""``/api/v1/triggers``: each declared trigger with its config (secrets masked) and live counters; pause, resume."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter

from redrive.api.auth import AUTH_RESPONSES, OperatorDep, ViewerDep
from redrive.api.deps import StateDep
from redrive.api.state import ServiceState
from redrive.ingest.accept import find_trigger
from redrive.observe.stats import day_start
from redrive.triggers.admin import TriggerRow, set_paused, trigger_rows
from redrive.triggers.runtime import Trigger

log = structlog.get_logger("redrive.triggers")
router = APIRouter(prefix="/api/v1/triggers", tags=["triggers"])

# Errors any authenticated route may answer; the stats and error-group routers share them.
TRIGGER_RESPONSES = {**AUTH_RESPONSES, 404: {"description": "unknown_trigger: no trigger has that name."}}


def _view(state: ServiceState, trigger: Trigger, row: TriggerRow) -> dict[str, Any]:
    return {
        "name": trigger.name,
        "kind": trigger.config.action.kind,
        "paused": row.paused,
        "paused_reason": row.paused_reason,
        "config": state.redactor.tree(trigger.config.model_dump(mode="json", by_alias=True)),
        "counters": row.counters,
        "daily_watermark": trigger.config.limits.daily_watermark,
    }


async def _views(state: ServiceState, chosen: list[Trigger]) -> list[dict[str, Any]]:
    rows = await state.db.read(trigger_rows([t.id for t in chosen], day_start(state.now())))
    return [_view(state, t, rows[t.id]) for t in chosen]


@router.get("", responses=AUTH_RESPONSES)
async def triggers_list(state: StateDep, caller: ViewerDep) -> dict[str, Any]:
    """Every declared trigger with its redacted config, pause state and counters."""
    return {"items": await _views(state, sorted(state.triggers, key=lambda t: t.name))}


@router.get("/{name}", responses=TRIGGER_RESPONSES)
async def trigger_show(name: str, state: StateDep, caller: ViewerDep) -> dict[str, Any]:
    """One trigger with its redacted config, pause state and counters."""
    return (await _views(state, [find_trigger(state, name)]))[0]


@router.post("/{name}/pause", responses=TRIGGER_RESPONSES)
async def trigger_pause(name: str, state: StateDep, caller: OperatorDep) -> dict[str, Any]:
    """Pause a trigger: events are still accepted and stored; their executions wait, uncharged."""
    trigger = find_trigger(state, name)
    await state.db.write(
        set_paused(trigger.id, True, f"paused by {caller.name}", state.now(), actor=caller.name, name=trigger.name)
    )
    log.info("trigger_paused", trigger=name, by=caller.name)
    return (await _views(state, [trigger]))[0]


@router.post("/{name}/resume", responses=TRIGGER_RESPONSES)
async def trigger_resume(name: str, state: StateDep, caller: OperatorDep) -> dict[str, Any]:
    """Resume a trigger: its waiting executions run, oldest first."""
    trigger = find_trigger(state, name)
    await state.db.write(set_paused(trigger.id, False, None, state.now(), actor=caller.name, name=trigger.name))
    state.wakeup.work_due()
    log.info("trigger_resumed", trigger=name, by=caller.name)
    return (await _views(state, [trigger]))[0]
