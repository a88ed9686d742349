"""``POST /api/v1/events``: the same ingest contract for internal senders, with the trigger named in the body."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from redrive.api.auth import AUTH_RESPONSES, OperatorDep
from redrive.api.deps import StateDep
from redrive.api.hooks import INGEST_RESPONSES, header_dict
from redrive.api.responses import Json
from redrive.errors import PayloadTooLarge
from redrive.ingest.accept import accept, find_trigger
from redrive.ingest.prepare import check_depth, check_numbers, prepare

router = APIRouter(prefix="/api/v1", tags=["events"])


class EventIn(BaseModel):
    """An event sent by an internal system or the CLI."""

    model_config = ConfigDict(extra="forbid")

    trigger: str = Field(description="The trigger to run.")
    payload: Any = Field(description="The event's JSON payload.")
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="Deduplicates deliveries; defaults to the trigger's key sources.",
    )


@router.post("/events", status_code=202, responses={**INGEST_RESPONSES, **AUTH_RESPONSES})
async def send_event(event: EventIn, request: Request, state: StateDep, caller: OperatorDep) -> Json:
    """Accept one event: 202 new, 200 duplicate."""
    trigger = find_trigger(state, event.trigger)
    check_depth(event.payload)
    check_numbers(event.payload)  # the body's parser keeps any integer and reads 1e400 as infinity: orjson would not
    body = orjson.dumps(event.payload, option=orjson.OPT_SORT_KEYS)  # same payload, same hash
    if len(body) > trigger.config.source.max_body_bytes:
        raise PayloadTooLarge(
            f"the payload is {len(body)} bytes; this trigger accepts at most {trigger.config.source.max_body_bytes}"
        )
    prepared = prepare(
        trigger.config,
        trigger.id,
        body=body,
        headers=header_dict(request),
        received_at=state.now(),
        redactor=state.redactor,
        destination=trigger.destination,
        payload=event.payload,
        key=event.idempotency_key,
    )
    accepted = await accept(state, trigger, prepared)
    return Json(accepted.body, status_code=accepted.status)
