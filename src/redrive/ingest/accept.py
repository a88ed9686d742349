"""Accept an event for a trigger: find it, check its signature, store the prepared event, answer as the contract says.

Shared by ``POST /hooks/{trigger}`` and ``POST /api/v1/events``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import structlog

from redrive.db.database import Database
from redrive.errors import IdempotencyKeyReused, InvalidSignature, UnknownTrigger
from redrive.ingest.counters import increment
from redrive.ingest.prepare import NewEvent
from redrive.ingest.signatures import verify_delivery
from redrive.ingest.store import Stored, store_event
from redrive.lifecycle import EVENT_ACCEPTED, Lifecycle, accepted
from redrive.observe.metrics import Metrics
from redrive.observe.stream import StreamHub
from redrive.queue.notify import Wakeup
from redrive.triggers.runtime import Trigger, TriggerSet

log = structlog.get_logger("redrive.ingest")


class Ingestor(Protocol):
    """What accepting an event needs of the running service (the API's ``ServiceState`` is one)."""

    @property
    def db(self) -> Database: ...

    @property
    def triggers(self) -> TriggerSet: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def wakeup(self) -> Wakeup: ...

    @property
    def stream(self) -> StreamHub | None: ...

    @property
    def lifecycle(self) -> Lifecycle: ...

    def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Accepted:
    """The answer to an accepted event: 202 for a new one, 200 for a duplicate, and the JSON body."""

    status: int
    body: dict[str, Any]


async def check_signature(state: Ingestor, trigger: Trigger, body: bytes, headers: dict[str, str]) -> None:
    """When the trigger verifies signatures, refuse a bad one with a 401 (counted, logged) before anything is stored."""
    scheme = trigger.scheme  # resolved when the trigger was built: no plugin lookup per delivery
    if scheme is None:
        return
    now = state.now()
    try:
        verify_delivery(scheme, trigger.config.source.verify, body, headers, now.timestamp())
    except InvalidSignature as exc:
        log.warning("invalid_signature", trigger=trigger.name, scheme=scheme.name, reason=exc.message)
        try:
            await state.db.write(increment(trigger.id, now.date(), "invalid_signatures"))
        except Exception:  # the count is a courtesy: the sender still gets its 401, never a 5xx
            log.warning("invalid_signature_not_counted", trigger=trigger.name)
        raise


def find_trigger(state: Ingestor, name: str) -> Trigger:
    """The declared trigger ``name`` or a 404 ``unknown_trigger``."""
    trigger = state.triggers.by_name(name)
    if trigger is None:
        raise UnknownTrigger(f"no trigger is called {name!r}")
    return trigger


async def accept(state: Ingestor, trigger: Trigger, event: NewEvent) -> Accepted:
    """Store a prepared event and answer as the ingest contract says (shared by hooks and the events API)."""
    stored: Stored = await state.db.write(store_event(event))
    fields = {"trigger": trigger.name, "event_id": stored.event_id, "execution_id": stored.execution_id}
    state.metrics.ingested(trigger.name, stored.outcome)
    if stored.outcome == "conflict":
        log.warning("idempotency_key_reused", **fields, idempotency_key=event.idempotency_key)
        raise IdempotencyKeyReused(
            f"idempotency key {event.idempotency_key!r} was already used with a different body "
            f"(event {stored.event_id}); use a new key for a new event"
        )
    body: dict[str, Any] = {
        "event_id": stored.event_id,
        "execution_id": stored.execution_id,
        "duplicate": stored.outcome == "duplicate",
    }
    if stored.filtered:
        body["filtered"] = True
    if stored.outcome == "duplicate":
        log.info("idempotent_replay", **fields, idempotency_key=event.idempotency_key)
        return Accepted(200, body)
    log.info("event_received", **fields, idempotency_key=event.idempotency_key, filtered=stored.filtered)
    if not stored.filtered and state.lifecycle.wants(EVENT_ACCEPTED):  # after the commit: the writer returned
        key = event.idempotency_key
        state.lifecycle.notify(accepted(trigger.name, stored.event_id, stored.execution_id, key, event.received_at))
    if stored.execution_id is not None:
        state.wakeup.work_due()
        if state.stream is not None:
            change = {"execution_id": stored.execution_id, "trigger": trigger.name, "status": "pending", "attempts": 0}
            state.stream.publish("execution", change)
    return Accepted(202, body)
