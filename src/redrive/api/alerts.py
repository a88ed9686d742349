"""``/api/v1/alerts``: the trigger file's alert rules with their state, the history of transitions and deliveries,
and an operator's test notification through a rule's channels. Rules are read-only here: the trigger file owns them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from redrive.alerts.engine import AlertEngine
from redrive.alerts.store import read_history, read_states
from redrive.api.auth import AUTH_RESPONSES, OperatorDep, ViewerDep
from redrive.api.deps import StateDep
from redrive.api.state import ServiceState
from redrive.errors import Unavailable, UnknownAlert

log = structlog.get_logger("redrive.alerts")
router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])
TEST_RESPONSES = {
    **AUTH_RESPONSES,
    404: {"description": "unknown_alert: no alert rule has that name."},
    503: {"description": "unavailable: this process runs no alert engine."},
}


class AlertRuleState(BaseModel):
    name: str
    state: str = Field(description="`ok` or `firing`.")
    since: datetime | None = Field(description="When the rule entered its state (None: never evaluated yet).")
    condition: str = Field(description="The condition the rule's `when:` names (failure_rate, dlq_size, ...).")
    when: dict[str, Any]
    triggers: list[str] | None = Field(description="The triggers watched; null: every trigger.")
    notify: list[str]
    repeat_seconds: float | None
    summary: str | None = Field(description="The last evaluation's reading, in one line.")
    evaluated_at: datetime | None


class ChannelHealth(BaseModel):
    name: str
    kind: str
    pending: int = Field(description="Notifications of the last day not delivered yet.")
    retrying: int = Field(description="Of the pending ones, those that failed at least once (being retried).")
    delivered: int
    failed: int = Field(description="Notifications of the last day given up on after every retry.")


class AlertList(BaseModel):
    items: list[AlertRuleState] = Field(description="Firing rules first, then by name.")
    channels: list[ChannelHealth]


class Notification(BaseModel):
    id: int
    channel: str
    status: str = Field(description="`pending` (not delivered yet, perhaps retrying), `delivered` or `failed`.")
    attempts: int
    next_at: datetime
    delivered_at: datetime | None
    last_error: str | None


class Transition(BaseModel):
    id: int
    key: str = Field(description="The idempotency key channels see (webhook-id, the trigger channel's event key).")
    rule: str
    kind: str = Field(description="`firing`, `resolved`, `repeat` or `test`.")
    at: datetime
    title: str
    text: str
    detail: dict[str, Any]
    notifications: list[Notification]


class AlertHistory(BaseModel):
    items: list[Transition] = Field(description="Newest first.")


class TestSent(BaseModel):
    key: str
    channels: list[str]


def _engine(state: ServiceState) -> AlertEngine:
    if state.alerts is None:
        raise Unavailable("this process runs no alert engine")
    return state.alerts.engine


@router.get("", response_model=AlertList)
async def alerts_list(state: StateDep, caller: ViewerDep) -> dict[str, Any]:
    """Every rule with its state (firing first), and every channel's delivery health over the last day."""
    stored = await state.db.read(read_states())
    items = []
    for rule in state.config.alerts:
        row = stored.get(rule.name, {})
        items.append(
            {
                "name": rule.name,
                "state": row.get("state", "ok"),
                "since": row.get("since"),
                "condition": type(rule.when).key,
                "when": rule.when.model_dump(),
                "triggers": rule.triggers,
                "notify": rule.notify,
                "repeat_seconds": rule.repeat,
                "summary": row.get("summary"),
                "evaluated_at": row.get("evaluated_at"),
            }
        )
    items.sort(key=lambda item: (item["state"] != "firing", item["name"]))
    health = await _engine(state).health(timedelta(days=1)) if state.alerts is not None else {}
    kinds = {c.name: c.kind for c in state.config.channels}
    channels = [{"name": name, "kind": kinds[name], **counts} for name, counts in health.items()]
    return {"items": items, "channels": channels}


@router.get("/history", response_model=AlertHistory)
async def alerts_history(
    state: StateDep,
    caller: ViewerDep,
    rule: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The latest transitions (firing, resolved, repeat, test), each with its notifications' delivery status."""
    return {"items": await state.db.read(read_history(limit, rule))}


@router.post("/{name}/test", status_code=202, responses=TEST_RESPONSES, response_model=TestSent)
async def alerts_test(name: str, state: StateDep, caller: OperatorDep) -> dict[str, Any]:
    """Send a clearly marked test notification of rule ``name`` through each of its channels (audited)."""
    rule = next((r for r in state.config.alerts if r.name == name), None)
    if rule is None:
        raise UnknownAlert(f"no alert rule is called {name!r}")
    key = await _engine(state).send_test(rule, actor=caller.name)
    return {"key": key, "channels": rule.notify}
