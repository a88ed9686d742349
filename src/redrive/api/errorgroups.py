"""``/api/v1/error-groups``: failures grouped by fingerprint, with counts in a window and a hint; resolve, ignore;
acknowledge and snooze (silence repeated alerts without resolving), and undo either."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Body, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from redrive.api.auth import AUTH_RESPONSES, OperatorDep, ViewerDep
from redrive.api.deps import StateDep
from redrive.api.figures import ErrorGroup, ErrorGroups
from redrive.api.stats import WINDOW_RESPONSES, Since, window_start
from redrive.errors import InvalidSnooze, NotFound
from redrive.failures.error_groups import (
    Attend,
    Decision,
    GroupFilter,
    attend,
    get_group,
    list_groups,
    set_status,
    silenced,
    snooze_problem,
)

log = structlog.get_logger("redrive.errorgroups")
router = APIRouter(prefix="/api/v1/error-groups", tags=["error groups"])
GroupStatus = Literal["open", "resolved", "ignored", "regressed"]
GROUP_RESPONSES = {**WINDOW_RESPONSES, 404: {"description": "not_found: no error group has that fingerprint."}}
DECISION_RESPONSES = {**AUTH_RESPONSES, 404: GROUP_RESPONSES[404]}
SNOOZE_RESPONSES = {
    **DECISION_RESPONSES,
    422: {
        "description": "invalid_snooze: neither or both of until and grows_by, until in the past, or grows_by below "
        "1; invalid_request: a field the body does not have, or a value of the wrong type."
    },
}


class AcknowledgeIn(BaseModel):
    """An acknowledgement: who and when come from the token and the clock."""

    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=2000, description="Why, or who is on it.")


class SnoozeIn(BaseModel):
    """A snooze: until a time, or until the group grows by N more failures (exactly one)."""

    model_config = ConfigDict(extra="forbid")

    until: AwareDatetime | None = Field(None, description="Silence the group until this time (ISO 8601, with zone).")
    grows_by: int | None = Field(None, le=10**12, description="Silence it until N more failures are counted (N >= 1).")


def _view(group: dict[str, Any], state: StateDep) -> dict[str, Any]:
    hint = state.registry.hint_for(group["code"], group["title"])
    view = {key: value.isoformat() if hasattr(value, "isoformat") else value for key, value in group.items()}
    view["hint"] = {"title": hint.title, "advice": hint.advice, "remedy": hint.remedy}
    view["silenced"] = silenced(group, state.now())
    return view


@router.get("", responses=WINDOW_RESPONSES, response_model=ErrorGroups)
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
    return {"since": since, "items": [_view(group, state) for group in groups]}


@router.get("/{fingerprint}", responses=GROUP_RESPONSES, response_model=ErrorGroup)
async def group_show(fingerprint: str, state: StateDep, caller: ViewerDep, since: Since = "24h") -> dict[str, Any]:
    """One group with its count in the window and its hint."""
    group = await state.db.read(get_group(fingerprint, window_start(state, since)))
    if group is None:
        raise NotFound(f"no error group has fingerprint {fingerprint!r}")
    return _view(group, state)


async def _decide(state: StateDep, caller: OperatorDep, fingerprint: str, decision: Decision) -> dict[str, Any]:
    if not await state.db.write(set_status(fingerprint, decision, state.now(), actor=caller.name)):
        raise NotFound(f"no error group has fingerprint {fingerprint!r}")
    log.info(f"error_group_{decision}", fingerprint=fingerprint, by=caller.name)
    return await group_show(fingerprint, state, caller)


@router.post("/{fingerprint}/resolve", responses=DECISION_RESPONSES, response_model=ErrorGroup)
async def group_resolve(fingerprint: str, state: StateDep, caller: OperatorDep) -> dict[str, Any]:
    """Mark a group resolved; its next failure makes it ``regressed``."""
    return await _decide(state, caller, fingerprint, "resolved")


@router.post("/{fingerprint}/ignore", responses=DECISION_RESPONSES, response_model=ErrorGroup)
async def group_ignore(fingerprint: str, state: StateDep, caller: OperatorDep) -> dict[str, Any]:
    """Mark a group ignored; it stays ignored when it fails again."""
    return await _decide(state, caller, fingerprint, "ignored")


async def _attend(state: StateDep, caller: OperatorDep, fingerprint: str, change: Attend) -> dict[str, Any]:
    if not await state.db.write(attend(fingerprint, change)):
        raise NotFound(f"no error group has fingerprint {fingerprint!r}")
    log.info(f"error_group_{change.action}", fingerprint=fingerprint, by=change.actor, **change.detail())
    return await group_show(fingerprint, state, caller)


@router.post("/{fingerprint}/acknowledge", responses=DECISION_RESPONSES, response_model=ErrorGroup)
async def group_acknowledge(
    fingerprint: str, state: StateDep, caller: OperatorDep, body: Annotated[AcknowledgeIn | None, Body()] = None
) -> dict[str, Any]:
    """Acknowledge a group (who, when, a note): its repeated alerts stop; it stays open until resolved, and a
    regression clears the acknowledgement."""
    note = body.note if body is not None else None
    return await _attend(state, caller, fingerprint, Attend("acknowledge", caller.name, state.now(), note=note))


@router.post("/{fingerprint}/unacknowledge", responses=DECISION_RESPONSES, response_model=ErrorGroup)
async def group_unacknowledge(fingerprint: str, state: StateDep, caller: OperatorDep) -> dict[str, Any]:
    """Withdraw a group's acknowledgement."""
    return await _attend(state, caller, fingerprint, Attend("unacknowledge", caller.name, state.now()))


@router.post("/{fingerprint}/snooze", responses=SNOOZE_RESPONSES, response_model=ErrorGroup)
async def group_snooze(fingerprint: str, body: SnoozeIn, state: StateDep, caller: OperatorDep) -> dict[str, Any]:
    """Snooze a group until a time or until it grows by N failures; a regression ends the snooze."""
    now = state.now()
    problem = snooze_problem(body.until, body.grows_by, now)
    if problem is not None:
        raise InvalidSnooze(f"cannot snooze error group {fingerprint!r}: {problem}")
    change = Attend("snooze", caller.name, now, until=body.until, grows_by=body.grows_by)
    return await _attend(state, caller, fingerprint, change)


@router.post("/{fingerprint}/unsnooze", responses=DECISION_RESPONSES, response_model=ErrorGroup)
async def group_unsnooze(fingerprint: str, state: StateDep, caller: OperatorDep) -> dict[str, Any]:
    """End a group's snooze now."""
    return await _attend(state, caller, fingerprint, Attend("unsnooze", caller.name, state.now()))
