"""Triggers at run time: the declared config joined to its database row (id, paused) and its built action.

``Trigger.render(event)`` is the one place an action is rendered for an event: it returns what the action runs and,
redacted and capped, what is stored on the attempt as sent (and shown by the execution view and replay preview).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Protocol

import orjson
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from redrive.actions import Action
from redrive.db.engine import dialect_insert
from redrive.db.schema import triggers as triggers_table
from redrive.destinations.keys import DestinationKey, destination_key
from redrive.destinations.policy import Policies, seed_of
from redrive.errors import ConfigError, Problem
from redrive.extensions import ActionKind, SignatureScheme
from redrive.failures.classify import Failure
from redrive.observe.redaction import Redactor
from redrive.queue.retry import RetryPolicy
from redrive.registry import Registry
from redrive.triggers.config import RedriveConfig, TriggerConfig

SENT_BODY_CAP = 16 * 1024
"""Most characters of a request body stored as sent (longer bodies are cut and marked ``body_truncated``)."""
SENT_TEXT_CAP = 4 * 1024
"""Most characters of any other value stored as sent (a URL, a header, an argv element, a subject)."""
TRUNCATED = "…[truncated]"


class EventFacts(Protocol):
    """What rendering needs of an event (a claimed execution has it; so does a replay preview's row)."""

    @property
    def event_id(self) -> int: ...

    @property
    def payload(self) -> Any: ...

    @property
    def headers(self) -> dict[str, str]: ...

    @property
    def idempotency_key(self) -> str | None: ...

    @property
    def received_at(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as read back from its row, for rendering outside the worker."""

    event_id: int
    payload: Any
    headers: dict[str, str]
    idempotency_key: str | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Rendering:
    """One event's rendering: ``action`` is what the action executes; ``sent`` what is stored as sent."""

    action: dict[str, Any]
    sent: dict[str, Any]


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
    redactor: Redactor = field(default_factory=Redactor)
    """Masks the trigger file's secrets in what is stored as sent."""
    destination: DestinationKey = field(default_factory=lambda: DestinationKey(None))
    """Where its executions go (``redrive.destinations.keys``): fixed, or rendered per event at ingest."""

    @property
    def name(self) -> str:
        """The trigger's name."""
        return self.config.name

    def render(self, event: EventFacts) -> Rendering:
        """Render the action for ``event`` (raises ``RenderError``), and what of it is stored as sent.

        What is stored is the action's own description of the request (``Describes.describe``, else the whole
        rendering), redacted (secret
        headers and keys, configured secrets, URL passwords) and capped (``SENT_BODY_CAP``, ``SENT_TEXT_CAP``).
        """
        context = action_context(
            self.name,
            event_id=event.event_id,
            payload=event.payload,
            headers=event.headers,
            idempotency_key=event.idempotency_key,
            received_at=event.received_at,
        )
        rendered = self.action.render(context)
        describe = getattr(self.action, "describe", None)  # optional (``Describes``): else the whole rendering
        described = describe(rendered) if describe is not None else dict(rendered)
        return Rendering(rendered, _capped(self.redactor, described))


def _capped(redactor: Redactor, described: dict[str, Any]) -> dict[str, Any]:
    sent: dict[str, Any] = redactor.tree(
        {key: value for key, value in described.items() if key not in ("json", "body")}
    )
    sent = _cap_strings(sent)
    if "json" in described:
        tree = redactor.tree(described["json"])
        text = orjson.dumps(tree, option=orjson.OPT_NON_STR_KEYS)  # only to measure: one fast pass, no copy kept
        if len(text) <= SENT_BODY_CAP:
            sent["json"] = tree
        else:
            sent["body"] = text[:SENT_BODY_CAP].decode("utf-8", errors="ignore") + TRUNCATED
            sent["body_truncated"] = True
    elif isinstance(described.get("body"), str):
        body = redactor.excerpt(described["body"])  # a text body may spell out secrets as JSON members or lines
        if len(body) > SENT_BODY_CAP:
            body = body[:SENT_BODY_CAP] + TRUNCATED
            sent["body_truncated"] = True
        sent["body"] = body
    return sent


def _cap_strings(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= SENT_TEXT_CAP else value[:SENT_TEXT_CAP] + TRUNCATED
    if isinstance(value, dict):
        return {key: _cap_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_cap_strings(item) for item in value]
    return value


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
    """Every declared trigger, by name (ingest) and by id (worker), and the policies of their destinations."""

    def __init__(self, triggers: list[Trigger], policies: Policies | None = None) -> None:
        self._by_name = {t.name: t for t in triggers}
        self._by_id = {t.id: t for t in triggers}
        ordering = [(t.id, t.config.ordering) for t in triggers if t.config.ordering is not None]
        self.ordered = bool(ordering)
        """Whether any declared trigger orders its deliveries by key (the claim then leases only heads of keys)."""
        self.blocking = [trigger_id for trigger_id, o in ordering if o.on_dead_letter == "block"]
        """Ids of the ordered triggers whose dead-lettered head holds its key (``on_dead_letter: block``)."""
        self.ordering_policies = {t.name: t.config.ordering.on_dead_letter for t in triggers if t.config.ordering}
        """Each ordered trigger's ``on_dead_letter`` policy, by name (the execution view states it)."""
        self.policies = policies or Policies(((t.config, t.destination.fixed) for t in triggers), {})
        self.seeds = {t.id: t.destination.seed for t in triggers if t.destination.seed is not None}
        """Each trigger with a templated destination whose rows are made naming it (``policy.Seed``), by id."""

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


def build_trigger(
    trigger_id: int, config: TriggerConfig, registry: Registry, redactor: Redactor | None = None
) -> Trigger:
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
        redactor=redactor or Redactor(),
        destination=destination_key(
            config.name, config.destination, kind.destination(config.action) if kind.destination else None
        ).seeded(seed_of(config)),
    )


def build_trigger_set(config: RedriveConfig, ids: dict[str, int], registry: Registry) -> TriggerSet:
    """Join each declared trigger to its id, its action (built by its kind), its scheme, its retry policy and a
    redactor that knows the file's secrets."""
    redactor = Redactor(config.secrets)
    built = [build_trigger(ids[t.name], t, registry, redactor) for t in config.triggers]
    return TriggerSet(built, Policies(((t.config, t.destination.fixed) for t in built), config.destinations))
