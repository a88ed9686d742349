"""Accept an event: parse, pick the idempotency key, filter, then store it once (the insert is a writer job).

``prepare`` decides from values alone (no I/O); ``store_event`` is the one transaction-sized job the group-commit
writer runs: insert the event unless its key is taken (``ON CONFLICT ... DO NOTHING`` on the partial unique index,
so only that conflict is absorbed and any other integrity error surfaces), then insert its execution.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection

from redrive.config import TriggerConfig
from redrive.db.engine import dialect_insert
from redrive.db.schema import daily_counters, events, executions
from redrive.errors import InvalidJson, InvalidRequest
from redrive.redaction import Redactor
from redrive.templating import RenderError

MAX_KEY_LENGTH = 255
MAX_JSON_DEPTH = 64


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event ready to store."""

    trigger_id: int
    action_kind: str
    idempotency_key: str | None
    body_sha256: str
    headers: dict[str, str]
    payload: Any
    filtered: bool
    received_at: datetime
    accept_key_conflicts: bool


@dataclass(frozen=True, slots=True)
class Stored:
    """What storing an event came to."""

    outcome: Literal["created", "duplicate", "conflict"]
    event_id: int
    execution_id: int | None
    filtered: bool


def parse_payload(body: bytes) -> Any:
    """Parse a JSON body, raising InvalidJson with the parser's reason (or because it nests too deep)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"the body is not valid JSON: {exc}") from exc
    # Only a body with more brackets than the limit can nest deeper than it: most never pay for the walk.
    if body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH:
        check_depth(payload)
    return payload


def check_depth(payload: Any) -> None:
    """Raise InvalidJson when objects and arrays nest more than MAX_JSON_DEPTH levels deep."""
    stack = [(payload, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > MAX_JSON_DEPTH:
            raise InvalidJson(f"the JSON nests more than {MAX_JSON_DEPTH} levels deep")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def _lookup(payload: Any, path: str) -> Any:
    node = payload
    for part in path.split("."):
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def extract_key(sources: list[str], headers: Mapping[str, str], payload: Any) -> str | None:
    """The first present key among ``sources`` (``header:Name`` or ``body:dotted.path``); None when none is."""
    for source in sources:
        where, _, name = source.partition(":")
        value = headers.get(name.lower()) if where == "header" else _lookup(payload, name)
        if isinstance(value, bool) or value is None or isinstance(value, dict | list):
            continue
        key = str(value)
        if not key:
            continue
        if len(key) > MAX_KEY_LENGTH:
            raise InvalidRequest(
                f"the idempotency key from {source} is {len(key)} characters long; "
                f"at most {MAX_KEY_LENGTH} are allowed",
                code="invalid_idempotency_key",
            )
        return key
    return None


def prepare(
    trigger: TriggerConfig,
    trigger_id: int,
    *,
    body: bytes,
    headers: Mapping[str, str],
    received_at: datetime,
    redactor: Redactor,
    payload: Any = None,
    key: str | None = None,
) -> NewEvent:
    """Turn a raw delivery into a NewEvent. ``headers`` must have lower-case names.

    ``payload``/``key`` are given by senders that already hold them parsed (the events API); otherwise the body
    is parsed and the key taken from the trigger's key sources.
    """
    if payload is None:
        payload = parse_payload(body)
    if key is None:
        key = extract_key(trigger.source.idempotency_key, headers, payload)
    filtered = False
    if trigger.source.filter is not None:
        try:
            filtered = not trigger.source.filter.matches({"payload": payload, "headers": headers})
        except RenderError as exc:
            raise InvalidRequest(str(exc), code="filter_error") from exc
    return NewEvent(
        trigger_id=trigger_id,
        action_kind=trigger.action.kind,
        idempotency_key=key,
        body_sha256=hashlib.sha256(body).hexdigest(),
        headers=redactor.tree(dict(headers)),
        payload=payload,
        filtered=filtered,
        received_at=received_at,
        accept_key_conflicts=trigger.source.on_key_conflict == "accept",
    )


def _count(connection: Connection, trigger_id: int, day: Any, name: str) -> None:
    insert = dialect_insert(connection)(daily_counters).values(trigger_id=trigger_id, day=day, name=name, value=1)
    connection.execute(
        insert.on_conflict_do_update(
            index_elements=["trigger_id", "day", "name"], set_={"value": daily_counters.c.value + 1}
        )
    )


def store_event(event: NewEvent) -> Any:
    """A writer job that stores ``event`` and its execution, or reports the duplicate it is."""

    def job(connection: Connection) -> Stored:
        insert = dialect_insert(connection)(events).values(
            trigger_id=event.trigger_id,
            idempotency_key=event.idempotency_key,
            body_sha256=event.body_sha256,
            headers=event.headers,
            payload=event.payload,
            filtered=event.filtered,
            received_at=event.received_at,
        )
        if event.idempotency_key is not None:
            insert = insert.on_conflict_do_nothing(
                index_elements=["trigger_id", "idempotency_key"],
                index_where=text("idempotency_key IS NOT NULL"),
            )
        event_id = connection.execute(insert.returning(events.c.id)).scalar_one_or_none()
        if event_id is None:
            return _existing(connection, event)
        execution_id = None
        if not event.filtered:
            execution_id = connection.execute(
                executions.insert()
                .values(
                    event_id=event_id,
                    trigger_id=event.trigger_id,
                    action_kind=event.action_kind,
                    status="pending",
                    attempts=0,
                    run_at=event.received_at,
                    created_at=event.received_at,
                    updated_at=event.received_at,
                )
                .returning(executions.c.id)
            ).scalar_one()
        return Stored("created", event_id, execution_id, event.filtered)

    return job


def _existing(connection: Connection, event: NewEvent) -> Stored:
    original = connection.execute(
        select(events.c.id, events.c.body_sha256, events.c.filtered).where(
            events.c.trigger_id == event.trigger_id, events.c.idempotency_key == event.idempotency_key
        )
    ).one()
    execution_id = connection.execute(
        select(func.min(executions.c.id)).where(executions.c.event_id == original.id)
    ).scalar_one_or_none()
    same_body = original.body_sha256 == event.body_sha256
    _count(connection, event.trigger_id, event.received_at.date(), "duplicates" if same_body else "key_conflicts")
    outcome: Literal["duplicate", "conflict"] = "duplicate" if same_body or event.accept_key_conflicts else "conflict"
    return Stored(outcome, original.id, execution_id, original.filtered)
