"""Triggers at run time: the declared config joined to its database row (id, paused) and its built action."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from redrive.actions import Action
from redrive.db.engine import dialect_insert
from redrive.db.schema import triggers as triggers_table
from redrive.errors import ConfigError, Problem
from redrive.extensions import ActionKind, SignatureScheme
from redrive.failures.classify import Failure
from redrive.queue.retry import RetryPolicy
from redrive.registry import Registry
from redrive.triggers.config import RedriveConfig, TriggerConfig


@dataclass(frozen=True, slots=True)
class Trigger:
    """One declared trigger, ready to ingest and execute: its kind and scheme resolved once, here."""

    id: int
    config: TriggerConfig
    action: Action
    policy: RetryPolicy
    kind: ActionKind
    classify: Callable[[BaseException], Failure]
    """Classify an exception the action raised (plugins' overrides first, the built-in rules last)."""
    scheme: SignatureScheme | None = None
    overridden: bool = False
    """Whether a plugin overrides classification, so failures the action classified itself are asked again."""

    @property
    def name(self) -> str:
        """The trigger's name."""
        return self.config.name


def action_context(
    trigger_name: str,
    *,
    event_id: int,
    payload: Any,
    headers: dict[str, str],
    idempotency_key: str | None,
    received_at: datetime,
) -> dict[str, Any]:
    """What an action's templates see: ``payload``, ``headers``, ``event`` and ``trigger``."""
    return {
        "payload": payload,
        "headers": headers,
        "event": {"id": event_id, "idempotency_key": idempotency_key, "received_at": received_at.isoformat()},
        "trigger": {"name": trigger_name},
    }


class TriggerSet:
    """Every declared trigger, by name (ingest) and by id (worker)."""

    def __init__(self, triggers: list[Trigger]) -> None:
        self._by_name = {t.name: t for t in triggers}
        self._by_id = {t.id: t for t in triggers}

    def by_name(self, name: str) -> Trigger | None:
        """The trigger called ``name``, if declared."""
        return self._by_name.get(name)

    def by_id(self, trigger_id: int) -> Trigger | None:
        """The trigger with database id ``trigger_id``, if still declared."""
        return self._by_id.get(trigger_id)

    @property
    def ids(self) -> list[int]:
        """Database ids of every declared trigger."""
        return list(self._by_id)

    def __iter__(self) -> Iterator[Trigger]:
        return iter(self._by_name.values())


def sync_triggers(connection: Connection, config: RedriveConfig, now: datetime) -> dict[str, int]:
    """Make sure every declared trigger has a row; return ids by name. Rows of removed triggers are kept."""
    insert = dialect_insert(connection)
    for trigger in config.triggers:
        statement = insert(triggers_table).values(
            name=trigger.name, action_kind=trigger.action.kind, paused=False, created_at=now, updated_at=now
        )
        connection.execute(statement.on_conflict_do_nothing(index_elements=["name"]))
        connection.execute(
            update(triggers_table)
            .where(triggers_table.c.name == trigger.name, triggers_table.c.action_kind != trigger.action.kind)
            .values(action_kind=trigger.action.kind, updated_at=now)
        )
    rows = connection.execute(select(triggers_table.c.name, triggers_table.c.id))
    return {name: trigger_id for name, trigger_id in rows if config.trigger(name) is not None}


def build_trigger(trigger_id: int, config: TriggerConfig, registry: Registry) -> Trigger:
    """Resolve a declared trigger's action kind and signature scheme in ``registry`` and build its action."""
    kind = registry.kinds.get(config.action.kind)
    verify = config.source.verify
    scheme = registry.schemes.get(verify.scheme) if verify is not None else None
    if kind is None or (verify is not None and scheme is None):
        missing = f"action kind {config.action.kind!r}" if kind is None else f"signature scheme {verify.scheme!r}"
        raise ConfigError([Problem("<config>", f"trigger {config.name!r}", f"no loaded plugin provides the {missing}")])
    retry = config.retry
    return Trigger(
        id=trigger_id,
        config=config,
        action=kind.build(config.action),
        policy=RetryPolicy(
            max_attempts=retry.max_attempts,
            base=retry.base,
            factor=retry.factor,
            max_delay=retry.max_delay,
            jitter=retry.jitter,
        ),
        kind=kind,
        scheme=scheme,
        classify=partial(registry.classify, kind.name),
        overridden=registry.overrides,
    )


def build_trigger_set(config: RedriveConfig, ids: dict[str, int], registry: Registry) -> TriggerSet:
    """Join each declared trigger to its id, its action (built by its kind), its scheme and its retry policy."""
    return TriggerSet([build_trigger(ids[t.name], t, registry) for t in config.triggers])
