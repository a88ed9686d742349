"""Queue tests' set-up: a trigger file's triggers synced, and events stored through the ingest's own writer job."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from redrive.ingest.prepare import prepare
from redrive.ingest.store import store_events
from redrive.observe.redaction import Redactor
from redrive.plugins import load_plugins
from redrive.queue import statements as queue
from redrive.triggers.config import parse_config
from redrive.triggers.runtime import TriggerSet, build_trigger_set, sync_triggers
from support import statements_seen

# Two http triggers, each its own destination: one an operator holds (forced open), one healthy.
HELD_AND_HEALTHY = """
triggers:
  - name: held
    action: {kind: http, url: "https://held.example/hook"}
  - name: healthy
    action: {kind: http, url: "https://healthy.example/hook"}
"""
HELD = "https://held.example:443"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def trigger_set(engine: Engine, config_yaml: str, now: datetime) -> TriggerSet:
    """The triggers of ``config_yaml``, synced into the database as the service does at start."""
    plugins = load_plugins("")
    config = parse_config(config_yaml, registry=plugins.registry)
    with engine.begin() as connection:
        ids = sync_triggers(connection, config, now)
    return build_trigger_set(config, ids, plugins.registry)


def store(engine: Engine, triggers: TriggerSet, name: str, count: int, at: datetime, batch: int = 500) -> None:
    """Store ``count`` events (``{}``) of the trigger ``name``, received ``at``, ``batch`` per transaction."""
    trigger = triggers.by_name(name)
    assert trigger is not None
    events = [
        prepare(
            trigger.config,
            trigger.id,
            body=b"{}",
            headers={},
            received_at=at,
            redactor=Redactor(),
            destination=trigger.destination,
        )
        for _ in range(count)
    ]
    for start in range(0, count, batch):
        with engine.begin() as connection:
            store_events(connection, events[start : start + batch])


def succeeded(claimed: queue.Claimed, at: datetime, **fields: Any) -> queue.Completion:
    """The completion of a successful attempt at ``claimed``, finished ``at``; ``fields`` set the rest."""
    return queue.Completion(
        execution_id=claimed.id,
        lease_token=claimed.lease_token,
        status="succeeded",
        run_at=None,
        started_at=at,
        finished_at=at,
        outcome="succeeded",
        error_category=None,
        error_code=None,
        message=None,
        detail={},
        excerpt=None,
        **fields,
    )


@contextmanager
def destination_statements(engine: Engine) -> Iterator[list[str]]:
    """The reads (``select``) and writes (``update``) of the destinations' rows run inside the block, and the counts
    of their running executions made apart (``count``)."""
    kinds = {"UPDATE destinations": "update", "SELECT destinations.": "select"}
    kinds["SELECT executions.destination, count(*)"] = "count"

    def kind(statement: str) -> str | None:
        return next((name for start, name in kinds.items() if statement.startswith(start)), None)

    with statements_seen(engine, kind) as seen:
        yield seen
