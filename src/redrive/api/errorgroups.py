"""``/api/v1/error-groups``: failures grouped by fingerprint, with counts in a window and a hint; resolve, ignore."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Query

from redrive.api.auth import AUTH_RESPONSES, OperatorDep, ViewerDep
from redrive.api.deps import StateDep
from redrive.api.stats import WINDOW_RESPONSES, Since, window_start
from redrive.errors import NotFound
from redrive.failures.error_groups import Decision, GroupFilter, get_group, list_groups, set_status
from redrive.registry import Registry

log = structlog.get_logger("redrive.errorgroups")
router = APIRouter(prefix="/api/v1/error-groups", tags=["error groups"])
GroupStatus = Literal["open", "resolved", "ignored", "regressed"]
GROUP_RESPONSES = {**WINDOW_RESPONSES, 404: {"description": "not_found: no error group has that fingerprint."}}
DECISION_RESPONSES = {**AUTH_RESPONSES, 404: GROUP_RESPONSES[404]}


def _view(group: dict[str, Any], registry: Registry) -> dict[str, Any]:
    hint = registry.hint_for(group["code"], group["title"])
    view = {key: value.isoformat() if hasattr(value, "isoformat") else value for key, value in group.items()}
    view["hint"] = {"title": hint.title, "advice": hint.advice, "remedy": hint.remedy}
    return view


@router.get("", responses=WINDOW_RESPONSES)
async def groups_list(
    state: StateDep,
    caller: ViewerDep,
    since: Since = "24h",
    status: GroupStatus | None = None,
    trigger: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Groups seen in the window, most failures in the window first, each with a hint."""
    groups = await state.db.read(list_groups(GroupFilter(window_start(state, since), status, trigger, limit)))
    return {"since": since, "items": [_view(group, state.registry) for group in groups]}


@router.get("/{fingerprint}", responses=GROUP_RESPONSES)
async def group_show(fingerprint: str, state: StateDep, caller: ViewerDep, since: Since = "24h") -> dict[str, Any]:
    """One group with its count in the window and its hint."""
    group = await state.db.read(get_group(fingerprint, window_start(state, since)))
    if group is None:
        raise NotFound(f"no error group has fingerprint {fingerprint!r}")
    return _view(group, state.registry)


async def _decide(state: StateDep, caller: OperatorDep, fingerprint: str, decision: Decision) -> dict[str, Any]:
    if not await state.db.write(set_status(fingerprint, decision, state.now())):
        raise NotFound(f"no error group has fingerprint {fingerprint!r}")
    log.info(f"error_group_{decision}", fingerprint=fingerprint, by=caller.name)
    return await group_show(fingerprint, state, caller)


@router.post("/{fingerprint}/resolve", responses=DECISION_RESPONSES)
async def group_resolve(fingerprint: str, state: StateDep, caller: OperatorDep) -> dict[str, Any]:
    """Mark a group resolved; its next failure makes it ``regressed``."""
    return await _decide(state, caller, fingerprint, "resolved")


@router.post("/{fingerprint}/ignore", responses=DECISION_RESPONSES)
async def group_ignore(fingerprint: str, state: StateDep, caller: OperatorDep) -> dict[str, Any]:
    """Mark a group ignored; it stays ignored when it fails again."""
    return await _decide(state, caller, fingerprint, "ignored")
