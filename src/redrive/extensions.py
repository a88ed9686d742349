"""What plugins hand redrive (action kinds, signature schemes) and what redrive hands plugins (lifecycle reports).

These are plain frozen values: a plugin builds them in its ``redrive_action_kinds`` / ``redrive_signature_schemes``
hook implementations, and receives the reports in its lifecycle hooks (``redrive.hookspecs``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from redrive.clock import Clock, utcnow

if TYPE_CHECKING:
    from pydantic import BaseModel

    from redrive.actions.base import Action
    from redrive.failures.classify import Failure


@dataclass(frozen=True, slots=True)
class ResourceContext:
    """What a kind's ``resources`` factory is told about the worker that opens it."""

    concurrency: int
    """Attempts the worker runs at once: size connection pools to it."""
    trace_configs: tuple[Any, ...] = ()
    """aiohttp ``TraceConfig``s that carry the attempt's ``traceparent`` (empty when tracing is off)."""
    clock: Clock = utcnow
    """The worker's clock: what "now" is for an action (a ``Retry-After`` date, say)."""


@dataclass(frozen=True, slots=True)
class ActionKind:
    """An action kind: what ``action: {kind: NAME, ...}`` in the trigger file builds and runs."""

    name: str
    """The ``kind`` value in the trigger file (lower-case, ``[a-z0-9_-]``)."""
    config: type[BaseModel]
    """The pydantic model of the ``action`` block; its ``kind`` field is ``Literal[name]``."""
    build: Callable[[Any], Action]
    """Build the action of one trigger from its validated config."""
    summary: Callable[[Mapping[str, Any]], str]
    """A one-line description of where a rendering (what the action's ``render`` returned) goes, for previews and
    stats (``POST https://api.example.com/orders``)."""
    resources: Callable[[ResourceContext], AbstractAsyncContextManager[Any]] | None = None
    """Opened once per worker before the first attempt and closed when it stops (HTTP sessions and the like); the
    object it yields reaches the kind's actions as ``resources[name]``."""
    classify: Callable[[BaseException], Failure | None] | None = None
    """Classify an exception this kind's actions raise (None: let the other rules decide)."""
    destination: Callable[[Any], str | Callable[[Mapping[str, Any]], str | None] | None] | None = None
    """What a trigger's actions talk to, from its validated config: a fixed key (``https://host:443``), a function
    of the template context when it depends on the event, or None (the trigger: ``trigger:<name>``). Breakers and
    limits are kept per destination."""


@dataclass(frozen=True, slots=True)
class SignatureScheme:
    """An inbound signature scheme: what ``source: {verify: {scheme: NAME, ...}}`` checks."""

    name: str
    """The ``scheme`` value in the trigger file."""
    config: type[BaseModel]
    """The pydantic model of the ``verify`` block; its ``scheme`` field is ``Literal[name]``."""
    verify: Callable[[Any, bytes, Mapping[str, str], float], None]
    """Check one delivery: config, the raw body, headers (lower-case names), now (unix seconds); raise
    ``redrive.errors.InvalidSignature`` with a reason safe to log, or return None."""
    key_header: str | None = None
    """The idempotency-key source the scheme implies (``header:webhook-id``), tried first unless configured."""
    secret_fields: tuple[str, ...] = ("secret", "secrets")
    """The config fields holding secrets: masked by redaction wherever redrive writes text down."""


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    """A destination's breaker changed state (committed): ``closed``, ``open`` or ``half_open``."""

    destination: str
    from_state: str
    to_state: str
    reason: str
    at: datetime
    actor: str | None
    """The operator's token name for a forced change; None for the breaker's own decisions."""


@dataclass(frozen=True, slots=True)
class EventAccepted:
    """A new event and its execution, committed."""

    trigger: str
    event_id: int
    execution_id: int | None
    idempotency_key: str | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class AttemptRecorded:
    """One attempt's outcome, committed, with its classification and the retry decision taken."""

    trigger: str
    kind: str
    execution_id: int
    attempt: int
    status: str
    """The status the execution moved to: succeeded, pending (a retry is scheduled), failed_retryable or failed."""
    failure: Failure | None
    retry_at: datetime | None
    """When the next attempt is due, if one is scheduled."""
    duration: float


@dataclass(frozen=True, slots=True)
class ExecutionDeadLettered:
    """An execution committed to ``failed_retryable`` (the dead-letter queue) or ``failed`` (permanent)."""

    trigger: str
    kind: str
    execution_id: int
    status: str
    attempts: int
    failure: Failure


@dataclass(frozen=True, slots=True)
class ExecutionRecovered:
    """An execution that succeeded after at least one failed attempt, committed."""

    trigger: str
    kind: str
    execution_id: int
    attempts: int
